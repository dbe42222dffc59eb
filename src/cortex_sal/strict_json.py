"""The one strict JSON loader of the package (base layer: no I/O, no other cortex_sal import but errors).

Every document Cortex SAL reads — governance proposals and bundles, node files, audit records,
certificate roots, sensor registries — goes through :func:`loads`, which refuses what Python's
``json`` module lets through by default:

* a key given twice in one object (``json`` keeps the last one silently);
* ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, RFC 8259 section 6);
* nesting so deep that the parser recurses out of the stack.

Each refusal raises the caller's :class:`~cortex_sal.errors.CortexError` subclass with a message
that starts with ``what`` (e.g. ``"proposal p.json"``), so each document keeps its own error type.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .errors import CortexError

__all__ = ["loads"]


def loads(
    text: str | bytes,
    error: type[CortexError],
    what: str,
    *,
    parse_int: Callable[[str], Any] | None = None,
) -> Any:
    """Parse ``text``; raise ``error("<what>: ...")`` for a duplicate key, a non-finite constant or bad JSON.

    ``parse_int`` is passed to :func:`json.loads` (e.g. to bound the size of integer literals); an
    ``error`` it raises goes through unchanged.
    """
    prefix = f"{what}: " if what else ""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise error(f"{prefix}duplicate JSON key {key!r}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise error(f"{prefix}{name} is not valid JSON")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_int=parse_int)
    except CortexError:
        raise  # raised by a hook above or by parse_int: already says what is wrong
    except RecursionError:
        raise error(f"{prefix}not valid JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise error(f"{prefix}not UTF-8 text") from None
    except ValueError as exc:  # json.JSONDecodeError, or a ValueError of parse_int
        raise error(f"{prefix}not valid JSON: {exc}") from None
