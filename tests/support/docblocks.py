"""The code blocks of the documentation pages (docs/**/*.md) and what a test does with each.

Every fenced block is preceded by a marker saying what it is, as an HTML comment (invisible on the site):

    <!-- block: file myapp/tasks.py -->    written into the page's folder (a .py file is compiled, a
                                           settings.yaml parsed by taskq's own loader)
    <!-- block: python -->                 a program: run with `python -c` in the page's folder, must exit 0
    <!-- block: shell -->                  commands: run as one bash script (set -e) in the page's folder
    <!-- block: shell exit=1 -->           ... that must stop with this exit code (a command shown failing)
    <!-- block: pool -->                   one command started in the background (a worker pool) once the
                                           blocks before it ran; ready when its log says `pool_ready`; SIGINT
                                           (Ctrl+C) at the end of the page, and it must exit 0
    <!-- block: settings -->               a settings.yaml excerpt: parsed and checked by taskq's loader,
                                           schedules included
    <!-- block: excerpt examples/x.py -->  lines shown from a file of the repository: they must be in it
    <!-- block: text -->                   not code: a diagram, an output
    <!-- block: skip REASON -->            a command or program that cannot run here, and why

A page may begin with options for its blocks, `<!-- blocks: after tutorial.md; with examples -->`:
`after PAGE` first writes PAGE's files and starts its pool (the page continues that project), `with
examples` links the repository's examples/ into the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

RUN_KINDS = frozenset({"file", "python", "shell", "pool"})  # executed by tests/process/test_docs.py
CHECK_KINDS = frozenset({"settings", "excerpt"})  # checked without running anything
NOT_RUN_KINDS = frozenset({"text", "skip"})
KINDS = RUN_KINDS | CHECK_KINDS | NOT_RUN_KINDS
NEEDS_ARGUMENT = frozenset({"file", "excerpt", "skip"})

# A fence, possibly indented inside a list item; its closing fence has the same indent.
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*block:\s*(?P<kind>[\w-]+)\s*(?P<argument>.*?)\s*-->\s*\Z", re.S)
PAGE_OPTIONS = re.compile(r"\A\s*(?:#[^\n]*\n\s*)?<!--\s*blocks:\s*(?P<options>.*?)\s*-->", re.S)


@dataclass(frozen=True)
class Block:
    page: str  # relative to docs/
    line: int  # of the opening fence, 1-based
    language: str
    body: str  # dedented
    kind: str | None  # None: no marker (an error)
    argument: str

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


@dataclass
class Page:
    name: str
    blocks: list[Block] = field(default_factory=list)
    after: str | None = None
    with_examples: bool = False

    @property
    def runs(self) -> bool:
        return any(block.kind in RUN_KINDS - {"file"} for block in self.blocks)


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def parse(path: Path) -> Page:
    text = path.read_text()
    page = Page(str(path.relative_to(DOCS)))
    options = PAGE_OPTIONS.match(text)
    if options:
        for option in (part.strip() for part in options["options"].split(";")):
            if option.startswith("after "):
                page.after = option.removeprefix("after ").strip()
            elif option == "with examples":
                page.with_examples = True
            elif option:
                raise ValueError(f"docs/{page.name}: unknown blocks option {option!r}")
    for fence in FENCE.finditer(text):
        before = text[: fence.start()]
        # The marker is the last thing before the fence (only whitespace between).
        last_comment = before.rfind("<!--")
        marker = MARKER.match(before[last_comment:]) if last_comment >= 0 else None
        # A block inside a list item is indented as its fence is: the code is what is left without it.
        body = "\n".join(line.removeprefix(fence["indent"]) for line in fence["body"].split("\n"))
        page.blocks.append(
            Block(
                page=page.name,
                line=text.count("\n", 0, fence.start()) + 1,
                language=fence["lang"],
                body=body,
                kind=marker["kind"] if marker else None,
                argument=marker["argument"] if marker else "",
            )
        )
    return page


def all_pages() -> list[Page]:
    return [parse(path) for path in pages()]


def problems(page: Page) -> list[str]:
    """What is wrong with the page's markers: a block without one, an unknown kind, a missing reason."""
    found = []
    for block in page.blocks:
        if block.kind is None:
            found.append(f"{block.where}: a ```{block.language} block without a <!-- block: ... --> marker")
        elif block.kind not in KINDS:
            found.append(f"{block.where}: unknown block kind {block.kind!r} (known: {', '.join(sorted(KINDS))})")
        elif block.kind in NEEDS_ARGUMENT and not block.argument:
            what = "the reason it is not run" if block.kind == "skip" else "a path"
            found.append(f"{block.where}: `block: {block.kind}` needs {what}")
        elif block.kind == "shell":
            try:
                expected_exit(block)
            except ValueError as error:
                found.append(str(error))
    if page.after is not None and not (DOCS / page.after).is_file():
        found.append(f"docs/{page.name}: `after {page.after}`: no such page")
    return found


def excerpt_lines(text: str) -> list[str]:
    """Lines compared for an excerpt: stripped of indentation (an excerpt may be taken from inside a block),
    without a first line that captions it (`# site_project/settings.py (excerpt)`)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return lines[1:] if lines and lines[0].startswith("#") and lines[0].endswith("(excerpt)") else lines


def expected_exit(block: Block) -> int:
    """The exit code a shell block must end with: 0 unless its marker says `exit=N`."""
    if block.kind == "shell" and block.argument.startswith("exit="):
        return int(block.argument.removeprefix("exit="))
    if block.kind == "shell" and block.argument:
        raise ValueError(f"{block.where}: unknown shell option {block.argument!r} (known: exit=N)")
    return 0


def shell_script(body: str) -> str:
    """A shell block as one script: stop at the first failing command, trace each one to stderr."""
    return "set -eo pipefail -x\n" + body
