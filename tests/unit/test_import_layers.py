"""Imports point one way: every import in taskq goes to a module of its own layer or of a layer below it
(taskq/layers.py), and no module reaches itself through its imports. Read from the source (ast), so an
import inside a function or under TYPE_CHECKING counts as much as one at the top: that is where circles
hide, and a circle that only the type checker follows is still two modules that cannot be read apart."""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from taskq.layers import LAYERS, table

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "taskq"


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package's name for its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["taskq", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _module_of(name: str) -> str:
    """The module an imported name lives in: itself if it is one, else the nearest package or module above."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(taskq module, line) for each import of one in `path`, wherever it sits in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "taskq":
                    yield _module_of(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package the module is in
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "taskq":
                continue
            for alias in node.names:  # `from taskq import worker` imports the module taskq.worker
                yield _module_of(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base), node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.split(".")[0] == "taskq"
        ):
            yield _module_of(node.args[0].value), node.lineno


def _layer_of() -> dict[str, int]:
    """Module -> the index of its layer (0 is the bottom)."""
    index = {}
    for number, layer in enumerate(LAYERS):
        for entry in layer.modules:
            if entry.endswith("/"):
                prefix = "taskq." + entry.rstrip("/").replace("/", ".")
                members = [name for name in MODULES if name == prefix or name.startswith(prefix + ".")]
            elif entry == "__init__":
                members = ["taskq"]
            else:
                members = ["taskq." + entry]
            assert all(name in MODULES for name in members) and members, (
                f"taskq/layers.py names {entry!r}: no such module"
            )
            for name in members:
                assert name not in index, f"{name} is in two layers"
                index[name] = number
    return index


@functools.cache
def _graph() -> dict[str, dict[str, int]]:
    """Module -> {module it imports: the first line that does} (read once: each test only reads it)."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, {})
        for imported, line in _imported(module, path):
            if imported != module:
                edges.setdefault(imported, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        on_stack.add(module)
        for imported in graph[module]:
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return sorted(found)


def test_every_module_of_the_package_is_in_one_layer() -> None:
    placed = _layer_of()
    assert sorted(set(MODULES) - set(placed)) == [], "add each new module to a layer in taskq/layers.py"


def test_every_import_points_to_the_same_layer_or_one_below() -> None:
    placed = _layer_of()
    upward = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {module} ({LAYERS[placed[module]].name}) imports "
        f"{imported} ({LAYERS[placed[imported]].name})"
        for module, edges in _graph().items()
        for imported, line in edges.items()
        if placed[imported] > placed[module]
    ]
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_module_imports_itself_through_others() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_check_sees_imports_in_functions_under_type_checking_and_relative_ones() -> None:
    """A guard for the checker itself: the graph holds an import of each kind the package is known to use."""
    graph = _graph()
    assert "taskq.worker" in graph["taskq.forkserver"]  # inside a function (the fork server's own process)
    assert "taskq.context" in graph["taskq.registry"]  # under TYPE_CHECKING
    assert "taskq.api" in graph["taskq"]  # importlib.import_module("taskq.api")
    assert {"taskq.store.base", "taskq.store.facade"} <= set(graph["taskq.store"])


def test_the_cycle_finder_finds_a_circle_through_three_modules() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_architecture_page_shows_this_table() -> None:
    """docs/explanation/architecture.md marks where the layers go; the docs hook fills them from LAYERS at build."""
    page = (REPO / "docs" / "explanation" / "architecture.md").read_text()
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    assert "<!-- layers-table -->" in page and table() in hooks.on_page_markdown(page, None, None, None)
