"""Make the pictures the docs show, from the run that getting started prints.

Usage::

    python tools/doc_images.py [OUTDIR] [--force]

OUTDIR defaults to ``docs/_static/generated`` (git-ignored). The docs build runs this at its
start (the ``doc_images`` extension in ``docs/_ext``), so the pictures never go stale. From
the sample data shipped with ibkrfw and the backtest getting started shows
(``ibkrfw backtest`` with :data:`COMMAND`, run through the command itself), it writes:

- ``equity.png``: the equity curve (:func:`ibkrfw.reports.plot_equity`);
- ``tearsheet.png``: the tearsheet (:func:`ibkrfw.reports.tearsheet`, what ``result.plot()``
  shows);
- ``report.html``: the HTML report, as ``--report report.html`` writes it;
- ``report.png``: the top of that report as headless Chromium shows it;
- ``dashboard.png`` and ``dashboard-phone.png``: the dashboard at 1280 and 390 px, if
  ``tools/dashboard_screenshot.py`` exists.

The screenshots need Chromium (``chromium`` or ``chromium-browser`` on PATH;
``bash tools/ensure-chromium.sh`` installs it). Without it they are not made: under CI (``CI``
set) that is an error (exit code 1), elsewhere a warning (the docs build, with ``-W``, then
fails on it too). Images are PNGs of a fixed size, quantised to 256 colours, under 200 kB.

Nothing is redone when nothing that goes into the pictures changed: ``OUTDIR/.key`` keeps a
hash of ibkrfw's version and files, this script, the dashboard script and whether Chromium is
there; ``--force`` remakes them anyway. Exit codes: 0 done, 1 an image could not be made.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "_static" / "generated"
DASHBOARD_SCRIPT = ROOT / "tools" / "dashboard_screenshot.py"

#: The arguments of ``ibkrfw`` for the run the pictures show: getting started's second
#: command, whose statistics that page prints.
COMMAND = ("backtest", "--symbols", "ACME", "-p", "fast=20", "-p", "slow=50",
           "--commission", "0.005")  # fmt: skip

#: Width and height in pixels of each picture: about the docs' content column (740 px), so
#: their text reads at the size the pages show them.
SIZES = {
    "equity.png": (900, 380),
    "tearsheet.png": (900, 945),
    "report.png": (800, 720),
}
#: Every file this script writes (besides ``.key``).
OUTPUTS = ("equity.png", "tearsheet.png", "report.html", "report.png", "dashboard.png",
           "dashboard-phone.png")  # fmt: skip
#: The dashboard's screenshots: name and the window ``tools/dashboard_screenshot.py`` shoots.
DASHBOARDS = {"dashboard.png": (), "dashboard-phone.png": ("--width", "390", "--height", "1500")}
DPI = 100
TEARSHEET_WIDTH_IN = 10  # narrower, the title of its parameters would be cut
MAX_BYTES = 200_000
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
)  # fmt: skip
_FALSE = {"", "0", "false", "no"}


class DocImagesError(Exception):
    """An image could not be made; the message says which and what to do."""


def under_ci() -> bool:
    """Whether ``CI`` is set to something other than empty, 0, false or no."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE


def find_chromium() -> str | None:
    """Chromium's path, or None when neither ``chromium`` nor ``chromium-browser`` is on PATH."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def cache_key(chromium: bool) -> str:
    """A hash of everything that goes into the pictures.

    ibkrfw's version and every file of the package (its code and sample data), this script,
    the dashboard's screenshot script, and whether Chromium is there (the pictures it makes).
    """
    import ibkrfw

    digest = hashlib.sha256(f"{ibkrfw.__version__}\0chromium={chromium}\0".encode())
    package = Path(ibkrfw.__file__).parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    for script in (Path(__file__).resolve(), DASHBOARD_SCRIPT):
        digest.update(script.name.encode())
        digest.update(script.read_bytes() if script.is_file() else b"(absent)")
    return digest.hexdigest()


def _optimise(path: Path, size: tuple[int, int] | None) -> None:
    """Re-save the PNG at ``path`` with 256 colours; check its size in pixels and bytes."""
    from PIL import Image

    with Image.open(path) as image:
        if size is not None and image.size != size:
            raise DocImagesError(f"{path.name} is {image.size} pixels, expected {size}")
        small = image.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        raise DocImagesError(
            f"{path.name} is {path.stat().st_size:,} bytes, more than {MAX_BYTES:,}: "
            "make the picture smaller or simpler"
        )


def _backtest(work: Path) -> Path:
    """Run :data:`COMMAND` as ``ibkrfw`` does; return the saved run (the report beside it)."""
    from ibkrfw.cli import main

    run = work / "run.ibkrfw"
    printed, errors = io.StringIO(), io.StringIO()
    args = [*COMMAND, "--save", str(run), "--report", str(work / "report.html")]
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = main(args)
    if code != 0:
        raise DocImagesError(
            f"`ibkrfw {' '.join(COMMAND)}` exited with {code}: {errors.getvalue().strip()}"
        )
    return run


def _plots(run: Path, out: Path) -> None:
    """Draw ``equity.png`` and ``tearsheet.png`` of the saved ``run`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # no window; the same pixels on every machine
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from ibkrfw import RunResult
    from ibkrfw.reports import plot_equity, tearsheet

    result = RunResult.load(run)
    width, height = SIZES["equity.png"]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    plot_equity(result, figure.add_subplot())
    figure.savefig(out / "equity.png", dpi=DPI, metadata={"Software": None})
    width, height = SIZES["tearsheet.png"]
    sheet = tearsheet(result)  # 13 inches wide: 10 keeps its text readable at the docs' width
    sheet.set_size_inches(TEARSHEET_WIDTH_IN, TEARSHEET_WIDTH_IN * height / width)
    dpi = width / TEARSHEET_WIDTH_IN
    sheet.savefig(out / "tearsheet.png", dpi=dpi, metadata={"Software": None})
    plt.close(sheet)
    for name in ("equity.png", "tearsheet.png"):
        _optimise(out / name, SIZES[name])


def _screenshot(chromium: str, page: Path, shot: Path, work: Path) -> None:
    """Draw the top of ``page`` as headless Chromium shows it into ``shot``."""
    width, height = SIZES[shot.name]
    command = [
        chromium, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'chromium-profile'}",
        "--force-device-scale-factor=1", "--hide-scrollbars", f"--window-size={width},{height}",
        f"--screenshot={shot}", page.as_uri(),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise DocImagesError(f"Chromium took more than 120 s to draw {page.name}") from exc
    if done.returncode != 0 or not shot.is_file():
        raise DocImagesError(
            f"Chromium could not draw {page.name} (exit code {done.returncode}): "
            f"{done.stderr.strip()[-1500:]}"
        )
    _optimise(shot, SIZES[shot.name])


def _dashboard(out: Path) -> None:
    """Run ``tools/dashboard_screenshot.py`` into ``out``: each of :data:`DASHBOARDS`."""
    for name, window in DASHBOARDS.items():
        target = out / name
        command = [sys.executable, str(DASHBOARD_SCRIPT), str(target), *window]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired as exc:
            raise DocImagesError(f"{DASHBOARD_SCRIPT.name} took more than 300 s") from exc
        if done.returncode != 0 or not target.is_file():
            raise DocImagesError(
                f"{DASHBOARD_SCRIPT.name} failed (exit code {done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-1500:]}"
            )
        _optimise(target, None)


def make(out: Path, *, force: bool = False, log: Callable[[str], None] = print) -> list[str]:
    """Make the pictures into ``out`` unless they are up to date; return warnings.

    A warning says which pictures were not made and why (Chromium missing, outside CI).

    Raises:
        DocImagesError: an image could not be made, or Chromium is missing under CI.
    """
    chromium = find_chromium()
    warnings: list[str] = []
    if chromium is None:
        shots = "report.png and dashboard*.png" if DASHBOARD_SCRIPT.is_file() else "report.png"
        message = (
            "chromium is not installed (neither `chromium` nor `chromium-browser` is on PATH), "
            f"so the screenshots the docs show ({shots}) could not be made. "
            "Install Debian's chromium (`apt-get install chromium`, as root) or run "
            "`bash tools/ensure-chromium.sh`; `tox run -e docs` does that."
        )
        if under_ci():
            raise DocImagesError(message + " CI is set, so this is an error.")
        warnings.append(message)
    key = cache_key(chromium is not None)
    stamp = out / ".key"
    expected = ["equity.png", "tearsheet.png", "report.html"]
    if chromium is not None:
        expected.append("report.png")
        if DASHBOARD_SCRIPT.is_file():
            expected.extend(DASHBOARDS)
    if (
        not force
        and stamp.is_file()
        and stamp.read_text(encoding="utf-8") == key
        and all((out / name).is_file() for name in expected)
    ):
        log(f"doc images: up to date in {out}")
        return warnings
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)  # a failure part-way leaves no claim of being current
    for name in OUTPUTS:  # none of an earlier build's is kept: made now, or missing
        (out / name).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="ibkrfw-doc-images-") as temp:
        work = Path(temp)
        run = _backtest(work)
        shutil.copyfile(work / "report.html", out / "report.html")
        _plots(run, out)
        if chromium is not None:
            _screenshot(chromium, out / "report.html", out / "report.png", work)
            if DASHBOARD_SCRIPT.is_file():
                _dashboard(out)
    stamp.write_text(key, encoding="utf-8")
    log(f"doc images: made {', '.join(expected)} in {out}")
    return warnings


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = DEFAULT_OUT.relative_to(ROOT)
    parser.add_argument(
        "out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"folder (default: {default})"
    )
    parser.add_argument("--force", action="store_true", help="make them even if up to date")
    args = parser.parse_args(argv)
    try:
        for warning in make(args.out, force=args.force):
            print(f"doc_images: warning: {warning}", file=sys.stderr)
    except DocImagesError as exc:
        print(f"doc_images: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
