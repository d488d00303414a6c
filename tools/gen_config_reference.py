"""Write docs/reference/configuration.md from the configuration model (ibkrfw.config).

Usage: ``python tools/gen_config_reference.py`` writes the page; ``--check`` exits 1 if the
committed page differs from what the model gives (a test runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ibkrfw.config import _reference

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"


def main(argv: list[str]) -> int:
    """Write the page, or with ``--check`` compare it; return the exit code."""
    text = _reference()
    if "--check" in argv:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run python tools/gen_config_reference.py",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
