"""No code line of the docs is wider than furo's code column (tools/check_code_width.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "check_code_width.py"


def check(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the checker as CI does; return its exit code and output."""
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


def test_docs_code_lines_fit_the_content_column() -> None:
    done = check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 code lines wider than 88 characters" in done.stdout


def test_check_code_width_a_wide_line_fails_with_its_place_and_length(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    long_command = "ibkrfw backtest " + "--symbols ACME " * 6
    page.write_text(f"Text may be long: {'x' * 120}\n\n```bash\n{long_command}\nshort\n```\n")
    done = check(page, cwd=tmp_path)
    assert done.returncode == 1
    assert f"page.md:4: {len(long_command)} > 88: ibkrfw backtest" in done.stdout
    assert "1 code lines wider than 88 characters; wrap or shorten them" in done.stdout


def test_check_code_width_skips_directives_and_takes_a_limit(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```{eval-rst}\n" + "y" * 120 + "\n```\n\n~~~text\n" + "z" * 60 + "\n~~~\n")
    assert check(page).returncode == 0
    done = check("--limit", "50", page)
    assert done.returncode == 1 and ":6: 60 > 50:" in done.stdout


def test_check_code_width_a_missing_path_exits_2_naming_it(tmp_path: Path) -> None:
    done = check(tmp_path / "nowhere")
    assert done.returncode == 2
    assert "nowhere does not exist; give a docs folder or a .md file" in done.stderr
