"""Plans and their decoder, shared by every target: a :class:`Plan` (mutate a valid input with
these :class:`Mutation` s, or raw bytes, or a non-bytes object) decoded from fuzzer bytes
(:func:`decode_plan`, atheris) or drawn by hypothesis (:func:`plans`), and the mutations that
know a format's fields (:class:`Spec`) or a JSON document's structure (:func:`json_message`).

Imports nothing of ``cortex_sal``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

# --- plans and mutations ----------------------------------------------------------------------

KINDS = (
    "flip",  # flip bit a
    "truncate",  # keep the first a bytes
    "extend",  # append data
    "overwrite",  # write data at a
    "insert",  # insert data at a
    "delete",  # delete 1 + b % 16 bytes at a
    "set_byte",  # byte a := an interesting byte (b)
    "swap_fields",  # swap fields a and b
    "replace_field",  # field a := data
    "alt_field",  # field a := alternate b of that field (e.g. a low-order point)
    "int_field",  # integer field a := interesting value b
    "duplicate",  # repeat field a
)
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x22, 0x5B, 0x7B, 0x30)


@dataclass(frozen=True)
class Mutation:
    kind: str
    a: int = 0
    b: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class Plan:
    """One fuzz input: ``mutate`` a valid input (``base`` picks which), ``raw`` bytes, or a
    non-bytes ``object`` (``base`` picks it from :data:`ODD_OBJECTS`)."""

    kind: str = "mutate"
    base: int = 0
    mutations: tuple[Mutation, ...] = ()
    raw: bytes = b""


@dataclass(frozen=True)
class Spec:
    """Structure of a valid input: byte fields, integer fields (big-endian) with interesting
    values, and alternates per field (values that random bytes would never hit)."""

    fields: tuple[tuple[int, int], ...] = ()
    int_fields: tuple[tuple[int, int, tuple[int, ...]], ...] = ()
    alternates: tuple[tuple[int, tuple[bytes, ...]], ...] = ()


def _field(data: bytes, span: tuple[int, int]) -> tuple[int, int]:
    start, end = span
    return min(start, len(data)), min(end, len(data))


def mutate(valid: bytes, mutations: Iterable[Mutation], spec: Spec = Spec()) -> bytes:
    """Apply ``mutations`` in order; every position is taken modulo the current size."""
    out = bytearray(valid)
    for m in mutations:
        n = len(out)
        if m.kind == "flip" and n:
            bit = m.a % (8 * n)
            out[bit // 8] ^= 1 << (bit % 8)
        elif m.kind == "truncate" and n:
            del out[m.a % n :]
        elif m.kind == "extend":
            out += m.data or b"\x00"
        elif m.kind == "overwrite" and n:
            at = m.a % n
            out[at : at + len(m.data)] = m.data
        elif m.kind == "insert":
            at = m.a % (n + 1)
            out[at:at] = m.data or b"\x00"
        elif m.kind == "delete" and n:
            at = m.a % n
            del out[at : at + 1 + m.b % 16]
        elif m.kind == "set_byte" and n:
            out[m.a % n] = INTERESTING_BYTES[m.b % len(INTERESTING_BYTES)]
        elif m.kind == "swap_fields" and spec.fields:
            (s1, e1), (s2, e2) = (_field(out, spec.fields[i % len(spec.fields)]) for i in (m.a, m.b))
            if (s1, e1) != (s2, e2) and (e1 <= s2 or e2 <= s1):
                if s1 > s2:
                    (s1, e1), (s2, e2) = (s2, e2), (s1, e1)
                out[s1:e2] = out[s2:e2] + out[e1:s2] + out[s1:e1]
        elif m.kind == "replace_field" and spec.fields:
            s, e = _field(out, spec.fields[m.a % len(spec.fields)])
            out[s:e] = m.data
        elif m.kind == "alt_field" and spec.alternates:
            index, options = spec.alternates[m.a % len(spec.alternates)]
            s, e = _field(out, spec.fields[index])
            out[s:e] = options[m.b % len(options)]
        elif m.kind == "int_field" and spec.int_fields:
            s, e, values = spec.int_fields[m.a % len(spec.int_fields)]
            s, e = _field(out, (s, e))
            if e > s:
                value = values[m.b % len(values)] if values else int.from_bytes(m.data[:8] or b"\x00", "big")
                out[s:e] = (value % (1 << (8 * (e - s)))).to_bytes(e - s, "big")
        elif m.kind == "duplicate" and spec.fields:
            s, e = _field(out, spec.fields[m.a % len(spec.fields)])
            out[e:e] = out[s:e]
    return bytes(out)


def _strided(n: int) -> memoryview:
    return memoryview(bytearray(2 * n))[::2]


# non-bytes inputs a caller may pass by mistake (or on purpose)
ODD_OBJECTS: tuple[Callable[[], object], ...] = (
    lambda: None,
    lambda: 0,
    lambda: -1,
    lambda: 72,
    lambda: 3.5,
    lambda: math.nan,
    lambda: True,
    lambda: "x" * 72,
    lambda: "",
    lambda: [0] * 72,
    lambda: (1, 2),
    lambda: {},
    lambda: {"a": 1},
    lambda: object(),
    lambda: np.zeros(72, np.uint8),
    lambda: np.float64(1.0),
    lambda: bytearray(72),
    lambda: memoryview(bytes(72)),
    lambda: _strided(72),
    lambda: memoryview(np.zeros(18, np.uint32)),
    lambda: b"",
    lambda: bytes(100_000),
)


def odd_object(base: int) -> object:
    return ODD_OBJECTS[base % len(ODD_OBJECTS)]()


def message(plan: Plan, valid: bytes, spec: Spec = Spec()) -> object:
    """The input a plan describes, given the valid input it mutates."""
    if plan.kind == "raw":
        return plan.raw
    if plan.kind == "object":
        return odd_object(plan.base)
    return mutate(valid, plan.mutations, spec)


def decode_plan(data: bytes) -> Plan:
    """The plan some bytes encode: how both fuzzers (atheris's libFuzzer and hypothesis, see
    :func:`plans`) explore plans while they mutate and shrink plain bytes.

    ``data[0] % 8``: 0-5 mutate the valid input (``data[1]`` picks it) with up to eight
    operations of six bytes each (kind, a: u16, b: u16, size) followed by ``size % 49`` bytes
    of data - at least one operation, zero-padded; 6 is ``raw`` bytes; 7 a non-bytes object.
    """
    mode = data[0] % 8 if data else 0
    base = data[1] if len(data) > 1 else 0
    if mode == 6:
        return Plan("raw", base=base, raw=data[1:])
    if mode == 7:
        return Plan("object", base=base)
    ops = []
    at = 2
    while len(ops) < 8 and (at + 6 <= len(data) or not ops):
        head = data[at : at + 6].ljust(6, b"\x00")
        size = head[5] % 49
        ops.append(
            Mutation(KINDS[head[0] % len(KINDS)], int.from_bytes(head[1:3], "big"), int.from_bytes(head[3:5], "big"),
                     data[at + 6 : at + 6 + size])
        )  # fmt: skip
        at += 6 + size
    return Plan("mutate", base=base, mutations=tuple(ops))


def plans(*, max_size: int = 200) -> Any:
    """The hypothesis strategy of plans: bytes decoded by :func:`decode_plan` (one cheap draw
    per example; hypothesis shrinks the bytes, hence the plan)."""
    from hypothesis import strategies as st

    return st.binary(max_size=max_size).map(decode_plan)


# --- JSON-aware mutations (registry files, bundles, proposals, audit exports) -----------------

_BIG_FLOAT = "__fuzz_1e999__"


@dataclass(frozen=True)
class Deep:
    """``inner`` nested ``levels`` deep in arrays (or objects): written by :func:`dump_json`
    without recursion, so the harness itself never hits Python's recursion limit."""

    levels: int
    inner: object = 0
    as_object: bool = False


def deep(levels: int, leaf: object = 0, as_object: bool = False) -> Deep:
    return Deep(levels, leaf, as_object)


def odd_json_value(selector: int, data: bytes) -> object:
    """A JSON value that parsers tend to get wrong (``selector`` picks one)."""
    options: list[Callable[[], object]] = [
        lambda: None,
        lambda: True,
        lambda: False,
        lambda: 0,
        lambda: -1,
        lambda: 1.5,
        lambda: 2**53,
        lambda: 2**53 + 1,
        lambda: 2**64,
        lambda: -(2**63) - 1,
        lambda: 10**400,
        lambda: _BIG_FLOAT,
        lambda: math.nan,
        lambda: math.inf,
        lambda: -math.inf,
        lambda: "",
        lambda: " ",
        lambda: "x" * 200,
        lambda: "ZZ",
        lambda: "\ud800",
        lambda: "\u0000",
        lambda: [],
        lambda: {},
        lambda: deep(50 + int.from_bytes(data[:2] or b"\x00", "big") % 1500),
        lambda: deep(50 + int.from_bytes(data[:2] or b"\x00", "big") % 1500, as_object=True),
        lambda: deep(100_000),
        lambda: "00" * 32,
        lambda: "0" * 16,
        lambda: data.hex(),
        lambda: data.decode("latin-1"),
        lambda: list(data),
        lambda: 1e-320,
        lambda: -0.0,
        lambda: 1.8e9,
        lambda: "EU",
        lambda: {"": data.hex()},
    ]
    return options[selector % len(options)]()


def _paths(doc: object) -> list[tuple[object, ...]]:
    """Every path into ``doc`` (iteratively; :class:`Deep` values are leaves)."""
    out: list[tuple[object, ...]] = []
    todo: list[tuple[object, tuple[object, ...]]] = [(doc, ())]
    while todo:
        node, prefix = todo.pop()
        out.append(prefix)
        if isinstance(node, dict):
            todo.extend((v, (*prefix, k)) for k, v in node.items())
        elif isinstance(node, list):
            todo.extend((v, (*prefix, i)) for i, v in enumerate(node))
    return out


def _parent(doc: object, path: tuple[object, ...]) -> tuple[Any, object]:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    return node, path[-1]


def mutate_json(doc: object, mutations: Iterable[Mutation]) -> object:
    """Structure-aware edits of a JSON document: set a value, drop or add a member, wrap a
    value in an array, swap two values, nest deeply."""
    doc = copy.deepcopy(doc)
    for m in mutations:
        paths = _paths(doc)
        path = paths[m.a % len(paths)]
        op = KINDS.index(m.kind) % 6
        if not path:
            if op == 0:
                doc = odd_json_value(m.b, m.data)
            continue
        parent, key = _parent(doc, path)
        if op == 0:  # set
            parent[key] = odd_json_value(m.b, m.data)
        elif op == 1:  # drop
            del parent[key]
        elif op == 2 and isinstance(parent, dict):  # add a member
            parent[m.data.decode("latin-1") or "extra"] = odd_json_value(m.b, m.data)
        elif op == 2:
            parent.insert(key, odd_json_value(m.b, m.data))
        elif op == 3:  # wrap
            parent[key] = [parent[key]]
        elif op == 4:  # swap with another value
            other = paths[m.b % len(paths)]
            if other and other[: len(path)] != path and path[: len(other)] != other:
                p2, k2 = _parent(doc, other)
                parent[key], p2[k2] = p2[k2], parent[key]
        else:  # nest deeply
            parent[key] = deep(1 + m.b % 1500, parent[key], as_object=bool(m.b & 1))
    return doc


def dump_json(doc: object) -> bytes:
    """``json.dumps`` that also writes :class:`Deep` values, the literal ``1e999``, NaN and
    infinities (as Python's ``json`` does) and lone surrogates."""
    parts: dict[str, str] = {}

    def placeholder(value: object) -> str:
        if not isinstance(value, Deep):
            raise TypeError(f"cannot write {type(value).__name__}")
        inner = dump_json(value.inner).decode("utf-8", "surrogatepass")
        opening, closing = ('{"a":', "}") if value.as_object else ("[", "]")
        key = f"__fuzz_deep_{len(parts)}__"
        parts[json.dumps(key)] = opening * value.levels + inner + closing * value.levels
        return key

    text = json.dumps(doc, separators=(",", ":"), allow_nan=True, default=placeholder)
    for key, value in parts.items():
        text = text.replace(key, value, 1)
    return text.replace(json.dumps(_BIG_FLOAT), "1e999").encode("utf-8", "surrogatepass")


def json_message(plan: Plan, doc: object, text: bytes, spec: Spec = Spec()) -> object:
    """Even ``base``: byte-level mutations of ``text``; odd ``base``: JSON-level ones of ``doc``."""
    if plan.kind == "mutate" and plan.base % 2:
        return dump_json(mutate_json(doc, plan.mutations))
    return message(plan, text, spec)
