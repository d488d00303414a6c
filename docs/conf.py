"""Sphinx configuration for ibkrfw."""

from __future__ import annotations

import ibkrfw

project = "ibkrfw"
author = "ibkrfw developers"
copyright = "2026, ibkrfw developers"
release = ibkrfw.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Intersphinx needs the inventories of docs.python.org, numpy.org and pandas.pydata.org, which
# the build machines cannot reach; until they are vendored, references to those projects are
# the only ones allowed to stay unresolved. Every reference into ibkrfw must resolve (-n).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(decimal|datetime|enum|logging|os|socket|typing|typing_extensions)\..*"),
    (r"py:.*", r"(collections|abc|array|contextlib|concurrent)\..*"),
    (r"py:class", r"Executor"),
    (r"py:.*", r"(numpy|np|npt|pandas|pd|attrs|attr|ibapi|matplotlib)(\..*)?"),
    (r"py:class", r"(Axes|Figure)"),
    (r"py:class", r"(Decimal|Enum|StrEnum|Exception|ValueError|RuntimeError|NamedTuple|Protocol)"),
    (r"py:class", r"(ABC|Callable|Iterator|Mapping|Sequence|Any|ClassVar|PathLike|Logger|deque)"),
    (r"py:class", r"(FloatArray|IntArray|DecimalLike|EventSink|Action|ShapeT)"),
    (r"py:class", r"(Frequency|RampCondition|WebhookFormat|Severity)"),
    (r"py:.*", r"(ssl|pathlib)\..*"),
    (r"py:class", r"(Path|EngineObserver)"),
    (r"py:class", r"(array|tuple|list|dict|set|frozenset|int|float|str|bool|object|type|None)"),
    (r"py:class", r"(ibkrfw\.)?(portfolio\.portfolio\.)?_Holding"),
    (r"py:.*", r"ibkrfw\..*\._.*"),
]

html_theme = "furo"
html_title = f"ibkrfw {release}"
