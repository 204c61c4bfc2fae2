"""The documentation: ``mkdocs build --strict`` passes with no warning, the nav lists every page
and only pages that exist, every relative link in README.md and docs/ points to a file, and
README links every page."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _missing_tools() -> list[str]:
    """The documentation tools that are not installed (they come with the ``[dev]`` extra)."""
    missing = [m for m in ("mkdocs", "mkdocstrings", "yaml") if importlib.util.find_spec(m) is None]
    if "mkdocstrings" not in missing and importlib.util.find_spec("mkdocstrings_handlers") is None:
        missing.append("mkdocstrings-python")
    return missing


def _needs_mkdocs() -> None:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install 'mkdocs>=1.6' "
                    "'mkdocstrings[python]>=0.26' (or pip install -e '.[dev]')")


def _nav_pages(nav: Any) -> list[str]:
    """Every page file the nav names, in order (``{title: page}``, lists and sections)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {nav!r} in mkdocs.yml")


def _links(markdown: str) -> list[str]:
    """The relative link targets of Markdown text, outside code blocks and code spans: no URL
    (``https:``, ``mailto:``), no anchor within the page, no site-absolute path."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    return [t for t in _LINK.findall(text) if not _URL.match(t) and not t.startswith(("#", "/"))]


def _file_links(path: Path) -> list[str]:
    return _links(path.read_text(encoding="utf-8"))


def test_mkdocs_build_is_strict_and_clean(tmp_path: Path) -> None:
    _needs_mkdocs()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    log = result.stdout + result.stderr
    problems = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0 and not problems, log[-4000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("symmetrize.symmetrize", "symmetrize.Spec", "symmetrize.check",
                 "symmetrize.passes.options.ConversionOptions", "symmetrize.nn.ChiralLinear",
                 "symmetrize.train.fit", "symmetrize.metrics.mpjpe"):
        assert f'id="{name}"' in api, f"the API reference lacks {name}"


def test_nav_lists_every_page_and_only_pages_that_exist() -> None:
    _needs_mkdocs()
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config.get("strict") is True, "mkdocs.yml must set strict: true"
    nav = _nav_pages(config["nav"])
    missing = [page for page in nav if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"
    assert len(nav) == len(set(nav)), f"a page appears twice in the nav: {nav}"
    left_out = [p.name for p in PAGES if p.name not in nav]
    assert not left_out, f"docs pages missing from mkdocs.yml's nav: {left_out}"


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *PAGES],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(path: Path) -> None:
    broken = [t for t in _file_links(path)
              if not (path.parent / t.split("#", 1)[0]).resolve().exists()]
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in _file_links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link these docs pages: {unlinked}"


def test_the_link_scanner_skips_code_urls_and_anchors() -> None:
    text = ("See [a](docs/x.md), [b](docs/y.md#part \"title\"), [c](https://example.org), "
            "[d](#here) and [e](/abs.md).\n`[f](in/span.md)`\n```python\n[g](in/fence.md)\n```\n"
            "[h](../up.md)\n")
    assert _links(text) == ["docs/x.md", "docs/y.md#part", "../up.md"]
