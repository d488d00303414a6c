"""Sphinx configuration for ibkrfw."""

from __future__ import annotations

import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

from sphinx.ext import intersphinx

import ibkrfw

project = "ibkrfw"
author = "ibkrfw developers"
copyright = "2026, ibkrfw developers"
release = ibkrfw.__version__
version = release

# docs/_ext: generated_images makes the pictures the pages show (tools/doc_images.py) into
# _static/generated/ as the build starts, so they are always of the current code.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

extensions = [
    "generated_images",
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_intersphinx"]
myst_heading_anchors = 3

# The copy button copies the commands and code, not the prompts in front of them: a shell's
# "$ ", Python's ">>> " and "... "; lines without a prompt (a command's output) are left out
# of a block that has prompts, and a block without prompts is copied whole.
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
copybutton_line_continuation_character = "\\"  # a command wrapped with "\" is copied whole

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True  # show defaults as written (IB_INITIAL_MARGIN, not its repr)
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Intersphinx: links go to the projects' sites; the inventories are read from docs/_intersphinx
# (see its README: where they come from), because the build machines are offline.
_INVENTORIES = Path(__file__).parent / "_intersphinx"


def _compile_inventory(source: Path) -> str:
    """Write the plain-text inventory ``source`` as an ``objects.inv``; return its path."""
    lines = [ln for ln in source.read_text("utf-8").splitlines() if ln and ln[0] != "#"]
    header = b"# Sphinx inventory version 2\n# Project: NumPy\n# Version: 2\n"
    header += b"# The remainder of this file is compressed using zlib.\n"
    target = Path(tempfile.mkdtemp(prefix="ibkrfw-docs-")) / "numpy.inv"
    target.write_bytes(header + zlib.compress("\n".join(lines).encode() + b"\n"))
    return str(target)


intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(_INVENTORIES / "python.inv")),
    "pandas": ("https://pandas.pydata.org/docs", str(_INVENTORIES / "pandas.inv")),
    "numpy": ("https://numpy.org/doc/stable", _compile_inventory(_INVENTORIES / "numpy.txt")),
}

# Annotations spell some names as the modules import them; intersphinx needs the full name.
_ALIASES = {
    "pd.": "pandas.",
    "np.": "numpy.",
    "npt.": "numpy.typing.",
    "Path": "pathlib.Path",
    "Decimal": "decimal.Decimal",
    "Executor": "concurrent.futures.Executor",
    "concurrent.futures._base.Executor": "concurrent.futures.Executor",
    "Future": "concurrent.futures.Future",
    "concurrent.futures._base.Future": "concurrent.futures.Future",
    "numpy.random._generator.Generator": "numpy.random.Generator",
}


def _resolve_alias(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Retry an unresolved reference under its full name (``pd.DataFrame``: pandas')."""
    target = node.get("reftarget", "")
    for alias, full in _ALIASES.items():
        if target == alias or (alias.endswith(".") and target.startswith(alias)):
            node["reftarget"] = full + target[len(alias) :] if alias.endswith(".") else full
            return intersphinx.missing_reference(app, env, node, contnode)
    return None


def setup(app: Any) -> None:
    """Register the alias resolver."""
    app.connect("missing-reference", _resolve_alias)


# Every reference must resolve (-n), but for names of projects without an inventory here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(attrs|attr|ibapi|matplotlib|typing_extensions)(\..*)?"),
    (r"py:class", r"(Axes|Figure)"),
    (r"py:.*", r"ibkrfw\.(.*\.)?_.*"),
    # type aliases of ibkrfw's own, shown by name in signatures
    (r"py:class", r"(DecimalLike|Frequency|RampCondition|WebhookFormat)"),
    (r"py:class", r"(Scalar|GridValues|QuietWindow)"),  # ibkrfw.config's value types
    (r"py:class", r"(MarginSpec|MarginRates|CommissionEstimate)"),
    (r"py:class", r"(Market|Values)"),  # the fake TWS's inner types, in AccountStreams
    (r"py:class", r"DeltaSource"),  # OptionExposureLimit's delta= type, described there
    (r"py:class", r"ibkrfw\.options\.pricing\.(Numbers|Rights)"),  # on the options page
]

html_theme = "furo"
html_static_path = ["_static"]  # _static/generated: the pictures, made by the build
html_title = f"ibkrfw {release}"
