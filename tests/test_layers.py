"""The package's layers: no module imports from a layer above its own, no import cycle, no deferred
package import. Every module under mcjepa/ is parsed with `ast` (nothing is imported).

Layers, bottom to top; a module may import its own package and any lower layer, never a sibling of its
layer nor a layer above. Evaluation sits below training: eval needs only a model and datasets, and the
trainer logs a held-out EPE with the evaluator (as RAFT's train.py calls its evaluate.py).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mcjepa"

LAYERS = (  # (rank, top-level names under mcjepa/)
    (0, ("config", "utils", "__init__")),
    (1, ("models", "report")),
    (2, ("losses", "data")),
    (3, ("eval",)),
    (4, ("train",)),
    (5, ("experiments", "result_cache")),
    (6, ("ablations", "cluster")),
    (7, ("claims",)),
    (8, ("viz",)),
    (9, ("reproduce", "session", "flow_video")),
    (10, ("notebook_outputs", "__main__")),
)
DEFERRED_ELSEWHERE: set[str] = set()  # modules allowed deferred package imports (none)
RANK = {name: rank for rank, names in LAYERS for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def imported_modules(source: str, module: str, is_package: bool = False, deferred: bool | None = None
                     ) -> list[tuple[str, int]]:
    """(absolute mcjepa module, line) of every package import in `source`; `deferred` True/False keeps only
    the imports inside / outside a function."""
    tree = ast.parse(source)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(child) for child in ast.walk(node) if child is not node}
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if deferred is not None and (id(node) in inside) != deferred:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "mcjepa"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mcjepa":
                continue
            if node.module is None or target == "mcjepa":  # `from . import flow_datasets`: the submodules
                found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((target, node.lineno))
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """'module:line imports target (layer a, rank i -> layer b, rank j)' for every import that runs upward
    or sideways."""
    own = layer(module)
    out = []
    for target, line in imported_modules(source, module, is_package):
        other = layer(target)
        if other == own or other not in RANK:
            continue
        if RANK[other] >= RANK[own]:
            out.append(f"{module}:{line} imports {target} ({own}, layer {RANK[own]} -> {other}, layer {RANK[other]})")
    return out


def package_modules() -> dict[str, tuple[Path, bool]]:
    return {module_name(p): (p, p.name == "__init__.py") for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_top_level_name_has_a_layer():
    names = {layer(m) for m in package_modules()}
    assert names <= set(RANK), f"give these a layer in LAYERS: {sorted(names - set(RANK))}"


def test_the_check_catches_an_upward_and_a_sideways_import():
    assert violations("from ..train.checkpoint import load_model\n", "mcjepa.eval.suite")
    assert violations("def f():\n    from ..train.trainer import train\n", "mcjepa.eval.suite")
    assert violations("from ..data import registry\n", "mcjepa.losses.total")  # a sibling layer
    assert violations("import mcjepa.viz.plots\n", "mcjepa.models.warp")
    assert not violations("from ..models.mcjepa import MCJEPA\nfrom .davis import x\n", "mcjepa.eval.suite")
    assert imported_modules("from . import formats\n", "mcjepa.data", is_package=True) == [("mcjepa.data.formats", 1)]


def test_no_import_runs_up_the_layers():
    found = [v for m, (p, pkg) in package_modules().items() for v in violations(p.read_text(), m, pkg)]
    assert not found, "imports against the layers:\n  " + "\n  ".join(found)


def test_no_package_import_is_deferred():
    """Package imports sit at the top of a module (a deferred one hides a cycle or a layer violation)."""
    found = [f"{m}:{line} imports {target} inside a function"
             for m, (p, pkg) in package_modules().items() if m not in DEFERRED_ELSEWHERE
             for target, line in imported_modules(p.read_text(), m, pkg, deferred=True)]
    assert not found, "\n  ".join(found)


def test_module_imports_have_no_cycle():
    modules = package_modules()
    graph = {m: {t for t, _ in imported_modules(p.read_text(), m, pkg, deferred=False)} & set(modules) - {m}
             for m, (p, pkg) in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1 and not (node.startswith(nxt + ".")):  # a package's __init__ is its parent
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
