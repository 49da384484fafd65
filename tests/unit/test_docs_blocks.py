"""Every code block of the documentation pages is marked with what a test does with it (run, checked, or not
run and why: tests/support/docblocks.py), and the blocks checked without running anything are checked here:
settings excerpts through taskq's own loader, excerpts against the files they quote, Python for syntax. The
blocks that run are run by tests/process/test_docs.py."""

from __future__ import annotations

import re
import textwrap
from collections import Counter

import docblocks
import pytest
import yaml

from taskq.scheduler import parse_schedules
from taskq.settings import parse_settings

PAGES = docblocks.all_pages()
BLOCKS = [block for page in PAGES for block in page.blocks]


def where(block: docblocks.Block) -> str:
    return block.where


def test_every_block_is_run_checked_or_marked_not_run_with_a_reason() -> None:
    found = [problem for page in PAGES for problem in docblocks.problems(page)]
    assert found == [], "\n".join(found)
    kinds = Counter(block.kind for block in BLOCKS)
    assert kinds["python"] + kinds["shell"] + kinds["pool"] > 0
    skipped = [f"{block.where}: {block.argument}" for block in BLOCKS if block.kind == "skip"]
    print(f"{len(BLOCKS)} blocks: {dict(sorted(kinds.items()))}; not run:", *skipped, sep="\n  ")


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.kind == "settings" or b.argument.endswith("settings.yaml")], ids=where
)
def test_settings_blocks_are_valid_settings(block: docblocks.Block) -> None:
    settings = parse_settings(block.body, path=block.where)  # SettingsError names the bad key and its line
    _valid, errors = parse_schedules(settings.schedule)
    assert errors == [], errors


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "excerpt"], ids=where)
def test_excerpts_are_in_the_files_they_quote(block: docblocks.Block) -> None:
    quoted = docblocks.REPO / block.argument
    assert quoted.is_file(), f"{block.where}: no file {block.argument}"
    shown = docblocks.excerpt_lines(block.body)
    lines = docblocks.excerpt_lines(quoted.read_text())
    assert any(lines[i : i + len(shown)] == shown for i in range(len(lines))), f"{block.where}: not in {quoted}"


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.language == "python" and b.kind in ("python", "file", "excerpt")], ids=where
)
def test_python_blocks_compile(block: docblocks.Block) -> None:
    code = textwrap.dedent(block.body)
    if block.kind == "excerpt":  # lines from inside a function (a `return`, an `await`) compile as its body
        code = "async def excerpt():\n" + textwrap.indent(code, "    ")
    compile(code, block.where, "exec")


def test_the_readme_quick_start_is_the_tutorials() -> None:
    """The README keeps the quick start (PyPI shows it) and the tutorial walks through the same files and
    commands: each block of the one is a block of the other, so they cannot drift apart."""
    readme = (docblocks.REPO / "README.md").read_text()
    start = readme.index("## Quick start")
    section = readme[start : readme.index("\n## ", start + 1)]
    shown = [(fence["lang"], fence["body"]) for fence in docblocks.FENCE.finditer(section)]
    tutorial = [(block.language, block.body) for block in docblocks.parse(docblocks.DOCS / "tutorial.md").blocks]
    assert shown and all(block in tutorial for block in shown), "the README's quick start and docs/tutorial.md differ"


def test_the_readmes_links_to_the_site_name_pages_that_exist() -> None:
    """The README links to the site by absolute URL (PyPI shows it); each must be a page of docs/."""
    site_url = yaml.safe_load((docblocks.REPO / "mkdocs.yml").read_text())["site_url"]
    readme = (docblocks.REPO / "README.md").read_text()
    missing = []
    for target in re.findall(r"\]\((" + re.escape(site_url) + r"[^)#\s]*)", readme):
        page = target.removeprefix(site_url).strip("/") or "index"
        if not (docblocks.DOCS / f"{page}.md").is_file() and not (docblocks.DOCS / page / "index.md").is_file():
            missing.append(target)
    assert missing == [], missing
