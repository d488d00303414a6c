from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ibkrfw

SRC = Path(ibkrfw.__file__).parent
PUBLIC_PACKAGES = [
    "ibkrfw",
    "ibkrfw.model",
    "ibkrfw.core",
    "ibkrfw.portfolio",
    "ibkrfw.risk",
    "ibkrfw.engine",
    "ibkrfw.sim",
    "ibkrfw.data",
    "ibkrfw.indicators",
    "ibkrfw.options",
    "ibkrfw.strategies",
    "ibkrfw.analysis",
    "ibkrfw.testing",
    "ibkrfw.config",
]


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and not isinstance(v, type(sys))
        and str(getattr(v, "__module__", "")).startswith(name)
        and n not in {"annotations"}
    }
    assert public <= set(module.__all__), f"not in {name}.__all__: {public - set(module.__all__)}"


def test_every_public_name_has_a_docstring() -> None:
    for name in PUBLIC_PACKAGES:
        module = importlib.import_module(name)
        assert module.__doc__, name
        for symbol in module.__all__:
            obj = getattr(module, symbol)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{name}.{symbol} has no docstring"


def test_import_loads_neither_ibapi_nor_matplotlib() -> None:
    code = (
        "import sys, ibkrfw, ibkrfw.sim, ibkrfw.data, ibkrfw.strategies, ibkrfw.testing; "
        "print(sorted(m for m in ('ibapi', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_package_ships_py_typed_and_sample_data() -> None:
    assert (SRC / "py.typed").is_file()
    assert (SRC / "data" / "samples" / "daily.csv.gz").is_file()


# --- layering (DESIGN section 2): imports point down only ---------------------------------
LAYER = {
    "errors": 0,
    "_version": 0,
    "model": 0,
    "core": 1,
    "ports": 2,
    "portfolio": 2,
    "risk": 2,
    "strategy": 2,
    "indicators": 2,
    "analysis": 2,
    "engine": 3,
}
ADAPTERS = {
    "sim", "data", "ibkr", "strategies", "optimize", "reports", "monitoring", "testing", "cli",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ibkrfw."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ibkrfw."))
    return found


def _top(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py")


# RunResult.plot() and .report() (issue 7) hand the result to the reports package: allowed only
# as an import inside those methods, run when called, so importing the core never loads it.
# The engine builds a strategy's larger bar sizes (issue 24) with ibkrfw.data's aggregator and
# calendars: imported inside the function that plans them, run only when a strategy declares
# bar sizes.
LAZY_ONLY = {("engine/result.py", "reports"), ("engine/timeframes.py", "data")}


def _lazy_imports(path: Path) -> set[str]:
    """The ibkrfw packages imported only inside functions (not at module level)."""
    tree = ast.parse(path.read_text())
    inside: set[str] = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef):
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ibkrfw."):
                    inside.add((node.module or "").split(".")[1])
    outside = {
        (node.module or "").split(".")[1]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ibkrfw.")
        and not any(node in set(ast.walk(f)) for f in ast.walk(tree)
                    if isinstance(f, ast.FunctionDef))
    }  # fmt: skip
    return inside - outside


def test_core_never_imports_an_adapter_and_layers_point_down() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        top = _top(path)
        if top not in LAYER:
            continue
        lazy = _lazy_imports(path)
        rel = str(path.relative_to(SRC))
        for imported in _imports(path):
            if (rel, imported) in LAZY_ONLY and imported in lazy:
                continue
            if imported in ADAPTERS:
                problems.append(f"{path.relative_to(SRC)} imports adapter ibkrfw.{imported}")
            elif imported in LAYER and LAYER[imported] > LAYER[top]:
                problems.append(
                    f"{path.relative_to(SRC)} (layer {LAYER[top]}) imports "
                    f"ibkrfw.{imported} (layer {LAYER[imported]})"
                )
    assert problems == []


def test_no_wall_clock_or_sleep_in_the_core() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if _top(path) not in LAYER or path.name == "clock.py":
            continue
        text = path.read_text()
        for needle in ("datetime.now(", "time.time(", "time.sleep(", "time.time_ns("):
            if needle in text:
                offenders.append(f"{path.relative_to(SRC)}: {needle}")
    assert offenders == []


def test_every_module_imports() -> None:
    for info in pkgutil.walk_packages(ibkrfw.__path__, "ibkrfw."):
        if info.name != "ibkrfw.__main__":  # runs the command when imported
            importlib.import_module(info.name)


def test_only_the_ib_adapter_imports_ibapi() -> None:
    importers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )  # fmt: skip
            if any(n == "ibapi" or n.startswith("ibapi.") for n in names):
                importers.add(path.relative_to(SRC).parts[0])
    assert importers == {"ibkr"}
