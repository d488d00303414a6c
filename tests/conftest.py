from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

# CI machines are small and shared: no deadlines, a fixed number of examples. CI draws them
# from a fixed seed, so its verdict is reproducible; local runs draw new ones each time and so
# keep exploring (a case they find is added to the test with @example).
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
# A deeper search to run by hand (HYPOTHESIS_PROFILE=long pytest ...): many more examples,
# fresh ones each run; a failure found is kept as an @example of its test. Tests whose
# examples run live sessions (slow) take a tenth.
settings.register_profile(
    "long",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: unknown (and unused) without it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many workers ``pytest -n auto`` (tox) starts: one a CPU this process may run on.

    pytest-xdist counts physical cores through psutil when it is installed (dask brings it):
    on a 2-vCPU machine that can be 1, and in a container it is the host's count. The CPUs
    the process may run on (its affinity) are the ones it gets. PYTEST_XDIST_AUTO_NUM_WORKERS
    still wins: None leaves it to pytest-xdist.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or not hasattr(os, "sched_getaffinity"):
        return None
    return len(os.sched_getaffinity(0)) or None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path, for the tests that render in it: skipped without it, failed under CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    under_ci = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}
    message = (
        "chromium is not installed (neither `chromium` nor `chromium-browser` is on PATH) and "
        "this test renders pages in headless Chromium. Install Debian's chromium: "
        "`apt-get install chromium` (as root), or run `bash tools/ensure-chromium.sh`; "
        "`tox run` does that in the environments that need it. Without it the test is skipped, "
        "but under CI (CI set) it fails."
    )
    if under_ci:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
