"""Without Chromium, the tests that render in it say how to get it: skipped, or failed under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/integration/test_report.py::test_the_report_is_self_contained_and_renders_in_chromium"


def _run_without_chromium(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    env["PATH"] = str(Path(sys.executable).parent)  # no chromium on it
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", TEST]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("ci", "code", "outcome"), [(None, 0, "1 skipped"), ("true", 1, "1 error")]
)
def test_chromium_missing_skips_locally_and_fails_under_ci(
    ci: str | None, code: int, outcome: str
) -> None:
    done = _run_without_chromium(ci)
    assert done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
    assert outcome in done.stdout
    assert "apt-get install chromium" in done.stdout
    assert "bash tools/ensure-chromium.sh" in done.stdout
    assert "under CI (CI set) it fails" in done.stdout
