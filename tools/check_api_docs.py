"""Check that the built documentation describes every public name of ibkrfw.

Public names are those in the ``__all__`` of ``ibkrfw`` and of each of its packages and
public top-level modules (not the modules inside a package, which the package re-exports).
A name counts as described when the site's ``objects.inv`` holds it under the package, under
the module that defines it, or (for re-exports) under any ibkrfw path ending with it.

Usage: ``python tools/check_api_docs.py docs/_build/html/objects.inv``
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from sphinx.util.inventory import InventoryFile

import ibkrfw


def public_modules() -> list[str]:
    """``ibkrfw``, its packages, and its public top-level modules."""
    names = ["ibkrfw"]
    for info in pkgutil.iter_modules(ibkrfw.__path__, "ibkrfw."):
        if info.name.rsplit(".", 1)[-1].startswith("_") or info.name == "ibkrfw.cli":
            continue
        names.append(info.name)
        if info.ispkg:
            package = importlib.import_module(info.name)
            for sub in pkgutil.iter_modules(package.__path__, info.name + "."):
                leaf = sub.name.rsplit(".", 1)[-1]
                if sub.ispkg and not leaf.startswith("_"):
                    names.append(sub.name)
    return names


def main(inventory: Path) -> int:
    """Print each public name the inventory lacks; return 1 if there is one, else 0."""
    with inventory.open("rb") as handle:
        inv = InventoryFile.load(handle, "", lambda base, uri: base + uri)
    described = {name for role, items in inv.items() if role.startswith("py:") for name in items}
    suffixes = {name.rsplit(".", 1)[-1] for name in described if name.startswith("ibkrfw.")}
    missing = []
    checked = 0
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if name.startswith("__"):
                continue
            checked += 1
            obj = getattr(module, name)
            where = {f"{module_name}.{name}", f"{getattr(obj, '__module__', '')}.{name}"}
            if not where & described and name not in suffixes:
                missing.append(f"{module_name}.{name}")
    for name in missing:
        print(f"not in the API reference: {name}", file=sys.stderr)
    modules = len(public_modules())
    print(f"{checked} public names of {modules} modules checked, {len(missing)} undescribed")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
