"""Take a screenshot of the dashboard on a realistic run, for the docs.

Usage::

    python tools/dashboard_screenshot.py OUT.png [--width 1280] [--height 1400]
        [--bars 110] [--fixture tests/fixtures/dashboard_state.json]

By default it runs a short live session against the fake TWS (a moving-average crossover on
two sample stocks, with a position limit and the paper mode), serves its dashboard on
127.0.0.1 with a throwaway token (so the controls show) and shoots the page with headless
Chromium: the picture shows what the code of this
checkout shows, so it does not go stale. ``--fixture`` serves a saved ``/api/state`` instead
(the test fixture has every key filled in). Needs ``chromium`` on PATH
(``bash tools/ensure-chromium.sh``). Exits 0 and prints OUT on success; 1 with the reason
otherwise (no Chromium, a blank picture).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--lang=en-US",
]  # fmt: skip


class _Health:
    def __init__(self, health: dict[str, Any]) -> None:
        self.health, self.status = health, health["status"]

    def to_dict(self) -> dict[str, Any]:
        return self.health


class _Fixed:
    """A monitor that serves one saved state."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def snapshot(self) -> dict[str, Any]:
        state = copy.deepcopy(self.state)
        # served as a running monitor's: built just now (else the page says it is not updated)
        state["updated"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return state

    def health(self) -> _Health:
        return _Health(self.state["health"])


@contextmanager
def _session_monitor(bars: int) -> Iterator[Any]:
    """A live session against the fake TWS, stepped ``bars`` bars; yields its monitor."""
    from ibkrfw.monitoring import LiveMonitor
    from ibkrfw.risk import MaxPosition
    from ibkrfw.strategies import MovingAverageCrossover
    from ibkrfw.testing import FakeTWS, LiveSession

    kwargs: dict[str, Any] = {"stale_after_s": 10 * 86_400}
    try:
        monitor = LiveMonitor(mode="paper", **kwargs)  # type: ignore[call-arg]
    except TypeError:  # a version without the mode argument
        monitor = LiveMonitor(**kwargs)
    strategy = MovingAverageCrossover(fast=5, slow=20, weight=0.45)
    rules = [MaxPosition(percent_of_equity=0.5)]
    with FakeTWS.from_sample(["ACME", "BOLT"]) as tws:
        session = LiveSession(strategy, tws, observers=[monitor], risk_rules=rules)
        with session:
            session.step(bars)
            yield monitor
            session.stop()


def shoot(url: str, out: Path, width: int, height: int) -> None:
    """Shoot ``url`` in a ``width`` x ``height`` window into ``out`` (PNG).

    Raises:
        RuntimeError: when Chromium is missing, fails, or makes a blank picture.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise RuntimeError(
            "chromium is not on PATH: install it (bash tools/ensure-chromium.sh) and try again"
        )
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--virtual-time-budget=3000", f"--screenshot={out}", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium could not shoot {url}: {done.stderr[-1500:]}")
    import numpy as np
    from PIL import Image

    with Image.open(out) as image:
        spread = float(np.asarray(image.convert("L"), dtype=np.float64).std())
    if spread < 10:
        raise RuntimeError(f"the screenshot {out} is blank (pixel spread {spread:.1f})")


def main(argv: list[str] | None = None) -> int:
    """Run the tool; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS pixels")
    parser.add_argument("--height", type=int, default=1400, help="window height in CSS pixels")
    parser.add_argument("--bars", type=int, default=110, help="bars the session replays")
    parser.add_argument("--fixture", type=Path, help="serve this saved /api/state instead")
    args = parser.parse_args(argv)
    for name in ("width", "height", "bars"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive whole number, not {getattr(args, name)}")
    if args.width < 320:
        parser.error(f"--width {args.width} is narrower than any phone: give 320 or more")
    from ibkrfw.monitoring import Dashboard

    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.fixture is not None:
            try:
                state = json.loads(args.fixture.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                parser.error(f"--fixture {args.fixture}: cannot read a JSON state: {exc}")
            with Dashboard(_Fixed(state), port=0, token_env=None) as dashboard:  # type: ignore[arg-type]
                shoot(dashboard.url, args.out, args.width, args.height)
        else:
            # a throwaway token turns the controls on; the page takes it off its address
            token = secrets.token_urlsafe(32)
            with (
                _session_monitor(args.bars) as monitor,
                Dashboard(monitor, port=0, token=token) as dashboard,
            ):
                shoot(f"{dashboard.url}?token={token}", args.out, args.width, args.height)
    except RuntimeError as exc:
        print(f"dashboard_screenshot: {exc}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
