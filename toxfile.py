"""The project's tox plugin: use the Pythons pyenv installed, never download one.

tox 4 loads ``toxfile.py`` from the project root by itself, so ``tox run`` works as the README
writes it, with nothing set up first:

- pyenv installs each version under ``$PYENV_ROOT/versions/X.Y.Z`` but puts only its shims on
  PATH, and a shim runs only the versions made active (``pyenv global``, ``pyenv local``): the
  ``python3.12`` shim fails when 3.12 is installed but not active, and uv finds no interpreter.
  This plugin appends the ``bin`` directory of the newest installed patch of each CPython 3
  minor version to PATH, right after the shims (or at the end when they are not on PATH), so
  what PATH found before is still found first and the rest of pyenv's versions are found too.
- ``UV_PYTHON_DOWNLOADS=never`` unless already set: uv never downloads a missing interpreter,
  and with ``skip_missing_interpreters = true`` in tox.ini tox reports its environments skipped.
- Under CI (``CI`` set, and not ``false`` or ``0``), a ``pyXY`` environment must not be skipped
  for a version pyenv has: the plugin asks uv to find each such version first and stops tox with
  an error naming it when uv cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tox.config.sets import EnvConfigSet
from tox.plugin import impl
from tox.report import HandledError
from tox.session.env_select import CliEnv
from tox.session.state import State

_VERSION = re.compile(r"3\.(\d+)\.(\d+)")
_ENV = re.compile(r"py3(\d+)")


def pyenv_pythons(root: Path) -> dict[int, Path]:
    """Return the ``bin`` directory of the newest installed patch of each CPython 3 minor.

    Args:
        root: pyenv's root directory (``$PYENV_ROOT``, by default ``~/.pyenv``).

    Returns:
        The minor version (12 for 3.12) mapped to the ``bin`` directory holding
        ``python3.<minor>``; empty when pyenv has no CPython 3 installed there.
    """
    newest: dict[int, tuple[int, Path]] = {}
    versions = root / "versions"
    if not versions.is_dir():
        return {}
    for entry in versions.iterdir():
        found = _VERSION.fullmatch(entry.name)
        if found is None:  # pypy, miniconda, 3.13t, 3.14-dev, 2.7: not what pyXY means
            continue
        minor, patch = int(found.group(1)), int(found.group(2))
        binary = entry / "bin" / f"python3.{minor}"
        if binary.exists() and (minor not in newest or patch > newest[minor][0]):
            newest[minor] = (patch, binary.parent)
    return {minor: directory for minor, (_, directory) in sorted(newest.items())}


def with_pyenv_pythons(path: str, root: Path, pythons: dict[int, Path]) -> str:
    """Return ``path`` with the ``bin`` directories of ``pythons`` after pyenv's shims.

    Args:
        path: a PATH value.
        root: pyenv's root directory, whose ``shims`` directory may be on ``path``.
        pythons: the directories to add, as :func:`pyenv_pythons` returns them.

    Returns:
        ``path`` with the directories it lacks inserted right after ``root/shims``, or
        appended when the shims are not on it.
    """
    entries = path.split(os.pathsep) if path else []
    new = [str(d) for d in pythons.values() if str(d) not in entries]
    shims = str(root / "shims")
    at = entries.index(shims) + 1 if shims in entries else len(entries)
    return os.pathsep.join([*entries[:at], *new, *entries[at:]])


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


# pluggy lets a hook take fewer arguments than its spec: these take only what they use.
@impl
def tox_add_core_config() -> None:
    """Put pyenv's installed Pythons on PATH and keep uv from downloading one."""
    pythons = pyenv_pythons(_pyenv_root())
    if pythons:
        os.environ["PATH"] = with_pyenv_pythons(os.environ.get("PATH", ""), _pyenv_root(), pythons)
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


@impl
def tox_add_env_config(env_conf: EnvConfigSet, state: State) -> None:
    """Under CI, stop tox when a ``pyXY`` environment it runs would skip a version pyenv has."""
    found = _ENV.fullmatch(env_conf.name)
    if not _under_ci() or found is None:
        return
    selected = getattr(state.conf.options, "env", None)  # -e; tox configures env_list too
    if isinstance(selected, CliEnv) and selected and not selected.is_all:
        chosen = list(selected)
        if env_conf.name not in chosen:
            return
    minor = int(found.group(1))
    root = _pyenv_root()
    installed = pyenv_pythons(root)
    if minor not in installed:
        return  # not on this machine: tox reports the environment skipped
    try:
        from uv import find_uv_bin  # tox-uv's dependency

        uv = find_uv_bin()
    except (ImportError, FileNotFoundError):
        uv = shutil.which("uv") or ""
    if uv:
        command = [uv, "python", "find", "--python-preference", "system", f"3.{minor}"]
    else:
        command = [f"python3.{minor}", "-c", ""]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        failed, why = done.returncode != 0, (done.stderr or done.stdout).strip()
    except OSError as error:
        failed, why = True, str(error)
    if failed:
        raise HandledError(
            f"{env_conf.name}: pyenv has Python 3.{minor} (in {installed[minor]}) but "
            f"`{' '.join(command)}` does not find it ({why}); under CI this environment must "
            "run, not be skipped. Check that the interpreter runs, or unset CI to allow skipping."
        )
