"""The runner behind the seed's self-test entry points: named checks, one line each, and
the closing ``N passed, M failed``."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable


def expect(condition: bool, what: str = "") -> None:
    if not condition:
        raise AssertionError(what or "expectation failed")


def raises(exc: type[BaseException] | tuple[type[BaseException], ...], fn: Callable[[], object]) -> None:
    try:
        fn()
    except exc:
        return
    raise AssertionError(f"expected {exc}")


def run(checks: Iterable[tuple[str, Callable[[], None]]]) -> int:
    """Run every check; print ``ok``/``FAIL`` lines and the summary; 0 if all passed."""
    passed = failed = 0
    for name, check in checks:
        try:
            check()
        except Exception:
            failed += 1
            sys.stdout.write(f"FAIL {name}\n{traceback.format_exc()}")
        else:
            passed += 1
            sys.stdout.write(f"ok   {name}\n")
    sys.stdout.write(f"{passed} passed, {failed} failed\n")
    return 0 if failed == 0 else 1
