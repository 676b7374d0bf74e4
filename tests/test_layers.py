"""The package's imports point one way: down the layers of ``docs/structure.md``, without cycles.

Every ``import`` of every module of ``prunegrad_lite`` is read with :mod:`ast` (function-level
imports included; imports under ``if TYPE_CHECKING:`` are left out, as they never run) and
checked against the layer table of ``docs/structure.md``: a module may import modules of its own
layer or of a lower one, never of a higher one, and no set of modules may import each other in a
circle. A module that is in no layer fails too, so the table stays complete. The checker itself
is tested on synthetic import graphs first, so that it can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "prunegrad_lite"
STRUCTURE = ROOT / "docs" / "structure.md"


# ------------------------------------------------------------------------------ reading


def module_name(path: Path, root: Path = ROOT) -> str:
    """``prunegrad_lite/data/__init__.py`` -> ``prunegrad_lite.data``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules that the module ``name`` imports, anywhere in its code.

    ``from a.b import c`` names the module ``a.b.c`` when that is a module, else ``a.b``;
    relative imports are resolved against the module's package.
    """
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:  # the ``else`` branch runs
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")} - {name}


def package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports, for every ``.py`` file of the package."""
    files = {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}
    known = set(files)
    return {
        name: imports_of(path.read_text(), name, path.name == "__init__.py", known)
        for name, path in files.items()
    }


def documented_layers(text: str) -> list[tuple[str, list[str]]]:
    """The layer table of ``docs/structure.md``, bottom layer first: ``[(layer, [prefix, ...])]``.

    Its rows read ``| n | name | `module`, `package` ... | what it holds |``.
    """
    layers = []
    for line in text.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|([^|]*)\|", line)
        if match:
            layers.append((int(match[1]), match[2], re.findall(r"`([\w.]+)`", match[3])))
    assert [n for n, _, _ in layers] == list(range(len(layers))), "layers must be numbered 0, 1, .."
    return [(name, prefixes) for _, name, prefixes in layers]


# ------------------------------------------------------------------------------ checking


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int | None:
    """The layer of ``module``: the one naming it or, by the longest prefix, its package (the
    root package itself only by its exact name)."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            exact = module == prefix
            inside = prefix != PACKAGE and module.startswith(prefix + ".")
            if (exact or inside) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def problems(
    graph: dict[str, set[str]],
    layers: list[tuple[str, list[str]]],
    known_cycles: dict[frozenset[str], str] | None = None,
) -> list[str]:
    """Every module in no layer, every upward import, every import cycle, in words.

    ``known_cycles``: cycles waived with the reason; a waiver that no longer matches a cycle is
    reported too (remove it).
    """
    known = dict(known_cycles or {})
    out = []
    for module in sorted(graph):
        if layer_of(module, layers) is None:
            out.append(f"{module} is in no layer of docs/structure.md")
    for module, targets in sorted(graph.items()):
        here = layer_of(module, layers)
        for target in sorted(targets):
            there = layer_of(target, layers)
            if here is not None and there is not None and there > here:
                out.append(
                    f"upward import: {module} (layer {here}, {layers[here][0]}) imports "
                    f"{target} (layer {there}, {layers[there][0]})"
                )
    for cycle in cycles(graph):
        if known.pop(frozenset(cycle), None) is None:
            out.append(f"import cycle: {' <-> '.join(cycle)}")
    out += [f"waived cycle {' <-> '.join(sorted(c))} is gone: remove its waiver" for c in known]
    return out


# ------------------------------------------------------------------------------ the checker


#: cycles waived, each with its reason (a waiver must still match a cycle): none today
KNOWN_CYCLES: dict[frozenset[str], str] = {}

TOY_LAYERS = [("bottom", ["prunegrad_lite.low"]), ("top", ["prunegrad_lite.high", PACKAGE])]


def test_the_checker_finds_an_upward_import_a_cycle_and_a_missing_module():
    clean = {"prunegrad_lite.high": {"prunegrad_lite.low"}, "prunegrad_lite.low": set()}
    assert problems(clean, TOY_LAYERS) == []
    upward = {"prunegrad_lite.low": {"prunegrad_lite.high"}, "prunegrad_lite.high": set()}
    assert problems(upward, TOY_LAYERS) == [
        "upward import: prunegrad_lite.low (layer 0, bottom) imports prunegrad_lite.high "
        "(layer 1, top)"
    ]
    circle = {  # sideways inside one layer is allowed, a circle is not
        "prunegrad_lite.high.a": {"prunegrad_lite.high.b"},
        "prunegrad_lite.high.b": {"prunegrad_lite.high.c"},
        "prunegrad_lite.high.c": {"prunegrad_lite.high.a", "prunegrad_lite.low"},
        "prunegrad_lite.low": set(),
    }
    assert problems(circle, TOY_LAYERS) == [
        "import cycle: prunegrad_lite.high.a <-> prunegrad_lite.high.b <-> prunegrad_lite.high.c"
    ]
    assert problems({"prunegrad_lite.elsewhere": set()}, TOY_LAYERS) == [
        "prunegrad_lite.elsewhere is in no layer of docs/structure.md"
    ]
    waiver = {
        frozenset(
            {"prunegrad_lite.high.a", "prunegrad_lite.high.b", "prunegrad_lite.high.c"}
        ): "toy"
    }
    assert problems(circle, TOY_LAYERS, waiver) == []
    assert problems(clean, TOY_LAYERS, waiver) == [
        "waived cycle prunegrad_lite.high.a <-> prunegrad_lite.high.b <-> prunegrad_lite.high.c "
        "is gone: remove its waiver"
    ]
    assert layer_of("prunegrad_lite", TOY_LAYERS) == 1  # the root package: by its exact name
    assert layer_of("prunegrad_lite.lower", TOY_LAYERS) is None  # a prefix is a whole part


def test_the_reader_sees_every_kind_of_import():
    source = """
from __future__ import annotations
import os
import prunegrad_lite.low
from prunegrad_lite.high import helper, sub
from . import sibling
from .. import low as low_again
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from prunegrad_lite.typed import Name      # never runs: not an arrow
else:
    from prunegrad_lite.fallback import Name
def late():
    from prunegrad_lite.lazy import thing      # function-level imports count
    return thing
"""
    known = {
        "prunegrad_lite.high.sub",
        "prunegrad_lite.pkg.sibling",
        "prunegrad_lite.low",
        "prunegrad_lite.pkg.mod",
    }
    found = imports_of(source, "prunegrad_lite.pkg.mod", False, known)
    assert found == {
        "prunegrad_lite.low",
        "prunegrad_lite.high",  # ``helper`` is a name in it
        "prunegrad_lite.high.sub",  # ``sub`` is a module
        "prunegrad_lite.pkg.sibling",
        "prunegrad_lite.fallback",
        "prunegrad_lite.lazy",
    }


# ------------------------------------------------------------------------------ the package


@pytest.fixture(scope="module")
def layers() -> list[tuple[str, list[str]]]:
    return documented_layers(STRUCTURE.read_text())


def test_docs_structure_has_the_layer_table(layers):
    assert len(layers) >= 5
    assert layers[0][1] and all(prefixes for _, prefixes in layers)


def test_imports_point_down_the_layers_without_cycles(layers):
    graph = package_graph()
    assert len(graph) > 40 and "prunegrad_lite.benchmarks.reproduce" in graph
    found = problems(graph, layers, KNOWN_CYCLES)
    assert not found, "\n".join(found)
