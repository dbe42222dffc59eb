"""Start an atheris entry point: instrument ``cortex_sal`` and ``fuzzlib`` for coverage
feedback, then fuzz one target of ``fuzzlib.TARGETS`` (see fuzz/README.md).

Kept apart from ``fuzzlib`` so that nothing of ``cortex_sal`` is imported before the
instrumentation hook is in place. The modules instrumented are derived, not listed: every
module of ``cortex_sal`` found on disk (:func:`library_modules`), a superset of those any
target reaches, including those the library itself imports lazily inside a function.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

DEFAULTS = ("-max_len=600", "-len_control=0")  # plans need a few hundred bytes from the start
LIBRARY = "cortex_sal"
NOT_IMPORTED = frozenset({f"{LIBRARY}.__main__"})  # importing it runs the command line


def library_modules() -> list[str]:
    """The dotted names of every module of ``cortex_sal``, read off the files on disk without
    importing anything (a directory without ``__init__.py`` would be a namespace
    package that ``pkgutil`` would skip)."""
    spec = importlib.util.find_spec(LIBRARY)  # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{LIBRARY} is not importable (run from the checkout with PYTHONPATH=src)")
    names = set()
    for location in spec.submodule_search_locations:
        root = Path(location)
        for path in root.rglob("*.py"):
            parts = (LIBRARY, *path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if all(part.isidentifier() for part in parts):
                names.add(".".join(parts))
    return sorted(names - NOT_IMPORTED)


def run(name: str) -> None:
    if "--replay" in sys.argv:
        import fuzzlib

        fuzzlib.main(name)
        return
    import atheris

    with atheris.instrument_imports(include=[LIBRARY, "fuzzlib"]):
        import fuzzlib

        for module in library_modules():
            importlib.import_module(module)
    for flag in DEFAULTS:
        if not any(arg.startswith(flag.split("=")[0] + "=") for arg in sys.argv):
            sys.argv.append(flag)
    fuzzlib.main(name)
