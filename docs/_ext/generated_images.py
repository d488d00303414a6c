"""Sphinx extension: make the docs' pictures (``tools/doc_images.py``) as the build starts.

The pictures go to ``docs/_static/generated/`` (git-ignored), which the pages reference, so
each build shows the current code's output. The script skips the work when nothing that goes
into them changed, so incremental builds stay fast. A picture that cannot be made stops the
build with the script's reason.

Without Chromium the screenshots cannot be made. Under CI (``CI`` set) that stops the build.
Elsewhere, as the tests that need Chromium are skipped there, the build goes on: it says so
in its log, and each page shows, in place of a screenshot it lacks, a note saying why and how
to get it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util import logging

TOOL = Path(__file__).resolve().parents[2] / "tools" / "doc_images.py"
GENERATED = "_static/generated/"
NOTE = (
    "[The screenshot that belongs here was not made: Chromium was not installed when these "
    "pages were built. `bash tools/ensure-chromium.sh` installs it.]"
)
logger = logging.getLogger(__name__)
_lacking_chromium = False  # set as the build starts; read by the readers (forked or not)


def _tool() -> ModuleType:
    """Import ``tools/doc_images.py`` (not a package) under a name of its own."""
    spec = importlib.util.spec_from_file_location("_ibkrfw_doc_images", TOOL)
    if spec is None or spec.loader is None:
        raise ExtensionError(f"cannot load {TOOL}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _make(app: Any) -> None:
    global _lacking_chromium
    tool = _tool()
    out = Path(app.srcdir) / GENERATED
    try:
        warnings = tool.make(out, log=logger.info)
    except tool.DocImagesError as exc:
        raise ExtensionError(f"the docs' pictures: {exc}") from exc
    _lacking_chromium = bool(warnings)  # the only warning: no Chromium, outside CI
    for warning in warnings:
        logger.info("the docs' pictures: %s Each page shows a note in its place.", warning)


def _note_missing_screenshots(app: Any, doctree: nodes.document) -> None:
    """Put a note in place of each generated picture that is missing for want of Chromium."""
    if not _lacking_chromium:
        return
    docname = app.env.docname
    for image in list(doctree.findall(nodes.image)):
        if GENERATED not in image["uri"]:
            continue
        relative, absolute = app.env.relfn2path(image["uri"], docname)
        if Path(absolute).is_file():
            continue
        app.env.note_dependency(relative)  # missing: the page is read again next build
        outer: nodes.Element = image
        while isinstance(outer.parent, nodes.reference | nodes.figure):
            outer = outer.parent
        outer.replace_self(nodes.paragraph("", "", nodes.emphasis(NOTE, NOTE)))


def setup(app: Any) -> dict[str, Any]:
    """Make the pictures when the builder starts; note the screenshots it could not make."""
    app.connect("builder-inited", _make)
    # before Sphinx's image collector (priority 500) warns that the file is missing
    app.connect("doctree-read", _note_missing_screenshots, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
