"""The README is a short tour whose links lead somewhere: every docs page is reachable from it, no link is dead."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) with a relative target: no scheme, no bare #anchor
LINK = re.compile(r"\]\((?![a-z]+:|#)([^)\s]+)\)")


def _links(page: Path) -> list[str]:
    return [m.group(1).split("#")[0] for m in LINK.finditer(page.read_text())]


def test_the_readme_is_a_tour_not_a_notebook():
    assert len((ROOT / "README.md").read_text().splitlines()) < 300


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / target).resolve() for target in _links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_names_a_file_that_exists(page):
    dead = [t for t in _links(page) if t and not (page.parent / t).exists()]
    assert not dead, f"{page.relative_to(ROOT)} links to missing {dead}"
