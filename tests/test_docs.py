"""The built documentation site: equations typeset by the vendored KaTeX, every link resolves offline.

One strict ``mkdocs build`` (as ``make docs`` runs it) into a temporary folder, then checks on its HTML.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parents[1]
KATEX_FILES = ("assets/katex/katex.min.js", "assets/katex/auto-render.min.js", "assets/katex/render.js")
LINK = re.compile(r'\b(?:href|src)="([^"]*)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]  # --quiet hides warnings
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return out


def links(page: Path) -> list[str]:
    return LINK.findall(page.read_text(encoding="utf-8"))


def test_concepts_page_loads_katex_and_carries_math_spans(site: Path) -> None:
    html = (site / "concepts.html").read_text(encoding="utf-8")
    for script in (*KATEX_FILES, "assets/katex/katex.min.css"):
        assert f'"{script}"' in html, script
        assert (site / script).is_file(), script
    assert len(re.findall(r'class="arithmatex"', html)) >= 4
    assert r"\frac{dv_n}{dt}" in html  # the KCL equation is handed to KaTeX as TeX, not mangled by markdown


def test_katex_fonts_the_stylesheet_names_first_are_shipped(site: Path) -> None:
    css = (site / "assets/katex/katex.min.css").read_text(encoding="utf-8")
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert fonts
    assert [f for f in sorted(fonts) if not (site / "assets/katex" / f).is_file()] == []


def test_every_internal_link_points_to_a_built_file(site: Path) -> None:
    broken = []
    for page in sorted(site.rglob("*.html")):
        for target in links(page):
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not parts.path:
                continue  # external links are the next test's; a bare #anchor stays on the page
            # Only 404.html uses site-absolute paths: a web server shows it at any depth.
            base = site if parts.path.startswith("/") else page.parent
            if not (base / unquote(parts.path).lstrip("/")).resolve().exists():
                broken.append(f"{page.relative_to(site)} -> {target}")
    assert broken == []


def test_no_page_links_outside_the_site(site: Path) -> None:
    outside = [
        f"{page.relative_to(site)} -> {target}"
        for page in sorted(site.rglob("*.html"))
        for target in links(page)
        if urlsplit(target).scheme or target.startswith("//")
    ]
    assert outside == []


def test_reference_shows_no_sphinx_roles(site: Path) -> None:
    """Docstrings cross-reference in mkdocstrings' syntax; a Sphinx role would render as literal text."""
    role = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):<code>")
    literal = [
        page.name for page in sorted((site / "reference").glob("*.html")) if role.search(page.read_text("utf-8"))
    ]
    assert literal == []


def test_links_work_from_file_urls(site: Path) -> None:
    """Without directory URLs a page is a file, so ``file://`` browsing needs no web server."""
    assert (site / "hardware.html").is_file()
    assert not (site / "hardware").exists()
    assert 'href="concepts.html"' in (site / "index.html").read_text(encoding="utf-8")
