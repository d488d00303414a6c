"""Every Python snippet of the documentation and the README runs, so none of them rots.

The ``python`` code blocks of one page run in order in one namespace, in an empty working
directory, as a reader pasting them into one session would. A block that cannot run here (it
needs TWS, or names the reader's own strategy) is preceded by a MyST comment line
``% snippet: skip <why>``, which the page does not show; the reason is required, and the
block must still compile.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")],
    key=lambda p: str(p.relative_to(ROOT)),
)
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"^% snippet: skip (\S.*)$")


def snippets(page: Path) -> list[tuple[int, str, str | None]]:
    """The page's Python blocks: (line, code, reason to skip or None)."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.match(before)
        found.append((line, match.group(1), skip.group(1) if skip else None))
    return found


PAGES_WITH_CODE = [p for p in PAGES if snippets(p)]


@pytest.mark.parametrize(
    "page", PAGES_WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_CODE]
)
def test_page_snippets_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)  # no window to open
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__snippet__"}
    for line, code, skip in snippets(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        compiled = compile(code, where, "exec")
        if skip is not None:
            continue
        try:
            exec(compiled, namespace)
        except Exception as exc:  # name the block that failed
            raise AssertionError(f"the snippet at {where} failed: {exc!r}") from exc
        finally:
            plt.close("all")
    capsys.readouterr()


def test_there_are_snippets_to_run() -> None:
    runnable = [s for p in PAGES for s in snippets(p) if s[2] is None]
    assert len(runnable) >= 20


TOML_FENCE = re.compile(r"^```toml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def test_toml_snippets_parse() -> None:
    import tomllib

    from ibkrfw.cli import _sandbox_broker
    from ibkrfw.config import settings_from_tables

    blocks = sandboxes = risks = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in TOML_FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            try:
                tables = tomllib.loads(match.group(1))
                if "sandbox" in tables:  # what `ibkrfw run --sandbox` makes of it
                    _sandbox_broker(None, tables["sandbox"])
                    sandboxes += 1
                checked = {k: v for k, v in tables.items() if k in ("risk", "protection")}
                if checked:  # what `ibkrfw run` builds from them
                    settings = settings_from_tables(checked)
                    settings.risk.rules(), settings.risk.monitors()
                    settings.protection.protection()
                    risks += 1
            except (tomllib.TOMLDecodeError, ValueError) as exc:
                raise AssertionError(f"{page.relative_to(ROOT)}:{line}: {exc}") from exc
            blocks += 1
    assert blocks >= 2 and sandboxes >= 1 and risks >= 2


def test_the_deploy_guides_configuration_is_accepted_by_ibkrfw_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every table of the deploy guide's TOML builds what ``ibkrfw run`` builds from it."""
    import argparse
    import tomllib

    from ibkrfw.cli import _operations
    from ibkrfw.ibkr import IBKRConfig

    text = (ROOT / "docs" / "howto" / "deploy.md").read_text(encoding="utf-8")
    block = next(m.group(1) for m in TOML_FENCE.finditer(text) if "[alerts.email]" in m.group(1))
    config = tmp_path / "ibkrfw.toml"
    config.write_text(block, encoding="utf-8")
    tables = tomllib.loads(block)
    monkeypatch.setenv("IBKRFW_SMTP_PASSWORD", "not-a-real-password")
    assert IBKRConfig.load(config).port == 4002
    alerter, monitor, _summary, dashboard = _operations(
        argparse.Namespace(dashboard=None), tables, str(tmp_path / "state")
    )
    try:
        kinds = [type(c).__name__ for c in alerter.channels]
        assert kinds == ["LogChannel", "EmailChannel", "WebhookChannel"]
        assert len(monitor.quiet) == 2
        assert dashboard is not None and (dashboard.host, dashboard.port) == ("127.0.0.1", 8765)
        from ibkrfw.config import settings_from_tables

        settings = settings_from_tables(tables)
        assert [type(r).__name__ for r in settings.risk.rules()] == [
            "StaleDataGuard", "MaxOrderNotional", "MaxPosition", "ExposureLimit", "OrderRateLimit",
        ]  # fmt: skip
        assert len(settings.risk.monitors()) == 2
        assert settings.protection.protection() is not None
        assert set(tables["run"]) <= {
            "strategy", "symbols", "bar_size", "state_dir", "cancel_on_stop", "on_mismatch",
            "parameters",
        }  # fmt: skip
    finally:
        alerter.stop()
