"""The module-level import graph of qa/ and api/ has no cycle.

A cycle makes the import order matter (a module sees a half-initialised partner) and ties
modules that should be separable. Imports inside functions are lazy on purpose (torch,
optional backends) and are not edges here; ``if TYPE_CHECKING:`` blocks are not either.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qa", "api")


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _top_level_imports(tree: ast.Module):
    """Import nodes executed when the module is imported: not in functions, not TYPE_CHECKING-only."""

    def walk(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if test not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for part in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    yield from walk(part)
            elif isinstance(node, (ast.With, ast.ClassDef)):
                yield from walk(node.body)

    yield from walk(tree.body)


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                while target and target not in mods:  # `import qa.x.y` where only qa.x is ours
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_our_modules_and_their_imports():
    graph = import_graph()
    assert {"qa.assistant", "qa.embeddings", "qa.backends", "api.main", "api.deps"} <= set(graph)
    assert "qa.config" in graph["qa.assistant"]  # a plain module-level import is an edge
    assert "api.deps" in graph["api.main"] or "api.runtime" in graph["api.main"]


def test_the_checker_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_qa_and_api_import_without_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


def _all_imports(path: Path) -> set[str]:
    """Every module a file imports, lazily inside functions included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_embedding_runtime_has_a_leaf_and_no_back_edge():
    """qa.backends (the ONNX/OpenVINO runners) never reaches back into qa.embeddings, not even
    lazily: what both need (errors, batching, model names) is in the leaf qa.encoder."""
    assert not {n for n in _all_imports(ROOT / "qa" / "backends.py") if n.startswith("qa.embeddings")}
    leaf = {n for n in _all_imports(ROOT / "qa" / "encoder.py") if n.startswith(("qa.", "api."))}
    assert leaf <= {"qa.config", "qa.config.DEFAULT_MODEL"}


def test_the_default_model_names_have_one_registry():
    from qa.config import DEFAULT_MODEL
    from qa.encoder import canonical_model, same_model

    for alias in ("default", "e5-small", "intfloat/multilingual-e5-small", DEFAULT_MODEL):
        assert canonical_model(alias) == DEFAULT_MODEL
    assert canonical_model("BAAI/bge-small-zh-v1.5") == "BAAI/bge-small-zh-v1.5"
    assert same_model("e5-small", DEFAULT_MODEL) and not same_model("e5-small", "other")
    for path in (ROOT / "qa").rglob("*.py"):  # nobody else spells out the aliases
        if path.name not in ("encoder.py", "e5convert.py"):
            text = path.read_text(encoding="utf-8")
            assert '"e5-small"' not in text and "DEFAULT_ALIASES =" not in text, path
