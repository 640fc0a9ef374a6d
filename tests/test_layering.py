"""Layers import downward only, and packages import each other without cycles.

Every `import` in every module under src/seqrec counts, including those inside functions and under
`TYPE_CHECKING`: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "seqrec"

# Lowest first: a module may import its own layer and the layers below it.
LAYERS: dict[str, int] = {
    # 0: base modules every layer may use
    "config": 0, "errors": 0, "files": 0, "jsonl": 0, "lm": 0, "text": 0, "run_folders": 0, "run_kinds": 0,
    # 1-4: the core
    "data": 1, "datasets": 1,
    "models": 2,
    "training": 3,
    "evaluation": 4, "recommender": 4,
    # 5: the research systems, and the experiment config that combines their settings
    "steering": 5, "distill": 5, "retrieval": 5, "llm": 5, "experiment": 5, "model_runs": 5,
    # 6: run directories and what works on them
    "runs": 6, "training_runs": 6, "serving": 6, "search": 6, "report": 6,
    # 7: the Python API (the package root re-exports it)
    "api": 7, "demo": 7, "__init__": 7,
    # 8: the command line
    "cli": 8, "__main__": 8,
}
LAYER_NAMES = ["base", "data", "models", "training", "evaluation", "systems", "runs", "api", "cli"]


def unit_of(module: str) -> str:
    """`seqrec.models.sasrec` -> `models`; `seqrec.api` -> `api`; `seqrec` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, source: str | None = None) -> Iterator[str]:
    """Every seqrec module `path` (or `source` as if it were that file) imports, absolute or relative, at any
    depth of the code."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "seqrec")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != "seqrec":
                continue
            if target == "seqrec":  # `from seqrec import datasets` imports the submodule when there is one
                for alias in node.names:
                    is_module = (SRC / alias.name).is_dir() or (SRC / f"{alias.name}.py").is_file()
                    yield f"seqrec.{alias.name}" if is_module else "seqrec"
            else:
                yield target


def source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def dependencies() -> list[tuple[str, str]]:
    """(importing module, imported module) for every seqrec import in the package."""
    return [(module_name(path), target) for path in source_files() for target in imported_modules(path)]


def test_every_module_has_a_layer() -> None:
    units = {unit_of(module_name(path)) for path in source_files()}
    missing = sorted(units - set(LAYERS))
    assert not missing, (f"no layer for {', '.join(missing)}: add each to LAYERS in {Path(__file__).name} "
                         f"(layers: {', '.join(f'{i} {n}' for i, n in enumerate(LAYER_NAMES))})")


def test_imports_go_to_the_same_or_a_lower_layer() -> None:
    violations = sorted({
        f"{source} -> {target} (layer {LAYERS[unit_of(source)]} {LAYER_NAMES[LAYERS[unit_of(source)]]} -> "
        f"layer {LAYERS[unit_of(target)]} {LAYER_NAMES[LAYERS[unit_of(target)]]})"
        for source, target in dependencies()
        if unit_of(source) in LAYERS and unit_of(target) in LAYERS
        and LAYERS[unit_of(target)] > LAYERS[unit_of(source)]
    })
    assert not violations, f"{len(violations)} imports go up a layer:\n" + "\n".join(violations)


def test_packages_import_each_other_without_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in dependencies():
        a, b = unit_of(source), unit_of(target)
        if a != b:
            graph.setdefault(a, set()).add(b)
    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    edges = sorted(f"{a} -> {b}" for component in cycles for a in component for b in graph.get(a, ()) if b in component)
    assert not cycles, (f"import cycles between {'; '.join(' / '.join(sorted(c)) for c in cycles)}; "
                        f"their edges:\n" + "\n".join(edges))


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a directed graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            out.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_checker_sees_imports_inside_functions_and_relative_imports() -> None:
    source = "def f():\n    from ..training import trainer\n    import seqrec.api\nfrom . import base\n"
    found = set(imported_modules(SRC / "models" / "sasrec.py", source))
    assert found == {"seqrec.training", "seqrec.api", "seqrec.models"}
