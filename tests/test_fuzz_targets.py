"""The fuzz harness holds together: every target a test in ``tests/`` runs is also reachable by
atheris, every atheris entry point (``fuzz/fuzz_<target>.py``) names a registered target,
``fuzz/fuzzrun.py`` instruments every library module a target reaches, and each layer's module
of ``fuzz/fuzzlib/`` imports only the library layer it fuzzes and those below (see fuzz/README.md).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import fuzzlib
import fuzzrun

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
LIBRARY = "cortex_sal"


def _layer_ranks() -> dict[str, int]:
    """The layers of docs/architecture.md as the import-linter contract in pyproject.toml states them
    (highest first there; rank 0 is the lowest here; siblings on one line share a rank)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    ranks = {}
    for rank, line in enumerate(reversed(contract["layers"])):
        for module in line.split("|"):
            ranks[module.strip().removeprefix(LIBRARY + ".")] = rank
    return ranks


# A module of fuzz/fuzzlib/ may import its own layer and those below. ``plan`` and ``oracle``
# are shared by every layer's targets.
LAYER_RANK = _layer_ranks()
FUZZLIB_LAYER: dict[str, str | None] = {
    "plan": None,  # nothing of cortex_sal
    "oracle": "crypto",  # the arena's slot count warms up the crypto layer's HMAC state
    "crypto": "crypto",
    "keros": "keros",
    "sal": "sal",
    "governance": "governance",
    "store": "store",
}


def entry_points() -> dict[str, list[str]]:
    """Each ``fuzz/fuzz_*.py`` -> the target names its ``fuzzrun.run(...)`` calls pass."""
    found = {}
    for path in sorted(FUZZ.glob("fuzz_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.name] = [
            node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else repr(ast.unparse(node))
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "fuzzrun.run"
        ]
    return found


def targets_run_by_tests() -> set[str]:
    """The target names the tests run, through a ``TargetCache`` (``target("name")``) or the registry."""
    pattern = re.compile(r'\btarget\("(\w+)"\)|TARGETS\["(\w+)"\]')
    names = set()
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == Path(__file__).name:  # this file names the pattern, not a target
            continue
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            names.add(match.group(1) or match.group(2))
    return names


def library_imports(path: Path) -> set[str]:
    """The ``cortex_sal`` modules a file imports (anywhere: the targets import lazily), with
    ``from cortex_sal.x import y`` counted as ``cortex_sal.x.y`` too when that is a module."""
    modules = fuzzrun.library_modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == LIBRARY}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == LIBRARY:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names} & set(modules)
    return found


def test_every_target_the_tests_run_has_an_atheris_entry_point() -> None:
    used = targets_run_by_tests()
    assert len(used) >= 29
    assert not used - set(fuzzlib.TARGETS), f"tests run unregistered targets: {sorted(used - set(fuzzlib.TARGETS))}"
    reachable = {name for names in entry_points().values() for name in names}
    assert not used - reachable, f"targets without an atheris entry point: {sorted(used - reachable)}"


def test_every_atheris_entry_point_names_one_registered_target() -> None:
    points = entry_points()
    assert points
    for file, names in points.items():
        assert len(names) == 1, f"{file} starts {names} (one target per entry point)"
        assert names[0] in fuzzlib.TARGETS, f"{file} names no registered target: {names[0]}"
        assert file == f"fuzz_{names[0]}.py", f"{file} runs {names[0]}"
    assert set(fuzzlib.TARGETS) == {names[0] for names in points.values()}, "a registered target has no entry point"


def test_pending_names_no_registered_target() -> None:
    assert not set(fuzzlib.PENDING) & set(fuzzlib.TARGETS)


def test_instrumentation_covers_every_library_module_the_targets_reach() -> None:
    instrumented = set(fuzzrun.library_modules())
    assert {f"{LIBRARY}.errors", f"{LIBRARY}.keros.framing", f"{LIBRARY}.sal.shield"} <= instrumented
    assert f"{LIBRARY}.__main__" not in instrumented  # importing it would run the command line
    reached = set().union(*(library_imports(p) for p in sorted((FUZZ / "fuzzlib").glob("*.py"))))
    assert reached
    assert not reached - instrumented, f"not instrumented: {sorted(reached - instrumented)}"
    loaded = {  # a namespace package (a directory without __init__.py) has no code to instrument
        name
        for name, module in list(sys.modules.items())
        if (name == LIBRARY or name.startswith(LIBRARY + ".")) and getattr(module, "__file__", None)
    }
    loaded -= {f"{LIBRARY}.__main__"}
    assert not loaded - instrumented, (
        f"modules loaded in this run but not instrumented: {sorted(loaded - instrumented)}"
    )


def test_each_layer_module_imports_only_its_layer_and_those_below() -> None:
    modules = {p.stem for p in (FUZZ / "fuzzlib").glob("*.py")} - {"__init__"}
    assert modules == set(FUZZLIB_LAYER)
    for stem, layer in FUZZLIB_LAYER.items():
        path = FUZZ / "fuzzlib" / f"{stem}.py"
        for module in library_imports(path):
            below = module.split(".")[1] if module != LIBRARY else "errors"
            assert layer is not None, f"fuzzlib/{stem}.py imports {module}"
            assert LAYER_RANK[below] < LAYER_RANK[layer] or below == layer, f"fuzzlib/{stem}.py imports {module}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fuzzlib."):
                sibling = FUZZLIB_LAYER[node.module.split(".")[1]]
                if sibling is None:
                    continue
                assert layer is not None
                assert LAYER_RANK[sibling] < LAYER_RANK[layer] or sibling == layer, (
                    f"fuzzlib/{stem} imports {node.module}"
                )
            if isinstance(node, ast.ImportFrom) and node.module == "fuzzlib":
                raise AssertionError(f"fuzzlib/{stem}.py imports the registry (a cycle)")
