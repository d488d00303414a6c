"""Execute every notebook of a directory, top to bottom; fail on the first error.

Run by ``tox run -e notebooks``: ``python tools/run_notebooks.py notebooks``. The notebooks are
executed in memory (the files are not rewritten), each cell within 300 seconds, in a fresh
temporary working directory.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main() -> None:
    """Execute the notebooks of ``sys.argv[1]``."""
    folder = Path(sys.argv[1])
    books = sorted(folder.glob("*.ipynb"))
    if not books:
        sys.exit(f"no notebooks in {folder}")
    for path in books:
        book = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            client = NotebookClient(
                book, timeout=300, kernel_name="python3", resources={"metadata": {"path": work}}
            )
            try:
                client.execute()
            except CellExecutionError as exc:
                sys.exit(f"{path.name} failed:\n{exc}")
        cells = sum(1 for c in book.cells if c.cell_type == "code")
        print(f"{path.name}: {cells} code cells ran in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
