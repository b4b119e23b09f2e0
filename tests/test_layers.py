"""The package's layers (CONTRIBUTING.md, "Code layout and layers"): a module imports only from its own layer or
below, and no imports run in a circle. The import graph is read from the source with `ast`,
function-local imports included, so the graph itself is the assertion."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import zerosum

ROOT = Path(zerosum.__file__).parent

# Bottom to top; a module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "zerosum",
            "zerosum.typed_config",
            "zerosum.seeds",
            "zerosum.cache",
            "zerosum.hardware",
            "zerosum.tables",
            "zerosum.rundir",
            "zerosum.untrusted",
            "zerosum.wandb_logger",
        ),
    ),  # fmt: skip
    ("games", ("zerosum.games", "zerosum.solvers")),
    (
        "models",
        (
            "zerosum.models",
            "zerosum.batching",
            "zerosum.engines",
            "zerosum.prompts",
            "zerosum.scoring",
            "zerosum.loss",
            "zerosum.advantage",
            "zerosum.snapshot",
            "zerosum.checkpoint",
        ),
    ),  # fmt: skip
    (
        "play",
        (
            "zerosum.players",
            "zerosum.judges",
            "zerosum.rollout",
            "zerosum.magnet",
            "zerosum.league",
            "zerosum.match",
            "zerosum.play",
        ),
    ),  # fmt: skip
    (
        "learn and evaluate",
        (
            "zerosum.learner",
            "zerosum.evaluation",
            "zerosum.benchmark",
            "zerosum.arena",
            "zerosum.report",
            "zerosum.distributed",
            "zerosum.distributed.broadcast",
            "zerosum.distributed.weights",
            "zerosum.distributed.worker",
        ),
    ),  # fmt: skip
    ("config", ("zerosum.config", "zerosum.config_checks", "zerosum.plan")),
    (
        "entry points",
        (
            "zerosum.train",
            "zerosum.assembly",
            "zerosum.distributed.rollouts",
            "zerosum.distributed.placement",
            "zerosum.distributed.ray_backend",
            "zerosum.distributed.learner_group",
            "zerosum.cli",
            "zerosum.export",
            "zerosum.reference",
        ),
    ),  # fmt: skip
]
# Function-local imports of zerosum modules, each deferred on purpose: an optional heavy
# dependency (vLLM) is imported only when it is used.
DEFERRED = {("zerosum.engines", "zerosum.engines.vllm")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _target(module: str, name: str) -> str:
    """`from module import name`: the submodule `module.name` if there is one."""
    return f"{module}.{name}" if f"{module}.{name}" in MODULES else module


def imports(path: Path) -> dict[str, bool]:
    """The zerosum modules `path` imports, each mapped to whether only inside a function."""
    found: dict[str, bool] = {}

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                targets = [_target(child.module, a.name) for a in child.names]
            for t in targets:
                if t == "zerosum" or t.startswith("zerosum."):
                    found[t] = found.get(t, True) and inner
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    best = (-1, -1)  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    if best[1] < 0:
        raise KeyError(f"module {module!r} has no layer; add it to LAYERS")
    return best[1]


def upward_imports(graph: dict[str, dict[str, bool]]) -> list[str]:
    """`a (layer) -> b (layer)` for every import of a module from a layer above its own,
    counting the packages a module's import runs (`zerosum.games.base` runs
    `zerosum.games`)."""
    found = []
    for module, targets in graph.items():
        for target in targets:
            parts = target.split(".")
            for k in range(2, len(parts) + 1):  # the target and every package above it
                name = ".".join(parts[:k])
                if layer_of(name) > layer_of(module) and not module.startswith(name + "."):
                    found.append(
                        f"{module} ({LAYERS[layer_of(module)][0]}) -> {name} "
                        f"({LAYERS[layer_of(name)][0]})"
                    )
    return sorted(set(found))


def test_every_module_has_a_layer():
    assert len(MODULES) > 30
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(GRAPH) == []


def test_the_check_finds_an_upward_import():
    """The assertion above can fail: the game layer importing the config is caught, as is
    a module whose package's own imports reach up."""
    graph = {**GRAPH, "zerosum.games.base": {"zerosum.config": False}}
    assert upward_imports(graph) == ["zerosum.games.base (games) -> zerosum.config (config)"]
    assert upward_imports({"zerosum.rollout": {"zerosum.distributed.learner_group": True}})


def test_no_import_cycles():
    """Imports of a package's own `__init__` by its submodules are Python's package
    mechanics, not an edge of the graph."""
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in GRAPH.items()}
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as err:
        # graphlib lists each module before the one that imports it: reversed, A -> B is
        # "A imports B".
        pytest.fail(f"import cycle: {' -> '.join(reversed(err.args[1]))}")


def test_function_local_imports_of_zerosum_modules_are_deferred_on_purpose():
    local = {(m, t) for m, targets in GRAPH.items() for t, inner in targets.items() if inner}
    assert local == DEFERRED
