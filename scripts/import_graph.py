"""The project's import graph: cycles between modules and imports against the app order.

Every import counts, module-level or inside a function. `python scripts/import_graph.py`
prints the findings and exits 1 when there are any (tests/test_architecture.py runs it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Bottom to top; each app may import only the ones before it. rprm_web is the kernel;
# its URL conf is the composition root that mounts every app, so it is exempt.
ORDER = ["rprm_web", "annotations", "inference", "review", "training", "evaluation", "dashboards", "lineage", "studio"]
ROOTS = {"rprm_web.urls"}
SKIP = {"migrations", "tests", "__pycache__"}


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for app in ORDER:
        for path in (root / app).rglob("*.py"):
            if SKIP.isdisjoint(path.relative_to(root).parts):
                name = ".".join(path.relative_to(root).with_suffix("").parts)
                found[name.removesuffix(".__init__")] = path
    return found


def graph(root: Path) -> dict[str, set[str]]:
    mods, edges = modules(root), {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets.update([base] + [f"{base}.{a.name}" for a in node.names])
        resolved = set()
        for target in targets:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name and not (path.name == "__init__.py" and target.startswith(name + ".")):
                resolved.add(target)
        edges[name] = resolved
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
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
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    rank = lambda m: ORDER.index(m.split(".")[0])  # noqa: E731
    return sorted((a, b) for a, bs in edges.items() for b in bs if a not in ROOTS and rank(b) > rank(a))


if __name__ == "__main__":
    edges = graph(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    found_cycles, found_up = cycles(edges), upward(edges)
    print(f"modules {len(edges)}; cycles {len(found_cycles)}; upward imports {len(found_up)}")
    for c in found_cycles:
        print("  cycle:", " ".join(c))
    for a, b in found_up:
        print("  upward:", a, "->", b)
    sys.exit(1 if found_cycles or found_up else 0)
