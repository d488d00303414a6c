"""Release check: build the sdist and wheel, check them, install the wheel, run the quick-start.

Run by ``tox run -e release`` (part of ``tox run``): ``python tools/check_release.py WORKDIR``.
It fails (exit 1, saying why) if the build fails, ``twine check`` finds a problem, the wheel
misses a data file the package needs, the installed version is not the one in
``src/ibkrfw/_version.py``, or the README's quick-start does not run from a clean virtual
environment outside the source tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDED = (
    "ibkrfw/py.typed",
    "ibkrfw/data/samples/daily.csv.gz",
    "ibkrfw/monitoring/static/dashboard.html",
    "ibkrfw/monitoring/static/dashboard.js",
    "ibkrfw/monitoring/static/dashboard.css",
)


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run ``command`` and return its output; exit with what it printed if it failed."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(
            f"failed: {' '.join(map(str, command))}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


def main() -> None:
    """Build, check, install, run."""
    work = Path(sys.argv[1]).resolve()
    shutil.rmtree(work, ignore_errors=True)
    dist = work / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        sys.exit(f"expected one wheel and one sdist, got {sorted(p.name for p in dist.iterdir())}")
    print(run(sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists).strip())
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [n for n in NEEDED if n not in names]
    if missing:
        sys.exit(f"the wheel lacks {missing}")
    expected = re.search(r'"(.+)"', (ROOT / "src/ibkrfw/_version.py").read_text())
    assert expected is not None
    venv = work / "venv"
    run(sys.executable, "-m", "uv", "venv", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "uv", "pip", "install", "--python", python, wheels[0])
    version = run(python, "-c", "import ibkrfw; print(ibkrfw.__version__)", cwd=work).strip()
    if version != expected.group(1):
        sys.exit(f"installed version {version}, _version.py says {expected.group(1)}")
    out = run(venv / "bin" / "ibkrfw", "backtest", cwd=work)  # the README's quick-start
    if "Final equity" not in out:
        sys.exit(f"the quick-start printed no statistics:\n{out}")
    print(f"release check passed: {wheels[0].name}, {sdists[0].name}, version {version}; "
          "the quick-start runs from a clean virtual environment")  # fmt: skip


if __name__ == "__main__":
    main()
