"""The layout of DESIGN.md, "The house", held against the code's own imports (read with ``ast``,
nothing imported): no two modules import each other in a circle, and every import points down
the floors (methods never import each other; spaces, data and the layers below them never reach
up)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "archopt"

# Floor of each top-level part (higher imports lower, never the other way round).
FLOORS = {
    "errors": 0, "_version": 0, "runtime": 1, "runs": 2, "measure": 2, "data": 3, "spaces": 3,
    "training": 4, "design": 5, "structure": 5, "refine": 5, "latent": 5, "pipeline": 6,
    "deploy": 6, "cli": 7, "__main__": 8,
}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The archopt modules ``name`` imports, at module level or inside functions (not under
    ``if TYPE_CHECKING``)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in mods:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def visit(node: ast.AST) -> None:
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.If) and getattr(ch.test, "id", None) == "TYPE_CHECKING":
                continue
            targets: list[str] = []
            if isinstance(ch, ast.Import):
                targets = [a.name for a in ch.names]
            elif isinstance(ch, ast.ImportFrom):
                base = ch.module or ""
                if ch.level:
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (ch.level - 1)]
                    base = ".".join([*pkg, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in ch.names]
            for t in targets:
                r = resolve(t) if t.startswith("archopt") else None
                if r and r != name:
                    out.add(r)
            visit(ch)

    visit(ast.parse(path.read_text()))
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_circles(graph):
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    assert circles == []


def test_every_part_has_a_floor(graph):
    assert {_part(m) for m in graph if m != "archopt"} <= set(FLOORS)


def test_imports_point_down_the_floors(graph):
    up = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                if m != "archopt" and t != "archopt" and _part(m) != _part(t)
                and FLOORS[_part(t)] >= FLOORS[_part(m)])
    assert up == []
