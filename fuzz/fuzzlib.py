"""The fuzzing harness shared by the hypothesis property tests and the atheris entry points.

One *target* per parser or state machine that takes outside bytes. A target knows a few
valid inputs, how to mutate them with awareness of their structure (fields, integer fields
and interesting values, alternates such as low-order X25519 points), and an *oracle*
(:meth:`Target.run`) that feeds one input and checks, for every input:

* only the exceptions the code documents for that entry point are raised (the specific
  ``CortexError`` subclasses; anything else - ``ValueError``, ``IndexError``,
  ``struct.error``, ``RecursionError``, a warning under ``-W error`` - propagates and fails
  the run);
* what is accepted is exactly what a model of the format says is acceptable (where the
  format allows such a model: sizes, known hashes, freshness, low-order points,
  authenticated bytes);
* a refused input changes nothing (or exactly what is documented: a v1 handshake that fails
  is terminal and purges its keys; a frame whose tag fails compromises a session whose
  ``compromise_on_auth_failure`` is on) and leaves no secure buffer behind; the entry point
  still accepts the next valid input.

``tests/test_fuzz_*.py`` drive the targets with hypothesis (:func:`plans`, 10,000 examples
each in CI); ``fuzz/fuzz_<target>.py`` drive them with atheris (:func:`main`), decoding the
fuzzer's bytes into the same :class:`Plan` (:func:`decode_plan`). A violation raises
:class:`OracleViolation` (an ``AssertionError``).

The certificate and Noise parsers get their targets here when those modules land (see
``PENDING`` at the end of this file).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import gc
import hashlib
import hmac as std_hmac
import itertools
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as COracleEd25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as COracleX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as COraclePublic
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from cortex_sal.errors import CortexError

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


# --- the oracle's tools ------------------------------------------------------------------------


class OracleViolation(AssertionError):
    """An input made the code break its contract."""


def require(condition: object, what: str) -> None:
    if not condition:
        raise OracleViolation(what)


def refusal(allowed: Sequence[type[BaseException]], fn: Callable[[], Any]) -> tuple[Any, CortexError | None]:
    """``(result, None)``, or ``(None, exc)`` for a documented refusal.

    A ``CortexError`` of a type not in ``allowed`` is a violation; any other exception
    propagates as it is (it is a crash). The traceback of a refusal is dropped at once: its
    frames hold the secure buffers of the failed call.
    """
    try:
        return fn(), None
    except CortexError as exc:
        exc.__traceback__ = None
        if type(exc) not in allowed:
            raise OracleViolation(
                f"undocumented {type(exc).__name__} (allowed: {', '.join(t.__name__ for t in allowed)}): {exc}"
            ) from None
        if not str(exc).strip():
            raise OracleViolation(f"{type(exc).__name__} without a message") from None
        return None, exc


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Keep the cyclic garbage collector off for a window whose slot counts are compared.

    A secure buffer of some unrelated, earlier object freed by a collection in the middle of
    the window would change the count by chance; reference counting still frees at once.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_warm = False


def live_slots() -> tuple[int, int]:
    """Live (slots, bytes) of the secure arena, after allocating the per-thread HMAC state
    (a locked scratch buffer the crypto layer keeps for the thread's life)."""
    global _warm
    from cortex_sal.securemem.arena import arena

    if not _warm:
        from cortex_sal.crypto import hmac_sha256_into
        from cortex_sal.securemem import SecureKeyBuffer

        with SecureKeyBuffer() as key, SecureKeyBuffer() as out:
            hmac_sha256_into(key, out, b"warm up")
        _warm = True
    return arena().live_slots()


def is_bytes_like(data: object) -> bool:
    return isinstance(data, bytes | bytearray | memoryview)


def as_bytes(data: object) -> bytes:
    return bytes(data) if is_bytes_like(data) else b""  # type: ignore[arg-type]


def c_public(private: bytes) -> bytes:
    return COracleX25519.from_private_bytes(private).public_key().public_bytes_raw()


_PROBE = COracleX25519.from_private_bytes(bytes(range(7, 39)))


def low_order(public: bytes) -> bool:
    """True if X25519 with this public key gives the all-zero secret (``cryptography`` decides)."""
    try:
        _PROBE.exchange(COraclePublic.from_public_bytes(public))
    except ValueError:
        return True
    return False


# The eight points of small order on Curve25519, and non-canonical encodings of them
# (RFC 7748 section 6.1 refuses all-zero outputs; libsodium's has_small_order blocklist).
LOW_ORDER_POINTS: tuple[bytes, ...] = (
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880"),
    bytes.fromhex("4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7"),
    bytes.fromhex("d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    bytes.fromhex("daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    bytes.fromhex("dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
)


class Target:
    """A parser or state machine under fuzz. Calling it feeds one plan and checks the oracle
    (:meth:`run`); it returns a short outcome label (hypothesis records them as events)."""

    name = "target"

    def __call__(self, plan: Plan) -> str:
        with paused_gc():
            return self.run(plan)

    def run(self, plan: Plan) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Release what the target holds (sessions, shields, channels, keys, scratch files)."""
        for attr in ("session", "shield", "channel", "scratch"):
            thing = getattr(self, attr, None)
            if thing is not None:
                thing.close()
        gov = getattr(self, "gov", None)
        if gov is not None:
            for key in gov.keys:
                key.purge()


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Scratch:
    """A private temporary directory for targets that read files, named after the process.

    libFuzzer ends an atheris run with C's ``exit()``, so neither ``close()`` nor ``atexit``
    runs there: each new scratch directory removes those left by processes that are gone.
    """

    def __init__(self) -> None:
        shm = Path("/dev/shm")  # memory-backed where there is one: a disk write per input is slow
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
        for stale in base.glob("cortex-fuzz-*-*"):
            pid = stale.name.split("-")[2]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"cortex-fuzz-{os.getpid()}-", dir=base))
        atexit.register(self.close)

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# =============================================================================================
# KEROS
# =============================================================================================

T0 = 1_800_000_000.0
SENSOR = "eeg_fp1_certified_v1"
GATEWAY = "cortex-fuzz-gateway"
S2G = b"cortex-sensor-frames-v1 sensor->gateway"
G2S = b"cortex-sensor-frames-v1 gateway->sensor"
HANDSHAKE_INFO = b"cortex-sensor-ecdh-handshake-v1"
SENSOR_PRIVATE = bytes(range(1, 33))
GATEWAY_PRIVATES = (bytes(range(101, 133)), bytes(range(140, 172)))


def oracle_session_key(private: bytes, peer_public: bytes, challenge: bytes) -> bytes:
    shared = COracleX25519.from_private_bytes(private).exchange(COraclePublic.from_public_bytes(peer_public))
    return HKDF(hashes.SHA256(), 32, challenge, HANDSHAKE_INFO).derive(shared)


def _hello_spec(now_ms: int, hashes_: tuple[bytes, ...]) -> Spec:
    window = 30_000
    stamps = (0, 1, now_ms, now_ms - window, now_ms + window, now_ms - window - 1, now_ms + window + 1,
              now_ms - 2 * window, 2**63, 2**64 - 1, now_ms // 1000)  # fmt: skip
    return Spec(
        fields=((0, 32), (32, 64), (64, 72)),
        int_fields=((64, 72, stamps),),
        alternates=((0, hashes_), (1, LOW_ORDER_POINTS)),
    )


class V1MessageTarget(Target):
    """``SensorHello`` / ``TEEHello`` / ``SensorAck``.parse: exact size or ``HandshakeMessageError``."""

    def __init__(self, which: str) -> None:
        from cortex_sal.keros.messages import SensorAck, SensorHello, TEEHello

        self.name = f"v1_{which}"
        self.cls, self.size = {"hello": (SensorHello, 72), "tee_hello": (TEEHello, 96), "ack": (SensorAck, 32)}[which]
        rnd = [hashlib.sha256(bytes([i])).digest() for i in range(4)]
        if which == "hello":
            self.bases = [rnd[i] + rnd[i + 1] + struct.pack(">Q", int(T0 * 1000) + i) for i in range(3)]
            self.spec = _hello_spec(int(T0 * 1000), (rnd[0],))
        elif which == "tee_hello":
            self.bases = [rnd[i] + rnd[i + 1] + rnd[(i + 2) % 4] for i in range(3)]
            self.spec = Spec(fields=((0, 32), (32, 64), (64, 96)), alternates=((1, LOW_ORDER_POINTS),))
        else:
            self.bases = rnd
            self.spec = Spec(fields=((0, 16), (16, 32)))

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import HandshakeMessageError

        data = message(plan, self.bases[plan.base % len(self.bases)], self.spec)
        expected = is_bytes_like(data) and len(as_bytes(data)) == self.size
        parsed, exc = refusal((HandshakeMessageError,), lambda: self.cls.parse(data))
        if exc is not None:
            require(not expected, f"{self.name}: a well-sized message was refused: {exc}")
            return "refused"
        require(expected, f"{self.name}: accepted {len(as_bytes(data))} bytes ({type(data).__name__})")
        require(parsed.to_bytes() == as_bytes(data), f"{self.name}: to_bytes() does not give the input back")
        return "parsed"


class GatewayHelloTarget(Target):
    """``GatewayHandshake.receive_sensor_hello``: accepted iff the model of v1 says so.

    Refusal is terminal by design (FAILED, nothing held); the shared registry is
    untouched and a fresh machine on it completes a handshake.
    """

    name = "gateway_hello"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock, SensorRegistry

        self.clock = ManualClock(T0)
        self.registry = SensorRegistry.default()
        self.candidates = [m.model_id for m in self.registry.models()]
        self.known = {hashlib.sha256(s.encode()).digest(): s for s in self.candidates}
        self.now_ms = int(T0 * 1000)
        pubs = [c_public(bytes([i + 1]) * 32) for i in range(3)]
        hashes_ = (*self.known, hashlib.sha256(b"eeg_unknown_v9").digest(), hashlib.sha256(b"").digest())
        self.bases = [
            h + pubs[i % 3] + struct.pack(">Q", self.now_ms + d)
            for i, (h, d) in enumerate((h, d) for h in self.known for d in (0, -29_000, 29_999))
        ]
        self.spec = _hello_spec(self.now_ms, hashes_)
        self._registry_view = self._view()

    def _view(self) -> object:
        return (
            [(m.model_id, m.snr_db, m.bits) for m in self.registry.models()],
            sorted(self.registry._revoked),
            self.registry.min_snr_db,
            self.registry.min_bits,
        )

    def expected(self, data: object) -> str | None:
        raw = as_bytes(data)
        if not is_bytes_like(data) or len(raw) != 72 or raw[:32] not in self.known:
            return None
        (ts,) = struct.unpack(">Q", raw[64:72])
        if abs(self.clock.time() * 1000 - ts) / 1000 > 30.0 or low_order(raw[32:64]):
            return None
        return self.known[raw[:32]]

    def fresh_handshake_completes(self) -> None:
        from cortex_sal.keros import GatewayHandshake, SensorHandshake

        sensor = SensorHandshake(SENSOR, clock=self.clock)
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        gateway.receive_sensor_ack(sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start())))
        with sensor.session() as s, gateway.session() as g, g.decrypt_frame(s.encrypt_frame(b"ok")) as got:
            require(got.constant_time_compare(b"ok"), "a fresh handshake does not carry frames")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import HandshakeMessageError, HandshakeStateError
        from cortex_sal.keros import GatewayHandshake, State

        base = self.bases[plan.base % len(self.bases)]
        data = message(plan, base, self.spec)
        expected = self.expected(data)
        slots = live_slots()
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        out, exc = refusal((HandshakeMessageError,), lambda: gateway.receive_sensor_hello(data))
        if exc is None:
            require(expected is not None, "gateway accepted a SensorHello the model refuses")
            require(gateway.state is State.HANDSHAKE, f"accepted hello left state {gateway.state}")
            require(gateway.sensor_id == expected, "gateway admitted another sensor than the hello names")
            require(isinstance(out, bytes) and len(out) == 96, "TEEHello is not 96 bytes")
            require(out[:32] == hashlib.sha256(GATEWAY.encode()).digest(), "TEEHello names another gateway")
            gateway.abort()
            outcome = "accepted"
        else:
            require(expected is None, f"gateway refused a valid SensorHello: {exc}")
            require(gateway.state is State.FAILED, f"refused hello left state {gateway.state}")
            require(gateway._session_key is None and gateway._ephemeral is None, "a refused machine holds a key")
            require(gateway.session_id is None, "a refused machine has a session id")
            _, again = refusal((HandshakeStateError,), lambda: gateway.receive_sensor_hello(base))
            require(again is not None, "a failed handshake is terminal, yet it took another hello")
            _, none = refusal((HandshakeStateError,), lambda: gateway.session())
            require(none is not None, "a failed handshake handed out a session")
            outcome = "refused"
        require(live_slots() == slots, "secure buffers left behind by the gateway")
        require(self._view() == self._registry_view, "the registry changed")
        if outcome == "refused":
            self.fresh_handshake_completes()
        return outcome


class GatewayAckTarget(Target):
    """``GatewayHandshake.receive_sensor_ack`` in HANDSHAKE: only the true ACK establishes."""

    name = "gateway_ack"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock, SensorRegistry

        self.clock = ManualClock(T0)
        self.registry = SensorRegistry.default()
        self.spec = Spec(fields=((0, 8), (8, 16), (16, 24), (24, 32)))

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import HandshakeMessageError
        from cortex_sal.keros import GatewayHandshake, SensorHandshake, State

        slots = live_slots()
        sensor = SensorHandshake(SENSOR, clock=self.clock)
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        ack = sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start()))
        data = message(plan, ack, self.spec)
        key = gateway._session_key
        _, exc = refusal((HandshakeMessageError,), lambda: gateway.receive_sensor_ack(data))
        if is_bytes_like(data) and as_bytes(data) == ack:
            require(exc is None, f"the true ACK was refused: {exc}")
            require(gateway.state is State.ESTABLISHED, "the true ACK did not establish")
            with sensor.session() as s, gateway.session() as g, g.decrypt_frame(s.encrypt_frame(b"x")) as got:
                require(got.constant_time_compare(b"x"), "sessions do not interoperate")
            outcome = "established"
        else:
            require(exc is not None, "a wrong ACK established the session")
            require(gateway.state is State.FAILED, f"a wrong ACK left state {gateway.state}")
            require(key is not None and key.is_purged and gateway._session_key is None, "session key not purged")
            sensor.abort()
            outcome = "refused"
        require(live_slots() == slots, "secure buffers left behind by the ACK check")
        return outcome


class SensorTeeHelloTarget(Target):
    """``SensorHandshake.receive_tee_hello``: any 96 bytes with a usable point are accepted
    (v1 authenticates nobody) and the ACK equals an independent computation."""

    name = "sensor_tee_hello"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock

        self.clock = ManualClock(T0)
        self.id_hash = hashlib.sha256(SENSOR.encode()).digest()
        self.bases = [
            hashlib.sha256(GATEWAY.encode()).digest() + c_public(p) + hashlib.sha256(p).digest()
            for p in GATEWAY_PRIVATES
        ]
        self.spec = Spec(fields=((0, 32), (32, 64), (64, 96)), alternates=((1, LOW_ORDER_POINTS),))

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import X25519PrivateKey
        from cortex_sal.errors import HandshakeMessageError
        from cortex_sal.keros import SensorHandshake, State
        from cortex_sal.securemem import SecureKeyBuffer

        slots = live_slots()
        data = message(plan, self.bases[plan.base % len(self.bases)], self.spec)
        raw = as_bytes(data)
        expected = is_bytes_like(data) and len(raw) == 96 and not low_order(raw[32:64])
        sensor = SensorHandshake(
            SENSOR, clock=self.clock, ephemeral_key=X25519PrivateKey(SecureKeyBuffer(SENSOR_PRIVATE))
        )
        sensor.start()
        ack, exc = refusal((HandshakeMessageError,), lambda: sensor.receive_tee_hello(data))
        if exc is None:
            require(expected, "sensor accepted a TEEHello the model refuses")
            key = oracle_session_key(SENSOR_PRIVATE, raw[32:64], raw[64:96])
            require(ack == std_hmac.digest(key, raw[64:96], "sha256"), "ACK differs from the independent HMAC")
            sid = hashlib.sha256(
                b"cortex-sensor-session-v1" + self.id_hash + c_public(SENSOR_PRIVATE) + raw[32:64] + raw[64:96]
            ).digest()
            require(sensor.session_id == sid, "session id differs from the independent SHA-256")
            sensor.session().close()
            outcome = "accepted"
        else:
            require(not expected, f"sensor refused a usable TEEHello: {exc}")
            require(sensor.state is State.FAILED, f"refused TEEHello left state {sensor.state}")
            require(sensor._ephemeral is None and sensor._session_key is None, "a refused sensor holds a key")
            outcome = "refused"
        require(live_slots() == slots, "secure buffers left behind by the sensor")
        return outcome


class _IndependentFrames:
    """Frames of the sensor->gateway direction, written and opened with ``cryptography`` only."""

    def __init__(self, session_key: bytes, session_id: bytes) -> None:
        self.aead = ChaCha20Poly1305(HKDFExpand(hashes.SHA256(), 32, S2G).derive(session_key))
        self.suffix = session_id[:4]

    def frame(self, seq: int, payload: bytes) -> bytes:
        header = struct.pack(">II", seq, len(payload))
        nonce = struct.pack(">Q", seq) + self.suffix
        return header + nonce + self.aead.encrypt(nonce, payload, header)

    def open(self, frame: bytes) -> bytes | None:
        """The plaintext of an authentic frame of this session (any sequence number), else None."""
        from cryptography.exceptions import InvalidTag

        seq = struct.unpack(">I", frame[:4])[0]
        if frame[8:20] != struct.pack(">Q", seq) + self.suffix:
            return None
        try:
            return self.aead.decrypt(frame[8:20], frame[20:], frame[:8])
        except InvalidTag:
            return None


def predict_frame(data: object, frame: bytes, last: int, max_seq: int, frames: _IndependentFrames | None = None) -> str:
    """What ``decrypt_frame`` must do with ``data`` (the model of SYSTEM.md "Frames"). With
    ``frames``, any authentic frame of the session is accepted (a fuzzer may replay one an
    earlier input produced under the same key); without, only ``frame`` is."""
    if not is_bytes_like(data):
        return "WrongTypeError"
    raw = as_bytes(data)
    if len(raw) < 37:
        return "FrameFormatError"
    seq, length = struct.unpack(">II", raw[:8])
    if length > 8192 or len(raw) != 36 + length or length == 0:
        return "FrameFormatError"
    if seq <= last:
        return "ReplayAttackError"
    if seq >= max_seq:
        return "SessionExpiredError"
    if raw == frame or (frames is not None and frames.open(raw) is not None):
        return "accept"
    return "FrameAuthError"


def _frame_spec(frame: bytes, last: int, max_seq: int) -> Spec:
    n = len(frame) - 36
    seqs = (0, 1, last, last + 1, last + 2, max_seq - 1, max_seq, 2**32 - 1, 2**31)
    lengths = (0, 1, n - 1, n, n + 1, 8192, 8193, 2**32 - 1, len(frame))
    return Spec(
        fields=((0, 4), (4, 8), (8, 16), (16, 20), (20, 20 + n), (20 + n, 36 + n)),
        int_fields=((0, 4, seqs), (4, 8, lengths), (8, 16, seqs)),
        alternates=((3, (b"\x00" * 4, b"\xff" * 4)),),
    )


class FrameTarget(Target):
    """``SecureBusSession.decrypt_frame`` on mutated frames of an independent encoder.

    ``lenient``: one session reused (``compromise_on_auth_failure=False``): every refusal
    leaves the state and ``last_accepted`` unchanged and the next valid frame is accepted.
    Strict (the default policy): a fresh session per input; header-level refusals change
    nothing, a failed tag (or nonce) compromises the session and purges its three keys.
    """

    SESSION_KEY = hashlib.sha256(b"fuzz session key").digest()
    SESSION_ID = hashlib.sha256(b"fuzz session id").digest()

    def __init__(self, *, lenient: bool) -> None:
        from cortex_sal.keros import ManualClock

        self.name = "frames_lenient" if lenient else "frames_strict"
        self.lenient = lenient
        self.clock = ManualClock(T0)
        self.encoder = _IndependentFrames(self.SESSION_KEY, self.SESSION_ID)
        self.session = self._session() if lenient else None

    def _session(self) -> Any:
        from cortex_sal.keros import Role, SecureBusSession
        from cortex_sal.securemem import SecureKeyBuffer

        return SecureBusSession(
            SecureKeyBuffer(self.SESSION_KEY), self.SESSION_ID, Role.GATEWAY, clock=self.clock,
            compromise_on_auth_failure=not self.lenient,
        )  # fmt: skip

    def _payload(self, base: int) -> bytes:
        return hashlib.sha256(bytes([base])).digest() * 3 if base % 5 == 0 else bytes([base]) * (1 + base % 40)

    def _accept(self, session: Any, frame: bytes, payload: bytes) -> None:
        with session.decrypt_frame(frame) as got:
            require(len(got) == len(payload) and got.constant_time_compare(payload), "plaintext differs")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import (
            FrameAuthError,
            FrameFormatError,
            ReplayAttackError,
            SessionExpiredError,
            WrongTypeError,
        )
        from cortex_sal.keros import State

        slots = live_slots()
        session = self.session if self.lenient else self._session()
        if not self.lenient:
            for seq in range(1, 1 + plan.base % 4):
                self._accept(session, self.encoder.frame(seq, b"warm-up"), b"warm-up")
        last = session.last_accepted_seq
        seq = last + 1 + plan.base % 3
        payload = self._payload(plan.base)
        frame = self.encoder.frame(seq, payload)
        data = message(plan, frame, _frame_spec(frame, last, session._max_seq))
        predicted = predict_frame(data, frame, last, session._max_seq, self.encoder)
        keys = [session.session_key, session._send_key, session._recv_key]
        allowed = (FrameFormatError, ReplayAttackError, FrameAuthError, SessionExpiredError, WrongTypeError)
        out, exc = refusal(allowed, lambda: session.decrypt_frame(data))
        if exc is None:
            require(predicted == "accept", f"accepted a frame the model refuses ({predicted})")
            expected = self.encoder.open(as_bytes(data))
            with out:
                require(expected is not None and out.constant_time_compare(expected), "accepted another plaintext")
            require(session.last_accepted_seq == frame_seq(as_bytes(data)), "last_accepted did not move to it")
            outcome = "accepted" if as_bytes(data) == frame else "accepted another authentic frame"
        else:
            require(type(exc).__name__ == predicted, f"refused with {type(exc).__name__}, model says {predicted}")
            require(session.last_accepted_seq == last, "a refused frame moved last_accepted")
            if isinstance(exc, FrameAuthError) and not self.lenient:
                require(session.state is State.FAILED, "a failed tag did not compromise the session")
                require(all(k.is_purged for k in keys), "a compromised session kept a key")
                _, after = refusal((SessionExpiredError,), lambda: session.decrypt_frame(frame))
                require(after is not None, "a compromised session accepted a frame")
            else:
                require(session.state is State.ESTABLISHED, f"a refused frame left state {session.state}")
                require(not any(k.is_purged for k in keys), "a refused frame purged a key")
                self._accept(session, frame, payload)  # the valid frame still goes through
            outcome = f"refused:{type(exc).__name__}"
        if not self.lenient:
            session.close()
        require(live_slots() == slots, "secure buffers left behind by decrypt_frame")
        return outcome


class RegistryFileTarget(Target):
    """``SensorRegistry.from_file``: a registry or ``InvalidArgumentError``; ``extend`` untouched."""

    name = "sensor_registry"

    def __init__(self) -> None:
        from importlib import resources

        from cortex_sal.keros import SensorRegistry

        self.scratch = _Scratch()
        packaged = resources.files("cortex_sal.keros").joinpath("data/sensor_models.json").read_text("utf-8")
        user = {
            "minimums": {"snr_db": 20.0, "bits": 8},
            "models": [{"model_id": "eeg_user_v1", "manufacturer": "Lab", "snr_db": 33.5, "bits": 14}],
        }
        self.docs = [json.loads(packaged), user]
        self.texts = [packaged.encode(), dump_json(user)]
        self.extend = SensorRegistry.default()
        self.extend.revoke("eeg_fp1_certified_v1/0001")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import InvalidArgumentError
        from cortex_sal.keros import SensorRegistry

        i = (plan.base // 2) % len(self.docs)
        data = json_message(plan, self.docs[i], self.texts[i])
        path = self.scratch.write("registry.json", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        before = (self.extend.models(), set(self.extend._revoked), self.extend.min_snr_db, self.extend.min_bits)
        extend = self.extend if plan.base % 4 >= 2 else None
        registry, exc = refusal((InvalidArgumentError,), lambda: SensorRegistry.from_file(path, extend=extend))
        after = (self.extend.models(), set(self.extend._revoked), self.extend.min_snr_db, self.extend.min_bits)
        require(before == after, "loading a registry file changed the registry it extends")
        if exc is not None:
            return "refused"
        require(isinstance(registry, SensorRegistry), "from_file returned something else")
        for model in registry.models():
            require(model.model_id and "/" not in model.model_id, f"accepted model id {model.model_id!r}")
            require(math.isfinite(model.snr_db) and isinstance(model.bits, int), "accepted a non-finite model")
        require(math.isfinite(registry.min_snr_db) and isinstance(registry.min_bits, int), "bad minima accepted")
        return "loaded"


class CertificationTarget(Target):
    """``SensorCertificationAuthority.full_handshake`` (the seed's API) on mutated public inputs:
    a refusal dict that holds no key, or ``ok`` exactly for the true (pub, ack, challenge)."""

    name = "certification"

    def __init__(self) -> None:
        from cortex_sal.keros import SensorCertificationAuthority

        self.ca = SensorCertificationAuthority()
        self.tee_private = bytes(range(200, 232))
        self.pub = c_public(SENSOR_PRIVATE)
        self.challenge = hashlib.sha256(b"fuzz challenge").digest()
        key = oracle_session_key(SENSOR_PRIVATE, c_public(self.tee_private), self.challenge)
        self.ack = std_hmac.digest(key, self.challenge, "sha256")
        self.parts = (self.pub, self.ack, self.challenge)
        self.specs = (
            Spec(fields=((0, 16), (16, 32)), alternates=((0, LOW_ORDER_POINTS),)),
            Spec(fields=((0, 16), (16, 32))),
            Spec(fields=((0, 16), (16, 32))),
        )
        self.ids = (SENSOR, SENSOR + "/0042", "eeg_unknown_v9", "eeg_fp1_certified_v1x", "eeg/../x", "\u00e9",
                    SENSOR + "/\ud800", "")  # fmt: skip

    def same_point(self, pub: bytes) -> bool:
        """True if ``pub`` is another encoding of the sensor's point (X25519 ignores bit 255
        and reduces mod p, RFC 7748 section 5): the same shared secret, so a valid ACK."""
        if len(pub) != 32 or low_order(pub):
            return False
        tee = COracleX25519.from_private_bytes(self.tee_private)
        return tee.exchange(COraclePublic.from_public_bytes(pub)) == tee.exchange(
            COraclePublic.from_public_bytes(self.pub)
        )

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import X25519PrivateKey
        from cortex_sal.errors import InvalidArgumentError, WrongTypeError
        from cortex_sal.securemem import SecureKeyBuffer

        which = plan.base % 3
        parts = list(self.parts)
        parts[which] = message(plan, parts[which], self.specs[which])
        sensor_id = self.ids[(plan.base // 3) % len(self.ids)] if plan.base % 7 else SENSOR
        slots = live_slots()
        tee = X25519PrivateKey(SecureKeyBuffer(self.tee_private))
        pub, ack, challenge = parts
        result, exc = refusal(
            (WrongTypeError, InvalidArgumentError),
            lambda: self.ca.full_handshake(sensor_id, pub, ack, tee, challenge),
        )
        bad_id = sensor_id == "" or "\ud800" in sensor_id
        if exc is not None:
            require(bad_id or not all(is_bytes_like(p) for p in parts), f"bytes-like inputs raised {exc!r}")
            outcome = "raised"
        else:
            good = all(is_bytes_like(p) for p in parts) and [as_bytes(p) for p in parts[1:]] == list(self.parts[1:])
            good = good and sensor_id in (SENSOR, SENSOR + "/0042") and self.same_point(as_bytes(pub))
            require(not bad_id, "an invalid sensor id was not refused with an exception")
            require(result["status"] == ("ok" if good else "refused"), f"status {result['status']} for good={good}")
            if good:
                key = oracle_session_key(self.tee_private, self.pub, self.challenge)
                with result["session_key"] as got:
                    require(got.constant_time_compare(key), "session key differs from the independent HKDF")
            else:
                require(result["session_key"] is None and result["reason"], "a refusal carries a key or no reason")
            outcome = result["status"]
        tee.purge()
        require(live_slots() == slots, "secure buffers left behind by full_handshake")
        return outcome


# =============================================================================================
# SAL
# =============================================================================================


def odd_value(selector: int, data: bytes) -> object:
    """A Python value for a telemetry field: numbers of every kind, arrays of every dtype and
    shape, and things that are not numbers at all."""
    f64 = struct.unpack(">d", (data + bytes(8))[:8])[0]
    options: list[Callable[[], object]] = [
        lambda: None,
        lambda: True,
        lambda: np.bool_(False),
        lambda: 0,
        lambda: -1,
        lambda: 2**32,
        lambda: 2**32 - 1,
        lambda: 10**400,
        lambda: -(10**400),
        lambda: Fraction(10**400, 3),
        lambda: Fraction(1, 3),
        lambda: 0.25,
        lambda: f64,
        lambda: math.nan,
        lambda: math.inf,
        lambda: 3.5e38,
        lambda: 1e308,
        lambda: np.float32(0.5),
        lambda: np.float16(np.inf),
        lambda: np.longdouble("1e4000"),
        lambda: np.int64(-5),
        lambda: np.uint64(2**64 - 1),
        lambda: complex(1, 0),
        lambda: "0.25",
        lambda: "",
        lambda: b"\x00" * 5,
        lambda: [0.1] * 5,
        lambda: np.zeros(5),
        lambda: np.full(5, math.nan),
        lambda: np.full(5, np.longdouble("1e4000")),
        lambda: np.full(8, np.longdouble("1e4000")),
        lambda: np.full(8, 1e300),
        lambda: np.full(5, 1e300),
        lambda: np.zeros(8, dtype=object),
        lambda: np.zeros(5, dtype=complex),
        lambda: np.ones(5, dtype=bool),
        lambda: np.array(["a"] * 5),
        lambda: np.zeros((5, 1)),
        lambda: np.zeros(()),
        lambda: np.zeros(0),
        lambda: np.ma.masked_all(5),
        lambda: np.frombuffer((data * 40)[:40] or bytes(40), dtype=">f8")[:5].copy(),
        lambda: np.frombuffer((data * 32)[:32] or bytes(32), dtype="<f4")[:8].copy(),
        lambda: np.arange(8, dtype=np.int8),
        lambda: np.array([2**63] * 8, dtype=np.uint64),
        lambda: data.decode("latin-1"),
        lambda: object(),
    ]
    return options[selector % len(options)]()


class RouterTarget(Target):
    """``TelemetryRouter.ingest_from_bridge`` on mutated payload mappings: routed / replay /
    ``SchemaError``; a refused payload changes nothing and the next valid one routes."""

    name = "router"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock
        from cortex_sal.sal.router import LABELS, TelemetryRouter

        self.clock = ManualClock(T0)
        self.router = TelemetryRouter(clock=self.clock)
        self.labels = LABELS
        self.keys = ("features", "coherency", "polyvagal_state", "timestamp", "frame_seq", "sensor_id_hash",
                     "spectral_bins", "spectral_bin", 0, None, "")  # fmt: skip
        self.sensor = "3f2a9c0d11e4b7a8"

    def valid(self, seq: int) -> dict[Any, Any]:
        return {
            "features": np.array([0.4, 0.1, 0.35, 0.45, 0.6]),
            "coherency": 0.25,
            "polyvagal_state": self.labels[0],
            "timestamp": self.clock.time(),
            "frame_seq": seq,
            "sensor_id_hash": self.sensor,
            "spectral_bins": np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.06, 0.05, 0.04]),
        }

    def _field_value(self, key: object, m: Mutation) -> object:
        now = self.clock.time()
        special: dict[object, tuple[object, ...]] = {
            "timestamp": (now + 5.0, now - 5.0, now + 5.000001, now - 5.000001, int(now), Fraction(int(now))),
            "frame_seq": (0, 1, 2**32 - 1, 2**32, -1, 1.0, np.uint32(7), np.int8(3)),
            "polyvagal_state": (*self.labels, self.labels[0].upper(), self.labels[0] + " "),
            "sensor_id_hash": ("", "other", "\x00", self.sensor),
        }
        if key in special and m.b % 3 == 0:
            options = special[key]
            return options[m.b // 3 % len(options)]
        return odd_value(m.b, m.data)

    def payload(self, plan: Plan, seq: int) -> object:
        if plan.kind == "object":
            return odd_object(plan.base)
        if plan.kind == "raw":
            return {"raw": plan.raw}
        p = self.valid(seq)
        for m in plan.mutations:
            key = self.keys[m.a % len(self.keys)]
            op = KINDS.index(m.kind) % 4
            if op == 0 and key in p:
                del p[key]
            else:
                p[key] = self._field_value(key, m)
        return p

    def state(self) -> dict[str, int]:
        return dict(self.router._last_seq)

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import SchemaError
        from cortex_sal.sal.router import parse_research_payload

        last = self.router.last_seq(self.sensor)
        if last is not None and last >= 2**32 - 2:
            self.router.forget(self.sensor)
            last = None
        seq = (last or 0) + 1 + plan.base % 3
        payload = self.payload(plan, seq)
        before = self.state()
        snapshot = copy.deepcopy(payload) if isinstance(payload, dict) else None
        out, exc = refusal((SchemaError,), lambda: self.router.ingest_from_bridge(payload))  # type: ignore[arg-type]
        if snapshot is not None:
            require(_same(payload, snapshot), "the router modified the caller's payload")
        if exc is not None:
            require(self.state() == before, "a refused payload changed the router")
            outcome = "refused"
        elif out["status"] == "replay_attack":
            require(self.state() == before, "a replayed payload changed the router")
            outcome = "replay"
        else:
            require(out["status"] == "routed", f"unknown status {out['status']!r}")
            p = payload
            routed = parse_research_payload(out["research_payload"])
            require(routed["frame_seq"] == int(p["frame_seq"]), "routed another frame_seq")
            require(routed["polyvagal_state"] == p["polyvagal_state"], "routed another label")
            require(routed["cv"] == float(np.float32(float(p["coherency"]))), "routed another cv")
            require(self.router.last_seq(p["sensor_id_hash"]) == int(p["frame_seq"]), "last seq not recorded")
            outcome = "routed"
        nxt = (self.router.last_seq(self.sensor) or 0) + 1
        if nxt <= 2**32 - 1:
            again = self.router.ingest_from_bridge(self.valid(nxt))
            require(again["status"] == "routed", "the next valid payload was not routed")
        if len(self.router) > 5000:
            self.router.clear()
        return outcome


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    try:
        return bool(a == b) or (type(a) is object and type(b) is object)
    except Exception:  # comparing odd values
        return True


class RouterBatchTarget(Target):
    """``TelemetryRouter.ingest_batch``: one column replaced by an odd value -> ``SchemaError``
    before any state changes, or the same results as the single path."""

    name = "router_batch"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock
        from cortex_sal.sal.router import LABELS, TelemetryRouter

        self.clock = ManualClock(T0)
        self.router = TelemetryRouter(clock=self.clock)
        self.labels = LABELS
        self.seq = 0

    def columns(self, n: int) -> list[object]:
        return [
            np.tile(np.array([0.4, 0.1, 0.35, 0.45, 0.6]), (n, 1)),
            np.full(n, 0.25),
            [self.labels[i % 3] for i in range(n)],
            self.clock.time(),
            [self.seq + 1 + i for i in range(n)],
            [f"sensor-{i}" for i in range(n)],
            np.tile(np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.06, 0.05, 0.04]), (n, 1)),
        ]

    def benign(self, column: int, n: int) -> tuple[object, ...]:
        """Other spellings of a valid column (numpy scalars and arrays, tuples, float32)."""
        now = self.clock.time()
        value = self.columns(n)[column]
        if column in (0, 1, 6):
            return (np.asarray(value, dtype=np.float32), np.asarray(value, dtype=np.float64).copy(order="F"))
        if column == 3:
            return (now + 4.9, now - 5.0, int(now), np.float64(now), np.float32(now))
        if column == 4:
            return (tuple(value), np.asarray(value, dtype=np.uint32), [self.seq + 10 * (i + 1) for i in range(n)])
        return (tuple(value), np.asarray(value))  # type: ignore[arg-type]

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import SchemaError

        n = 1 + plan.base % 3
        cols = self.columns(n)
        if plan.kind == "object":
            cols[plan.base % 7] = odd_object(plan.base)
        elif plan.kind == "raw":
            cols[plan.base % 7] = plan.raw
        for m in plan.mutations:
            column = m.a % 7
            if m.kind in ("extend", "insert", "truncate", "delete"):  # another valid spelling
                options = self.benign(column, n)
                cols[column] = options[m.b % len(options)]
            elif m.kind == "flip" and isinstance(cols[column], list) and cols[column]:
                cols[column][m.b % n] = odd_value(m.b, m.data)  # type: ignore[index]
            else:
                cols[column] = odd_value(m.b, m.data)
        before = dict(self.router._last_seq)
        out, exc = refusal((SchemaError,), lambda: self.router.ingest_batch(*cols))  # type: ignore[arg-type]
        if exc is not None:
            require(dict(self.router._last_seq) == before, "a refused batch changed the router")
            outcome = "refused"
        else:
            require(isinstance(out, list) and all(r["status"] in ("routed", "replay_attack") for r in out), "bad out")
            outcome = "routed"
        self.seq = max([self.seq + 4, *(self.router.last_seq(f"sensor-{i}") or 0 for i in range(3))])
        if self.seq > 2**32 - 100:
            self.router.clear()
            self.seq = 0
        good = self.router.ingest_batch(*self.columns(n))  # type: ignore[arg-type]
        require(all(r["status"] == "routed" for r in good), "the next valid batch was not routed")
        self.seq += 4
        return outcome


class ResearchPayloadTarget(Target):
    """``parse_research_payload``: 41 bytes with a known bucket, finite cv and bins all finite
    or all NaN; what parses re-encodes to the same fields."""

    name = "research_payload"

    def __init__(self) -> None:
        from cortex_sal.sal.router import research_payload

        bins = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.06, 0.05, 0.04])
        self.bases = [research_payload(7, bins, 0.25, 1), research_payload(2**32 - 1, None, -1.5, 2)]
        nan = struct.pack(">f", math.nan)
        self.spec = Spec(
            fields=((0, 4), *((4 + 4 * i, 8 + 4 * i) for i in range(8)), (36, 40), (40, 41)),
            int_fields=((40, 41, (0, 1, 2, 3, 255)), (36, 40, (0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001))),
            alternates=tuple((i, (nan, b"\x7f\x80\x00\x00", bytes(4))) for i in range(1, 10)),
        )

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import InvalidArgumentError, WrongLengthError, WrongTypeError
        from cortex_sal.sal.router import parse_research_payload, research_payload

        data = message(plan, self.bases[plan.base % 2], self.spec)
        fields, exc = refusal(
            (InvalidArgumentError, WrongLengthError, WrongTypeError), lambda: parse_research_payload(data)
        )
        raw = as_bytes(data)
        if exc is not None:
            if is_bytes_like(data) and len(raw) == 41:
                _, *rest = struct.unpack(">I8ffB", raw)
                bins, cv, bucket = rest[:8], rest[8], rest[9]
                nans = [math.isnan(x) for x in bins]
                mixed = any(nans) and not all(nans)
                require(
                    bucket > 2 or not math.isfinite(cv) or mixed or any(math.isinf(x) for x in bins),
                    f"refused a well-formed payload: {exc}",
                )
            return "refused"
        require(is_bytes_like(data) and len(raw) == 41, "parsed a payload that is not 41 bytes")
        again = research_payload(**{k: v for k, v in fields.items() if k != "polyvagal_state"})
        if fields["spectral_bins"] is None:
            require(again[:4] == raw[:4] and again[36:] == raw[36:], "re-encoding changed the payload")
        else:
            require(again == raw, "re-encoding changed the payload")
        return "parsed"


def calm_samples(seed: int = 3) -> np.ndarray[Any, Any]:
    """256 float32 samples that pass the bridge (a quiet EEG-like frame)."""
    rng = np.random.default_rng(seed)
    t = np.arange(256) / 256.0
    x = 2.0 * np.sin(2 * np.pi * 10 * t) + rng.normal(0.0, 0.5, 256)
    return np.asarray(x, dtype="<f4")


class ShieldFrameTarget(Target):
    """``CognitiveShield.ingest_frame``: a mutated frame is a ``refused`` result naming the
    channel's error; it moves nothing but what the channel documents (a failed tag
    compromises the sensor's session); a valid frame then passes the channel."""

    name = "shield_frame"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock
        from cortex_sal.sal.shield import CognitiveShield

        self.clock = ManualClock(T0)
        self.shield = CognitiveShield(clock=self.clock)
        self.samples = calm_samples()
        self._register()

    def _register(self) -> None:
        self.shield.destroy_session()
        result = self.shield.register_sensor(SENSOR, 35.0, 16)
        require(result["status"] == "registered", f"registration failed: {result}")

    def run(self, plan: Plan) -> str:
        from cortex_sal.keros import State

        state = self.shield._sensors[SENSOR]
        if state.gateway.state is not State.ESTABLISHED or state.blocked:
            self._register()
            state = self.shield._sensors[SENSOR]
        endpoint, gateway = state.endpoint, state.gateway
        self.clock.advance(1.0)
        frame = endpoint.encrypt_frame(self.samples.tobytes())
        last = gateway.last_accepted_seq
        data = message(plan, frame, _frame_spec(frame, last, gateway._max_seq))
        predicted = predict_frame(data, frame, last, gateway._max_seq)
        if predicted == "WrongTypeError" or (is_bytes_like(data) and not isinstance(data, bytes)):
            predicted = "FrameFormatError"  # the shield takes bytes of exactly one raw frame
        elif predicted == "accept" or len(as_bytes(data)) != len(frame):
            predicted = "accept" if predicted == "accept" else "FrameFormatError"
        frames_before, log_before = state.frame_seq, len(self.shield._log)
        result = self.shield.ingest_frame(SENSOR, data)  # type: ignore[arg-type]
        if predicted == "accept":
            require(gateway.last_accepted_seq == frame_seq(frame), "an intact frame did not pass the channel")
            require(state.frame_seq == frames_before + 1, "an intact frame was not processed")
            return "accepted"
        require(result["status"] == "refused", f"a mutated frame was not refused: {result['status']}")
        require(result["reason"].startswith(predicted + ":"), f"refused for {result['reason']!r}, model: {predicted}")
        require(state.frame_seq == frames_before, "a refused frame reached the pipeline")
        require(len(self.shield._log) == log_before + 1, "a refused frame was not logged once")
        require(gateway.last_accepted_seq == last, "a refused frame moved last_accepted")
        if predicted == "FrameAuthError":
            require(gateway.state is State.FAILED, "a failed tag did not compromise the session")
        else:
            self.shield.ingest_frame(SENSOR, frame)
            require(gateway.last_accepted_seq == frame_seq(frame), "the valid frame no longer passes the channel")
        return f"refused:{predicted}"


def frame_seq(frame: bytes) -> int:
    return int(struct.unpack(">I", frame[:4])[0])


def odd_samples(plan: Plan, n: int) -> object:
    """Raw samples for the shield: arrays of every dtype, special values, wrong shapes, lists."""
    if plan.kind == "object":
        return odd_object(plan.base)
    if plan.kind == "raw":
        return np.frombuffer(plan.raw[: len(plan.raw) // 4 * 4], dtype="<f4") if plan.raw else plan.raw
    dtypes = ("<f4", ">f8", "<i2", "u1", "<f2", "<i8", "<u8", np.longdouble, "c8", "?", "O", "U3", "M8[s]")
    arr: Any = np.tile(calm_samples().astype(np.float64), (n, 1)) if n else calm_samples().astype(np.float64)
    for m in plan.mutations:
        op = KINDS.index(m.kind) % 6
        flat = arr.reshape(-1) if isinstance(arr, np.ndarray) and arr.size else None
        if op == 0 and flat is not None:  # a special value somewhere
            specials = (math.nan, math.inf, -math.inf, 3.5e38, -3.5e38, 1e300, 1e-45, 0.0, -0.0, 2.0**31)
            value = specials[m.b % len(specials)] if m.b % 4 else struct.unpack("<d", (m.data + bytes(8))[:8])[0]
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    flat[m.a % flat.size] = value
            except Exception:  # building the input, not under test: a NaN into an int array, ...
                pass
            arr = flat.reshape(arr.shape)
        elif op == 1 and isinstance(arr, np.ndarray):  # another dtype
            dtype = dtypes[m.b % len(dtypes)]
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    arr = arr.astype(dtype)
            except Exception:  # building the input, not under test: numpy refuses some casts
                arr = np.zeros(arr.shape, dtype=dtype)
        elif op == 2 and isinstance(arr, np.ndarray):  # another shape
            shapes = ((255,), (257,), (0,), (256, 1), (1, 256), (2, 128), (), (2, 256), (1, 1, 256))
            shape = shapes[m.b % len(shapes)]
            arr = np.resize(arr, shape) if arr.size else np.zeros(shape)
        elif op == 3 and isinstance(arr, np.ndarray):  # a list (maybe ragged)
            arr = arr.tolist()
            if m.b % 2 and isinstance(arr, list) and arr:
                arr[m.a % len(arr)] = [arr[m.a % len(arr)], 1.0]
        elif op == 4:
            arr = odd_value(m.b, m.data)
        elif op == 5 and isinstance(arr, np.ndarray) and arr.size:  # a view, not contiguous
            arr = np.repeat(arr, 2, axis=-1)[..., ::2]
    return arr


class ShieldRawTarget(Target):
    """``CognitiveShield.ingest_raw_data`` (and ``ingest_batch`` with ``batch=True``): a result,
    or ``InvalidArgumentError`` / ``WrongTypeError`` with nothing changed and nothing left in
    locked memory."""

    def __init__(self, *, batch: bool) -> None:
        from cortex_sal.keros import ManualClock
        from cortex_sal.sal.shield import CognitiveShield

        self.name = "shield_batch" if batch else "shield_raw"
        self.batch = batch
        self.clock = ManualClock(T0)
        self.shield = CognitiveShield(clock=self.clock)
        self.ids = [SENSOR, "eeg_fp1_certified_v1/0002", "eeg_fp1_certified_v1/0003"]
        for sensor_id in self.ids:
            require(self.shield.register_sensor(sensor_id, 35.0, 16)["status"] == "registered", "register")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import InvalidArgumentError, ShieldError, WrongTypeError

        self.clock.advance(30.0)
        n = 1 + plan.base % 3
        ids = self.ids[:n] if self.batch else [SENSOR]
        if self.batch and plan.base % 11 == 0:
            ids = [*ids[:-1], ids[0]] if n > 1 else ["never-registered"]
        raw = odd_samples(plan, n if self.batch else 0)
        seqs = {s: self.shield._sensors[s].frame_seq for s in self.ids}
        logs, slots = len(self.shield._log), live_slots()
        allowed = (InvalidArgumentError, WrongTypeError, ShieldError)
        if self.batch:
            out, exc = refusal(allowed, lambda: self.shield.ingest_batch(ids, raw))  # type: ignore[arg-type]
        else:
            out, exc = refusal(allowed, lambda: self.shield.ingest_raw_data(SENSOR, raw))  # type: ignore[arg-type]
        if exc is not None:
            require(not isinstance(exc, ShieldError) or "never-registered" in ids, "ShieldError for a known sensor")
            require({s: self.shield._sensors[s].frame_seq for s in self.ids} == seqs, "refused frames were counted")
            require(len(self.shield._log) == logs, "a refused input was logged")
            require(live_slots() == slots, "a refused input left samples in locked memory")
            return f"refused:{type(exc).__name__}"
        results = out if self.batch else [out]
        require(all(r["status"] in ("ok", "refused") for r in results), "unknown status")
        require(all(self.shield._sensors[s].frame_seq == seqs[s] + 1 for s in ids), "frames not counted once")
        require(live_slots() == slots, "a processed frame left samples in locked memory")
        for s in ids:
            if self.shield._sensors[s].blocked:
                self.shield._sensors[s].blocked = False
                self.shield._sensors[s].drift = type(self.shield._sensors[s].drift)(clock=self.clock)
        return "processed"


class ClinicalOpenTarget(Target):
    """``ClinicalChannel.open`` on mutated messages of an independent peer: refused with
    ``ClinicalChannelError`` (``WrongTypeError`` for non-bytes), counter unchanged, channel
    still usable (documented: one forged message must not tear the stream down)."""

    name = "clinical"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock
        from cortex_sal.sal.clinical import INFO, ClinicalChannel, channel_salt

        self.clock = ManualClock(T0)
        peer_private = bytes(range(50, 82))
        self.channel = ClinicalChannel.establish(c_public(peer_private), "receiver", clock=self.clock)
        shared = COracleX25519.from_private_bytes(peer_private).exchange(
            COraclePublic.from_public_bytes(self.channel.public_key)
        )
        salt = channel_salt(self.channel.public_key, c_public(peer_private))
        self.aead = ChaCha20Poly1305(HKDF(hashes.SHA256(), 32, salt, INFO).derive(shared))

    def seal(self, counter: int, plaintext: bytes) -> bytes:
        header = struct.pack(">Q", counter)
        return header + self.aead.encrypt(bytes(4) + header, plaintext, header)

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import ClinicalChannelError, WrongTypeError

        last = self.channel.counter
        counter = last + 1 + plan.base % 3
        plaintext = bytes([plan.base]) * (1 + plan.base % 50)
        msg = self.seal(counter, plaintext)
        spec = Spec(
            fields=((0, 8), (8, len(msg) - 16), (len(msg) - 16, len(msg))),
            int_fields=((0, 8, (0, 1, last, last + 1, 2**64 - 1, 2**63)),),
        )
        data = message(plan, msg, spec)
        slots = live_slots()
        out, exc = refusal((ClinicalChannelError, WrongTypeError), lambda: self.channel.open(data))  # type: ignore[arg-type]
        if exc is None:
            require(as_bytes(data) == msg, "opened a message that is not the peer's")
            with out:
                require(out.constant_time_compare(plaintext), "opened another plaintext")
            require(self.channel.counter == counter, "counter did not move to the opened message")
            outcome = "opened"
        else:
            require(isinstance(exc, WrongTypeError) == (not is_bytes_like(data)), f"{type(exc).__name__} for bytes")
            require(self.channel.counter == last and not self.channel.is_closed, "a refused message changed state")
            with self.channel.open(msg) as again:
                require(again.constant_time_compare(plaintext), "the valid message no longer opens")
            outcome = "refused"
        require(live_slots() == slots, "secure buffers left behind by open")
        return outcome


# =============================================================================================
# governance
# =============================================================================================

NOW = 1_800_000_100.0


class _Governance:
    """A registry of six nodes in four jurisdictions and a clinical bundle signed by five."""

    def __init__(self) -> None:
        from cortex_sal.crypto import Ed25519SigningKey
        from cortex_sal.governance.quorum import (
            DecisionType,
            GovernanceNode,
            NodeRegistry,
            Proposal,
            Signature,
            enact,
        )
        from cortex_sal.securemem import SecureKeyBuffer

        places = ("DE", "FR", "US", "JP", "EU", "DE")
        self.keys = [Ed25519SigningKey(SecureKeyBuffer(hashlib.sha256(b"node %d" % i).digest())) for i in range(6)]
        self.nodes = [GovernanceNode(k.public_key(), f"Institute {i}", places[i]) for i, k in enumerate(self.keys)]
        self.registry = NodeRegistry(self.nodes)
        self.proposal = Proposal(
            DecisionType.CLINICAL_THRESHOLD_CHANGE,
            {"bridge_max_std": 0.45, "min_bits": 14},
            ("doi:10.0000/fuzz",),
            self.nodes[0].node_id,
            NOW - 100.0,
        )
        message = self.proposal.signing_message()
        sigs = [Signature(n.node_id, k.sign(message)) for n, k in zip(self.nodes, self.keys, strict=True)]
        self.bundle = enact(self.proposal, sigs[:5], self.registry, now=NOW, enacted_digests=set())
        self.signatures = sigs


class BundleTarget(Target):
    """``EnactedBundle.from_json`` then ``verify``: ``BundleError`` on parsing; a bundle that
    verifies is the original one (same proposal, same signatures)."""

    name = "bundle"

    def __init__(self) -> None:
        self.gov = _Governance()
        self.text = self.gov.bundle.to_json().encode()
        self.doc = json.loads(self.text)
        signatures = {s.to_dict()["signature"] for s in self.gov.bundle.signatures}
        self.original = (self.gov.proposal.canonical_bytes(), signatures)

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import BundleError, ProposalError, QuorumError
        from cortex_sal.governance.quorum import EnactedBundle

        data = json_message(plan, self.doc, self.text)
        text = data if isinstance(data, str | bytes) else as_bytes(data)
        bundle, exc = refusal((BundleError,), lambda: EnactedBundle.from_json(text))
        if exc is not None:
            return "refused"
        again = EnactedBundle.from_json(bundle.to_json())
        require(again.to_json() == bundle.to_json(), "a parsed bundle does not round-trip")
        _, bad = refusal((ProposalError, QuorumError), lambda: bundle.verify(self.gov.registry, NOW))
        if bad is not None:
            return "parsed, not verified"
        got = (bundle.proposal.canonical_bytes(), {s.to_dict()["signature"] for s in bundle.signatures})
        require(got == self.original and len(bundle.signatures) == 5, "a changed bundle verified")
        return "verified"


class NodeRegistryTarget(Target):
    """``NodeRegistry.from_json``: a registry that round-trips, or a ``GovernanceError``."""

    name = "node_registry"

    def __init__(self) -> None:
        self.gov = _Governance()
        self.text = self.gov.registry.to_json().encode()
        self.doc = json.loads(self.text)

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import BundleError, GovernanceError
        from cortex_sal.governance.quorum import NodeRegistry

        data = json_message(plan, self.doc, self.text)
        text = data if isinstance(data, str | bytes) else as_bytes(data)
        registry, exc = refusal((GovernanceError, BundleError), lambda: NodeRegistry.from_json(text))
        if exc is not None:
            return "refused"
        require(NodeRegistry.from_json(registry.to_json()).to_json() == registry.to_json(), "no round trip")
        return "parsed"


class CliLoaderTarget(Target):
    """The governance CLI's file loaders (node, proposal, signature, registry, bundle): a
    value or a ``GovernanceError`` subclass the CLI turns into exit code 2."""

    def __init__(self, which: str) -> None:
        from cortex_sal.governance import cli

        self.name = f"cli_{which}"
        self.gov = _Governance()
        self.scratch = _Scratch()
        docs = {
            "node": self.gov.nodes[1].to_dict(),
            "proposal": self.gov.proposal.to_dict(),
            "signature": {**self.gov.signatures[2].to_dict(), "proposal_hash": self.gov.proposal.digest().hex()},
        }
        self.doc = docs[which]
        self.text = dump_json(self.doc)
        self.load = {"node": cli._load_node, "proposal": cli._load_proposal, "signature": cli._load_signature}[which]

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import BundleError, GovernanceError, ProposalError
        from cortex_sal.governance.cli import CliInputError

        data = json_message(plan, self.doc, self.text)
        path = self.scratch.write("input.json", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        allowed = {
            "cli_node": (CliInputError, GovernanceError),
            "cli_proposal": (CliInputError, ProposalError),
            "cli_signature": (CliInputError, BundleError),
        }[self.name]
        value, exc = refusal(allowed, lambda: self.load(path))
        if exc is not None:
            return "refused"
        require(value.to_dict() is not None, "loaded value cannot be written back")
        return "loaded"


class AuditJsonlTarget(Target):
    """``verify_jsonl`` on mutated exports: a ``VerifyResult``, never an exception; ``ok`` only
    for the original entries (or a prefix of them, when no retained head is given)."""

    name = "audit_jsonl"

    def __init__(self) -> None:
        from cortex_sal.governance.audit import AuditTrail
        from cortex_sal.keros import ManualClock

        self.scratch = _Scratch()
        clock = ManualClock(T0)
        with AuditTrail(self.scratch.dir / "trail.db", clock=clock) as trail:
            trail.append("proposal_submitted", proposal_hash="ab" * 32, signers=5)
            clock.advance(1.5)
            trail.append("signature_added", node_hash="0123456789abcdef", valid=True)
            clock.advance(0.25)
            trail.append("proposal_enacted", proposal_hash="ab" * 32, jurisdictions=3, weight=0.5)
            self.head = trail.export_jsonl(self.scratch.dir / "export.jsonl")
            self.records = [e.to_record() for e in trail.entries()]
        self.text = (self.scratch.dir / "export.jsonl").read_bytes()
        lines = self.text.split(b"\n")
        at, fields = 0, []
        for line in lines:
            fields.append((at, at + len(line) + 1))
            at += len(line) + 1
        self.spec = Spec(fields=tuple(fields))

    def run(self, plan: Plan) -> str:
        from cortex_sal.governance.audit import verify_jsonl

        if plan.kind == "mutate" and plan.base % 2:
            doc = mutate_json(self.records, plan.mutations)
            if isinstance(doc, list):
                data = b"".join(dump_json(r) + b"\n" for r in doc)
            else:
                data = dump_json(doc)
        else:
            data = message(plan, self.text, self.spec)
        path = self.scratch.write("export.jsonl", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        head = self.head if plan.base % 4 >= 2 else None
        result = verify_jsonl(path, expected_head=head)
        if not result.ok:
            require(result.first_bad_index is not None and result.reason, "a failed verification says nothing")
            return "not ok"
        got = [json.loads(line) for line in path.read_bytes().decode("ascii").splitlines() if line.strip()]
        require(got == self.records[: len(got)], "a changed export verified")
        require(head is None or len(got) == len(self.records), "a truncated export verified against the head")
        return "ok"


class AuditDbTarget(Target):
    """``AuditTrail`` opened on a mutated SQLite file: ``AuditError`` or a trail whose
    ``verify()`` answers; ``ok`` only for the original entries."""

    name = "audit_db"

    def __init__(self) -> None:
        from cortex_sal.governance.audit import AuditTrail
        from cortex_sal.keros import ManualClock

        self.scratch = _Scratch()
        clock = ManualClock(T0)
        db = self.scratch.dir / "base.db"
        with AuditTrail(db, clock=clock) as trail:
            trail.append("proposal_submitted", proposal_hash="cd" * 32)
            trail.append("node_registered", node_hash="0123456789abcdef", active=True)
            self.records = [e.to_record() for e in trail.entries()]
        self.data = db.read_bytes()
        pages = len(self.data) // 4096
        self.spec = Spec(fields=tuple((4096 * i, 4096 * (i + 1)) for i in range(pages)) or ((0, 100),))

    def run(self, plan: Plan) -> str:
        from cortex_sal.governance.audit import AuditError, AuditTrail

        data = message(plan, self.data, self.spec)
        path = self.scratch.write("trail.db", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        for extra in ("trail.db-journal", "trail.db-wal"):
            (self.scratch.dir / extra).unlink(missing_ok=True)
        trail, exc = refusal((AuditError,), lambda: AuditTrail(path))
        if exc is not None:
            return "refused"
        try:
            result, _ = refusal((AuditError,), trail.verify)
            entries, bad = refusal((AuditError,), lambda: [e.to_record() for e in trail.entries()])
            if result is not None and result.ok:
                require(bad is None and entries in (self.records, []), "a changed trail verified")
                return "ok" if entries else "ok (empty file: a new trail)"
            return "not ok"
        finally:
            trail.close()


# =============================================================================================
# crypto
# =============================================================================================


class X25519PeerTarget(Target):
    """``x25519_shared_secret(key, peer)``: the same secret as ``cryptography`` for a usable
    32-byte point; ``LowOrderPointError`` / ``WrongLengthError`` / ``WrongTypeError`` otherwise."""

    name = "x25519_peer"
    PRIVATE = bytes(range(9, 41))

    def __init__(self) -> None:
        self.bases = [c_public(bytes([i]) * 32) for i in range(1, 4)]
        self.spec = Spec(fields=((0, 16), (16, 32)), alternates=((0, LOW_ORDER_POINTS),))
        self.oracle = COracleX25519.from_private_bytes(self.PRIVATE)

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import x25519_shared_secret
        from cortex_sal.errors import LowOrderPointError, WrongLengthError, WrongTypeError
        from cortex_sal.securemem import SecureKeyBuffer

        data = message(plan, self.bases[plan.base % 3], self.spec)
        spec = Spec(fields=((0, 32),), alternates=((0, LOW_ORDER_POINTS),))
        if plan.kind == "mutate" and plan.base % 5 == 0:
            data = mutate(as_bytes(data)[:32].ljust(32, b"\x00"), (Mutation("alt_field", 0, plan.base),), spec)
        slots = live_slots()
        with SecureKeyBuffer(self.PRIVATE) as key:
            shared, exc = refusal(
                (LowOrderPointError, WrongLengthError, WrongTypeError), lambda: x25519_shared_secret(key, data)
            )
        raw = as_bytes(data)
        if exc is None:
            require(is_bytes_like(data) and len(raw) == 32, "accepted a public key that is not 32 bytes")
            with shared:
                require(shared.constant_time_compare(self.oracle.exchange(COraclePublic.from_public_bytes(raw))), "!=")
            outcome = "shared"
        else:
            expected = (
                "WrongTypeError" if not is_bytes_like(data) else "WrongLengthError" if len(raw) != 32 else
                "LowOrderPointError" if low_order(raw) else "accept"
            )  # fmt: skip
            require(type(exc).__name__ == expected, f"{type(exc).__name__}, model says {expected}")
            outcome = f"refused:{expected}"
        require(live_slots() == slots, "secure buffers left behind by x25519")
        return outcome


class Ed25519VerifyTarget(Target):
    """``ed25519_verify(pk, message, sig)`` with one part mutated: only the original verifies."""

    name = "ed25519_verify"

    def __init__(self) -> None:
        key = COracleEd25519.from_private_bytes(hashlib.sha256(b"fuzz ed25519").digest())
        self.message = b"cortex governance proposal digest " + bytes(range(32))
        self.parts = (key.public_key().public_bytes_raw(), self.message, key.sign(self.message))
        self.specs = (
            Spec(fields=((0, 16), (16, 32)), alternates=((0, (bytes(32), b"\x01" + bytes(31), b"\xff" * 32)),)),
            Spec(fields=((0, 34), (34, 66))),
            Spec(fields=((0, 32), (32, 64)), alternates=((1, (b"\xff" * 32, bytes(32))),)),
        )

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import ed25519_verify
        from cortex_sal.errors import InvalidSignatureError, WrongLengthError, WrongTypeError

        which = plan.base % 3
        parts = list(self.parts)
        parts[which] = message(plan, parts[which], self.specs[which])
        _, exc = refusal((InvalidSignatureError, WrongLengthError, WrongTypeError), lambda: ed25519_verify(*parts))
        same = all(is_bytes_like(p) for p in parts) and [as_bytes(p) for p in parts] == list(self.parts)
        require((exc is None) == same, f"verify {'refused the original' if same else 'accepted a change'}: {exc}")
        return "verified" if exc is None else f"refused:{type(exc).__name__}"


class AeadOpenTarget(Target):
    """``aead_decrypt(key, nonce, ciphertext, aad)`` with one public part mutated: only the
    original opens; nothing is left in locked memory after a refusal."""

    name = "aead_decrypt"
    KEY = hashlib.sha256(b"fuzz aead key").digest()

    def __init__(self) -> None:
        nonce, aad, plaintext = bytes(range(12)), b"header", b"the plaintext of the fuzz target"
        self.plaintext = plaintext
        self.parts = (nonce, ChaCha20Poly1305(self.KEY).encrypt(nonce, plaintext, aad), aad)
        n = len(self.parts[1])
        self.specs = (Spec(fields=((0, 8), (8, 12))), Spec(fields=((0, n - 16), (n - 16, n))), Spec(fields=((0, 6),)))

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import aead_decrypt
        from cortex_sal.errors import DecryptionError, WrongLengthError, WrongTypeError
        from cortex_sal.securemem import SecureKeyBuffer

        which = plan.base % 3
        parts = list(self.parts)
        parts[which] = message(plan, parts[which], self.specs[which])
        slots = live_slots()
        with SecureKeyBuffer(self.KEY) as key:
            out, exc = refusal((DecryptionError, WrongLengthError, WrongTypeError), lambda: aead_decrypt(key, *parts))
        same = all(is_bytes_like(p) for p in parts) and [as_bytes(p) for p in parts] == list(self.parts)
        require((exc is None) == same, f"decrypt {'refused the original' if same else 'accepted a change'}: {exc}")
        if out is not None:
            with out:
                require(out.constant_time_compare(self.plaintext), "decrypted another plaintext")
        require(live_slots() == slots, "secure buffers left behind by aead_decrypt")
        return "opened" if exc is None else f"refused:{type(exc).__name__}"


class HmacVerifyTarget(Target):
    """``hmac_sha256_verify(key, tag, message)``: ``True`` only for the original pair; a tag
    of any length is an answer, not an exception."""

    name = "hmac_verify"
    KEY = hashlib.sha256(b"fuzz hmac key").digest()

    def __init__(self) -> None:
        self.message = b"challenge " + bytes(range(22))
        self.parts = (std_hmac.digest(self.KEY, self.message, "sha256"), self.message)
        self.spec = Spec(fields=((0, 16), (16, 32)))

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import hmac_sha256_verify
        from cortex_sal.errors import WrongTypeError
        from cortex_sal.securemem import SecureKeyBuffer

        which = plan.base % 2
        parts = list(self.parts)
        parts[which] = message(plan, parts[which], self.spec)
        with SecureKeyBuffer(self.KEY) as key:
            ok, exc = refusal((WrongTypeError,), lambda: hmac_sha256_verify(key, parts[0], parts[1]))
        bytes_in = all(is_bytes_like(p) for p in parts)
        require((exc is not None) == (not bytes_in), f"bytes in: {bytes_in}, raised: {exc}")
        if exc is None:
            require(ok == ([as_bytes(p) for p in parts] == list(self.parts)), f"verify said {ok}")
        return "raised" if exc is not None else str(ok)


# =============================================================================================
# registry of targets, atheris driver
# =============================================================================================

# -- the record layer on a byte stream (keros.framing) -------------------------------------------

RECORD_TYPES = {1: "HANDSHAKE", 2: "DATA", 3: "CLOSE"}
CLOSE_REASONS = frozenset({0, 1, 2, 3})
RECORD_LENGTHS = (0, 1, 2, 39, 40, 41, 240, 241, 242, 0xFFFF)  # the edges of every limit


def wire_record(kind: int, body: bytes) -> bytes:
    """A record exactly as docs/protocol.md lays it out: ``type u8 || length u16 BE || body``."""
    return struct.pack(">BH", kind, len(body)) + body


def oracle_records(stream: bytes, max_body: int = 65535) -> tuple[list[tuple[str, object]], str]:
    """What a byte stream that then ends must give, written from docs/protocol.md alone: the
    records before the first error (``("DATA", body)``, ``("CLOSE", (reason, text))``) and how
    it ends: ``"eof"`` (between records), ``"closed-eof"`` (right after a CLOSE), or an error
    named for where it is found: ``"error:header"`` (unknown type, length over the limit: known
    from the 3 header bytes alone), ``"error:truncated"`` (EOF inside a record),
    ``"error:close"`` (a malformed CLOSE body), ``"error:after-close"``."""
    out: list[tuple[str, object]] = []
    at = 0
    while True:
        if at == len(stream):
            return out, "eof"
        if len(stream) - at < 3:
            return out, "error:truncated"
        kind, length = struct.unpack_from(">BH", stream, at)
        if kind not in RECORD_TYPES or length > (241 if kind == 3 else max_body):
            return out, "error:header"
        if len(stream) - at - 3 < length:
            return out, "error:truncated"
        body = stream[at + 3 : at + 3 + length]
        at += 3 + length
        if kind != 3:
            out.append((RECORD_TYPES[kind], body))
            continue
        if not body or body[0] not in CLOSE_REASONS:
            return out, "error:close"
        try:
            text = body[1:].decode("utf-8")
        except UnicodeDecodeError:
            return out, "error:close"
        out.append(("CLOSE", (body[0], text)))
        return out, ("closed-eof" if at == len(stream) else "error:after-close")


def _record_error_kind(message: str) -> str:
    """Where ``RecordReader`` found an error, from its message (the names of :func:`oracle_records`)."""
    if message.startswith("EOF inside"):
        return "error:truncated"
    if "after a CLOSE" in message:
        return "error:after-close"
    if message.startswith("unknown record type") or " record of " in message:
        return "error:header"
    if message.startswith("a CLOSE record"):
        return "error:close"
    raise OracleViolation(f"records: a RemoteProtocolError the oracle cannot place: {message}")


def cut(stream: bytes, points: Iterable[int]) -> list[bytes]:
    """``stream`` cut at ``points`` (any order; points beyond its end are ignored)."""
    edges = sorted({0, len(stream), *(p for p in points if 0 <= p <= len(stream))})
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


def read_records(chunks: Iterable[bytes], max_body: int = 65535) -> tuple[list[tuple[str, object]], str, Any]:
    """Feed ``RecordReader`` the chunks as a socket loop would (draining after each; empty
    chunks skipped, since ``b""`` is EOF), then EOF. Returns the records, the ending (as
    :func:`oracle_records` names it) and the reader."""
    from cortex_sal.errors import RemoteProtocolError
    from cortex_sal.keros.framing import EOF, NEED_DATA, Close, ReaderState, RecordReader

    reader = RecordReader(max_body=max_body)
    got: list[tuple[str, object]] = []

    def drain() -> str | None:
        while True:
            item = reader.next_record()
            if item is NEED_DATA:
                return None
            if item is EOF:
                return "closed-eof" if reader.close_record is not None else "eof"
            got.append(
                ("CLOSE", (int(item.reason), item.text)) if isinstance(item, Close) else (item.type.name, item.body)
            )

    try:
        for chunk in chunks:
            if chunk:
                reader.receive_data(chunk)
                drain()
        reader.receive_data(b"")
        end = drain()
        require(end is not None, "records: NEED_DATA after EOF")
    except RemoteProtocolError as exc:
        require(reader.state is ReaderState.FAILED, f"records: a remote error left the reader {reader.state}")
        return got, _record_error_kind(str(exc)), reader
    return got, str(end), reader


class RecordStreamTarget(Target):
    """``RecordReader`` on a mutated stream cut into chunks at points drawn from the input:
    the records and the ending are exactly :func:`oracle_records`'s; a non-bytes input is a
    ``WrongTypeError`` and changes nothing."""

    name = "records"

    def __init__(self) -> None:
        streams = [
            wire_record(1, bytes(range(32))) + wire_record(2, b"") + wire_record(3, b"\x00"),
            wire_record(1, b"\x11" * 96) + wire_record(2, bytes(range(64))) + wire_record(2, b"\x7f"),
            wire_record(2, b"x" * 40) + wire_record(3, bytes([3]) + "arrêt".encode()),
        ]
        self.bases = streams
        self.specs = [
            Spec(
                fields=_record_fields(stream),
                int_fields=tuple(
                    field
                    for at, _ in _record_fields(stream)[0::2]  # the headers
                    for field in ((at, at + 1, (0, 1, 2, 3, 4, 0xFF)), (at + 1, at + 3, RECORD_LENGTHS))
                ),
            )
            for stream in streams
        ]

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import WrongTypeError
        from cortex_sal.keros.framing import ReaderState, RecordReader

        i = plan.base % len(self.bases)
        data = message(plan, self.bases[i], self.specs[i])
        if not is_bytes_like(data):
            reader = RecordReader()
            _, exc = refusal((WrongTypeError,), lambda: reader.receive_data(data))  # type: ignore[arg-type]
            require(exc is not None, f"records: accepted a {type(data).__name__}")
            require(reader.state is ReaderState.OPEN and reader.buffered == 0, "records: a refusal changed the reader")
            return "refused type"
        stream = as_bytes(data)
        max_body = (65535, 40, 1)[plan.base // 3 % 3]
        digest = hashlib.sha256(stream).digest()
        got, end, _ = read_records(
            cut(stream, [b * (len(stream) + 1) // 256 for b in digest[: 1 + digest[0] % 8]]), max_body
        )
        want = oracle_records(stream, max_body)
        require((got, end) == want, f"records: reader gave {(got, end)!r}, the document says {want!r}")
        return end


def _record_fields(stream: bytes) -> tuple[tuple[int, int], ...]:
    """The (header, body) spans of each record of a valid stream."""
    spans = []
    at = 0
    while at < len(stream):
        length = struct.unpack_from(">H", stream, at + 1)[0]
        spans += [(at, at + 3), (at + 3, at + 3 + length)]
        at += 3 + length
    return tuple(spans)


TARGETS: dict[str, Callable[[], Target]] = {
    "v1_hello": lambda: V1MessageTarget("hello"),
    "v1_tee_hello": lambda: V1MessageTarget("tee_hello"),
    "v1_ack": lambda: V1MessageTarget("ack"),
    "gateway_hello": GatewayHelloTarget,
    "gateway_ack": GatewayAckTarget,
    "sensor_tee_hello": SensorTeeHelloTarget,
    "frames_lenient": lambda: FrameTarget(lenient=True),
    "frames_strict": lambda: FrameTarget(lenient=False),
    "sensor_registry": RegistryFileTarget,
    "certification": CertificationTarget,
    "router": RouterTarget,
    "router_batch": RouterBatchTarget,
    "research_payload": ResearchPayloadTarget,
    "shield_frame": ShieldFrameTarget,
    "shield_raw": lambda: ShieldRawTarget(batch=False),
    "shield_batch": lambda: ShieldRawTarget(batch=True),
    "clinical": ClinicalOpenTarget,
    "bundle": BundleTarget,
    "node_registry": NodeRegistryTarget,
    "cli_node": lambda: CliLoaderTarget("node"),
    "cli_proposal": lambda: CliLoaderTarget("proposal"),
    "cli_signature": lambda: CliLoaderTarget("signature"),
    "audit_jsonl": AuditJsonlTarget,
    "audit_db": AuditDbTarget,
    "x25519_peer": X25519PeerTarget,
    "ed25519_verify": Ed25519VerifyTarget,
    "aead_decrypt": AeadOpenTarget,
    "hmac_verify": HmacVerifyTarget,
    "records": RecordStreamTarget,
}

# Parsers being written now; their targets join TARGETS (and get a test and an entry point)
# when the modules land:
#   "certificate":     keros/certificate.py - certificate bytes -> only its documented errors,
#                      a certificate that verifies is byte-identical to one the CA issued;
#   "noise_handshake": keros/noise/ - handshake messages fed to both roles: documented errors
#                      only, a failed machine holds no key, a fresh one completes;
#   "noise_transport": keros/noise/ - transport messages: as frames_strict/frames_lenient.
PENDING = ("certificate", "noise_handshake", "noise_transport")


def main(name: str) -> None:
    """The atheris entry point of target ``name`` (see fuzz/README.md).

    ``--replay FILE...`` decodes each file into its plan, prints the plan and runs it once
    (with a full traceback), for turning a crash into a regression test.
    """
    if "--replay" in sys.argv:
        files = sys.argv[sys.argv.index("--replay") + 1 :]
        target = TARGETS[name]()
        for path in files:
            plan = decode_plan(Path(path).read_bytes())
            print(f"{path}: {plan!r}")
            print("outcome:", target(plan))
        return

    import atheris

    target = TARGETS[name]()

    def one_input(data: bytes) -> None:
        target(decode_plan(data))

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


class TargetCache:
    """A test module's targets, each built on first use and closed together at the end
    (``target = TargetCache()``; ``target(name)``; a module fixture calls ``target.close()``)."""

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}

    def __call__(self, name: str) -> Target:
        if name not in self._targets:
            self._targets[name] = TARGETS[name]()
        return self._targets[name]

    def close(self) -> None:
        for t in self._targets.values():
            t.close()
        self._targets.clear()
