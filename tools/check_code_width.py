"""Check that no code line of the documentation is wider than the page's code column.

Furo's content column holds about 88 characters of code; a longer line makes its block
scroll sideways, which hides the end of a command or a comment. This reads the fenced code
blocks (```` ``` ```` or ``~~~``) of every Markdown page under the given folders and files
(``docs`` by default) and prints each line over the limit as ``PATH:LINE: N > LIMIT: TEXT``.

Directive blocks (```` ```{eval-rst} ````, ``{toctree}``, ``{literalinclude}``...) are not
code shown as written, so they are not checked: the API reference is laid out by Sphinx, and
``literalinclude`` shows the package's own source, formatted at its 100-character line
length (``pyproject.toml``, ``[tool.ruff]``), which the docs do not reformat.

Usage: ``python tools/check_code_width.py [--limit N] [PATH ...]``; exit code 1 if a line is
too wide, 2 for a path that does not exist.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path

LIMIT = 88
ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")


def wide_lines(page: Path, limit: int) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) of each code line of ``page`` longer than ``limit``."""
    fence: str | None = None
    directive = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, directive = match.group(1), match.group(2).strip().startswith("{")
            continue
        if match and line.strip() == fence:
            fence = None
        elif not directive and len(line) > limit:
            yield number, line


def main(argv: list[str] | None = None) -> int:
    """Print each code line over the limit; return 1 if there is one, 2 on a bad path, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "docs"])
    parser.add_argument("--limit", type=int, default=LIMIT, help=f"default {LIMIT}")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error(f"--limit must be a positive number of characters, got {args.limit}")
    pages: list[Path] = []
    for path in args.paths:
        if not path.exists():
            print(
                f"check_code_width: {path} does not exist; give a docs folder or a .md file",
                file=sys.stderr,
            )
            return 2
        pages.extend(sorted(path.rglob("*.md")) if path.is_dir() else [path])
    wide = 0
    for page in pages:
        for number, line in wide_lines(page, args.limit):
            wide += 1
            shown = page.relative_to(Path.cwd()) if page.is_relative_to(Path.cwd()) else page
            print(f"{shown}:{number}: {len(line)} > {args.limit}: {line.strip()}")
    print(
        f"{len(pages)} pages checked, {wide} code lines wider than {args.limit} characters"
        + (
            "; wrap or shorten them (a magic trailing comma keeps ruff format, which formats"
            " the docs' Python at 100 characters, from joining a wrapped call again)"
            if wide
            else ""
        )
    )
    return 1 if wide else 0


if __name__ == "__main__":
    sys.exit(main())
