"""kitewire/server imports in one direction: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import kitewire.server

_PACKAGE = Path(kitewire.server.__file__).parent
# uptrack.py and downtrack.py name Participant in annotations under TYPE_CHECKING; once
# they type their publisher/subscriber without importing participant, this set is empty.
_ANNOTATION_ONLY_OWNERS = {"uptrack", "downtrack"}


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.Module, *, runtime_only: bool) -> set[str]:
    """Sibling modules ``tree`` imports (``runtime_only``: leaving out ``if TYPE_CHECKING:`` blocks)."""
    found: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if runtime_only and _is_type_checking_block(node):
            continue
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                found.update([module.split(".")[0]] if module else [alias.name for alias in node.names])
            elif module.startswith("kitewire.server."):
                found.add(module.split(".")[2])
        pending.extend(ast.iter_child_nodes(node))
    return {name for name in found if (_PACKAGE / f"{name}.py").exists()}


def _graph(*, runtime_only: bool) -> dict[str, set[str]]:
    return {
        path.stem: _imports(ast.parse(path.read_text(encoding="utf-8")), runtime_only=runtime_only) - {path.stem}
        for path in _PACKAGE.glob("*.py")
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle, each once (starting at its smallest module name)."""
    cycles: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for successor in sorted(graph.get(node, ())):
            if successor == start:
                cycles.append([*path, start])
            elif successor > start and successor not in path:
                walk(start, successor, [*path, successor])

    for module in sorted(graph):
        walk(module, module, [module])
    return cycles


def test_the_finder_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_circle_at_run_time() -> None:
    assert _cycles(_graph(runtime_only=True)) == []


def test_no_import_circle_in_annotations_outside_the_media_files() -> None:
    graph = _graph(runtime_only=False)
    assert "participant" in graph and "room" in graph, "the graph was not read"
    stray = [cycle for cycle in _cycles(graph) if not _ANNOTATION_ONLY_OWNERS & set(cycle)]
    assert stray == []
    assert graph["room"].isdisjoint({"participant", "server"}) and "server" not in graph["participant"]
