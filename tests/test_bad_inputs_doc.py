"""``docs/security/BAD_INPUTS.md`` cannot rot: every row names tests that exist.

Each table row's last cell names one or more tests as ``tests/<file>.py::<test>``; the test
function must be defined in that file (found with ``ast``, so a test renamed or removed makes
this fail). The fuzz targets are tied together the same way: each target of
``fuzz/fuzzlib/`` has an atheris entry point, a hypothesis property that runs it, and a row.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "security" / "BAD_INPUTS.md"
NODE_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]`]*\])?`")


def rows() -> list[list[str]]:
    """The data rows of every table: lists of cells, header and separator rows left out."""
    out = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Entry point" or set("".join(cells)) <= set("-: "):
            continue
        out.append(cells)
    return out


@cache
def defined_tests(path: str) -> frozenset[str]:
    """Names of the test functions defined in a test file (module level or in classes)."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    )


def test_every_row_names_tests_that_exist() -> None:
    table = rows()
    assert len(table) >= 150, f"only {len(table)} rows: was a table dropped?"
    missing = []
    for cells in table:
        assert len(cells) == 4, f"a row needs entry point, input, refusal and test: {cells}"
        cited = NODE_ID.findall(cells[3])
        assert cited, f"a row names no test: {cells}"
        for path, name in cited:
            if not (ROOT / path).is_file() or name not in defined_tests(path):
                missing.append(f"{path}::{name}")
    assert not missing, f"BAD_INPUTS.md cites tests that do not exist: {missing}"


def test_every_layer_has_its_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    for section in ("## securemem", "## crypto", "## keros", "## sal", "## governance"):
        assert section in text


def test_every_fuzz_target_has_an_entry_point_a_property_and_a_row() -> None:
    source = (ROOT / "fuzz" / "fuzzlib" / "__init__.py").read_text(encoding="utf-8")
    block = source[source.index("TARGETS: dict[str, Callable[[], Target]] = {") :]
    names = re.findall(r'^\s+"(\w+)": ', block[: block.index("\n}\n")], re.MULTILINE)
    assert len(names) >= 28
    properties = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests").glob("test_fuzz_*.py")))
    doc = DOC.read_text(encoding="utf-8")
    for name in names:
        assert (ROOT / "fuzz" / f"fuzz_{name}.py").is_file(), f"no atheris entry point for {name}"
        assert f'target("{name}")' in properties, f"no hypothesis property runs {name}"
    fuzz_tests = {
        name
        for p in sorted((ROOT / "tests").glob("test_fuzz_*.py"))
        for name in defined_tests(str(p.relative_to(ROOT)))
        if name.startswith("test_fuzz_")
    }
    cited = {name for _, name in NODE_ID.findall(doc)}
    assert not fuzz_tests - cited, f"fuzz properties without a row: {sorted(fuzz_tests - cited)}"
