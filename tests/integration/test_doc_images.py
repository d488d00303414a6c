"""The docs' pictures (tools/doc_images.py): made, small, not blank, and all the pages use.

The docs build runs the script (docs/_ext/generated_images.py); these tests run it as a
command, as that build and a contributor do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "doc_images.py"
REFERENCE = re.compile(r"_static/generated/([\w.-]+)")
SIZES = {"equity.png": (900, 380), "tearsheet.png": (900, 945), "report.png": (800, 720)}


def run_tool(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )  # fmt: skip


def without_chromium(ci: str | None) -> dict[str, str]:
    """The environment with no chromium on PATH, and CI set to ``ci`` (unset if None)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(Path(sys.executable).parent)
    if ci is not None:
        env["CI"] = ci
    return env


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The pictures, made once for the module into a fresh folder."""
    out = tmp_path_factory.mktemp("doc-images") / "generated"
    return out, run_tool(out)


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64)


def referenced() -> dict[str, list[str]]:
    """The generated files the docs' pages reference: name -> the pages."""
    pages: dict[str, list[str]] = {}
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for name in REFERENCE.findall(page.read_text(encoding="utf-8")):
            pages.setdefault(name, []).append(str(page.relative_to(ROOT)))
    return pages


@pytest.mark.parametrize("name", sorted(SIZES))
def test_doc_images_each_picture_has_its_size_is_small_and_not_blank(
    made: tuple[Path, subprocess.CompletedProcess[str]], name: str, chromium: str
) -> None:
    out, done = made
    assert done.returncode == 0, done.stdout + done.stderr
    path = out / name
    assert path.is_file(), sorted(p.name for p in out.iterdir())
    assert path.stat().st_size < 200_000
    image = pixels(path)
    assert image.shape == SIZES[name][::-1]
    assert image.std() > 20  # lines, text and plots were drawn, not an empty canvas
    assert (image < 128).mean() > 0.005  # some dark ink: axes, labels, the curve


def test_doc_images_the_report_is_of_getting_started_run(
    made: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = made
    assert done.returncode in (0, 1), done.stderr  # 1: no Chromium under CI (tested above)
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "<h1>MovingAverageCrossover</h1>" in text
    assert "fast=20, slow=50" in text and "ACME" in text
    getting_started = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert "ibkrfw backtest --symbols ACME -p fast=20 -p slow=50 --commission 0.005" in (
        getting_started
    )  # the command the pictures are made from is the one the page shows


def test_doc_images_every_picture_the_docs_reference_is_made(
    made: tuple[Path, subprocess.CompletedProcess[str]], chromium: str
) -> None:
    out, done = made
    assert done.returncode == 0, done.stdout + done.stderr
    pages = referenced()
    assert {"equity.png", "tearsheet.png", "report.png", "report.html"} <= set(pages)
    missing = {name: where for name, where in pages.items() if not (out / name).is_file()}
    assert not missing, f"referenced by the docs but not made by {TOOL.name}: {missing}"


def test_doc_images_every_generated_picture_in_the_docs_has_alt_text() -> None:
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"```\{(image|figure)\} (\S*_static/generated/\S+)\n(.*?)```",
                                 text, re.DOTALL):  # fmt: skip
            options = match.group(3).split("\n---\n", 2)[0]
            assert re.search(r"^:?alt:\s*\S", options, re.MULTILINE), (page, match.group(2))
        for alt, target in re.findall(r"!\[([^\]]*)\]\(([^)]*_static/generated/[^)]+)\)", text):
            assert alt.strip(), (page, target)


def test_doc_images_up_to_date_are_not_made_again(
    made: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = made
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    started = time.perf_counter()
    again = run_tool(out)
    assert again.returncode == done.returncode, again.stderr
    assert "up to date" in again.stdout
    assert time.perf_counter() - started < 10  # the first run takes several seconds
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.fixture(scope="module")
def made_without_chromium(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The pictures made with no chromium on PATH, outside CI, over an earlier build's."""
    out = tmp_path_factory.mktemp("doc-images-without-chromium") / "generated"
    out.mkdir()
    (out / "report.png").write_bytes(b"an earlier build's")  # not to be shown as current
    return out, run_tool(out, env=without_chromium(None))


def test_doc_images_without_chromium_make_the_rest_and_warn(
    made_without_chromium: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = made_without_chromium
    assert done.returncode == 0, done.stderr
    assert "chromium is not installed" in done.stderr
    assert "bash tools/ensure-chromium.sh" in done.stderr
    assert {p.name for p in out.iterdir()} == {".key", "equity.png", "tearsheet.png", "report.html"}


def test_doc_images_without_chromium_under_ci_fail(tmp_path: Path) -> None:
    done = run_tool(tmp_path, env=without_chromium("true"))
    assert done.returncode == 1
    assert "doc_images: error: chromium is not installed" in done.stderr
    assert "CI is set, so this is an error" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing made, nothing claimed current


def build_docs(
    source: Path, ci: str | None, generated: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Build a one-page docs project that uses the extension, without chromium on PATH.

    ``generated``: pictures already made (and up to date), copied in so the build skips them.
    """
    pytest.importorskip("sphinx", reason="the docs extension needs Sphinx (the docs extra)")
    pytest.importorskip("myst_parser", reason="the docs extension needs myst-parser")
    (source / "_static").mkdir(parents=True)
    if generated is not None:
        shutil.copytree(generated, source / "_static" / "generated")
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'docs' / '_ext')!r})\n"
        'extensions = ["generated_images", "myst_parser"]\nhtml_static_path = ["_static"]\n'
    )
    (source / "index.md").write_text(
        "# Pictures\n\n```{image} _static/generated/equity.png\n:alt: The equity\n```\n\n"
        "```{figure} _static/generated/report.png\n:alt: The report\n"
        ":target: _static/generated/report.html\n\nIts caption.\n```\n"
    )
    command = [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", source,
               source.parent / "html"]  # fmt: skip
    return subprocess.run(
        list(map(str, command)), capture_output=True, text=True, timeout=600,
        env=without_chromium(ci),
    )  # fmt: skip


def test_docs_build_without_chromium_shows_a_note_for_each_missing_screenshot(
    made_without_chromium: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    done = build_docs(tmp_path / "docs", ci=None, generated=made_without_chromium[0])
    assert done.returncode == 0, done.stdout + done.stderr
    page = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert "The screenshot that belongs here was not made" in page
    assert "report.png" not in page and "Its caption" not in page
    assert (tmp_path / "html" / "_images" / "equity.png").is_file()  # the rest is there


def test_docs_build_without_chromium_under_ci_fails(tmp_path: Path) -> None:
    done = build_docs(tmp_path / "docs", ci="true")
    assert done.returncode != 0
    assert "the docs' pictures: chromium is not installed" in done.stderr
    assert "CI is set, so this is an error" in done.stderr
