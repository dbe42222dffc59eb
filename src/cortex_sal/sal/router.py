"""Telemetry router: the last gate before anything leaves the shield (SYSTEM.md "Telemetry router").

``TelemetryRouter.ingest_from_bridge(payload)`` checks a bridge payload against a strict
schema, refuses stale timestamps and replayed frame numbers, and turns what passes into a
41-byte *research payload*::

    frame_seq (u32 BE) || 8 spectral bins (f32 BE each) || cv (f32 BE) || bucket (u8)

The research payload carries no identifier and no timestamp: ``sensor_id_hash`` and
``timestamp`` are checked, never copied out. ``cv`` is the payload's ``coherency`` (the
envelope's coefficient of variation, ``std / mean``) and ``bucket`` the index of its
``polyvagal_state`` in :data:`LABELS`.

Choices where docs/sal.md is silent (what a demanding user expects):

* The schema is closed: a key other than the six required ones and ``spectral_bins`` is a
  :class:`~cortex_sal.errors.SchemaError` (a typo such as ``"spectral_bin"`` must not pass
  unnoticed). A payload that is not a mapping is a ``SchemaError`` as well.
* Numbers are real and finite: ``bool`` (and ``numpy.bool_``) is not a number here, complex
  and object arrays are refused, NaN and infinities are refused. ``frame_seq`` is an integer
  (a ``float`` such as ``1.0`` is refused) that fits the u32 field (0 .. 2**32 - 1);
  ``coherency`` and the spectral bins must fit a float32 (``|x| <= 3.4028235e38``).
* ``spectral_bins`` may be absent or ``None``: the research payload then carries eight quiet
  NaNs, the wire's "not measured" (distinct from eight zeros, which mean "no power").
  :func:`parse_research_payload` gives ``None`` back for them.
* Every check runs before any state changes: a refused payload (schema error or replay)
  leaves the router exactly as it was. The replay check and the update of the last accepted
  ``frame_seq`` happen under one lock, so two threads cannot both route the same number.
* The timestamp window is inclusive: ``|timestamp - clock.time()| <= 5.0`` passes.

Per-sensor state: the router remembers the last routed ``frame_seq`` of every
``sensor_id_hash`` it has seen, in a plain dict (one small entry per sensor). It grows by one
entry per distinct sensor and is never pruned automatically - pruning would silently reopen
replay for that sensor. ``len(router)`` says how many sensors are tracked; the owner calls
:meth:`TelemetryRouter.forget` when a sensor's session ends and :meth:`TelemetryRouter.clear`
when the whole session is destroyed (the shield does the latter in ``destroy_session()``).
"""

from __future__ import annotations

import math
import numbers
import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import InvalidArgumentError, SchemaError, WrongLengthError, WrongTypeError

# docs/sal.md: the same three labels as ``features.LABELS`` (features.py did not exist when
# this module was written; both define the identical tuple).
LABELS: tuple[str, str, str] = ("ventral_vagal (calm)", "sympathetic (focused)", "dorsal_vagal (rest_needed)")

TIMESTAMP_TOLERANCE_S = 5.0
FEATURES_SHAPE = (5,)
SPECTRAL_BINS = 8
MAX_FRAME_SEQ = 0xFFFFFFFF
FLOAT32_MAX = float(np.finfo(np.float32).max)

REQUIRED_KEYS = ("features", "coherency", "polyvagal_state", "timestamp", "frame_seq", "sensor_id_hash")
OPTIONAL_KEYS = ("spectral_bins",)

_PAYLOAD = struct.Struct(">I8ffB")
RESEARCH_PAYLOAD_SIZE = _PAYLOAD.size  # 41
assert RESEARCH_PAYLOAD_SIZE == 41

_NOT_MEASURED = (math.nan,) * SPECTRAL_BINS
# the same layout as a packed numpy record, for the batch path
_PAYLOAD_DTYPE = np.dtype([("seq", ">u4"), ("bins", ">f4", (SPECTRAL_BINS,)), ("cv", ">f4"), ("bucket", "u1")])
assert _PAYLOAD_DTYPE.itemsize == RESEARCH_PAYLOAD_SIZE


# -- value checks (each returns a normalised value or a message) ----------------------


def _real(value: object) -> float | None:
    """``value`` as a float if it is a real, non-bool number; else ``None``.

    A number beyond the float range (a huge ``int`` or ``Fraction``) becomes an infinity,
    which every caller refuses as not finite.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]  # numbers.Real declares no order; int and Fraction have one


def _integer(value: object) -> int | None:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _check_array(value: object, what: str, shape: tuple[int, ...], *, f32: bool) -> np.ndarray[Any, Any] | str:
    if not isinstance(value, np.ndarray):
        return f"{what} must be a numpy.ndarray, got {type(value).__name__}"
    if value.shape != shape:
        return f"{what} must have shape {shape}, got {value.shape}"
    if value.dtype.kind not in "iuf":
        return f"{what} must hold real numbers, got dtype {value.dtype}"
    with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf: refused just below
        arr = value.astype(np.float64)
    if not np.isfinite(arr).all():
        return f"{what} must be finite (NaN or infinity found)"
    if f32 and bool((np.abs(arr) > FLOAT32_MAX).any()):
        return f"{what} must fit a float32"
    return arr


def _check_seq(value: object) -> int | str:
    seq = _integer(value)
    if seq is None:
        return f"frame_seq must be an int, got {type(value).__name__}"
    if not 0 <= seq <= MAX_FRAME_SEQ:
        return f"frame_seq must be between 0 and {MAX_FRAME_SEQ}, got {seq}"
    return seq


def _check_cv(value: object, what: str) -> float | str:
    cv = _real(value)
    if cv is None:
        return f"{what} must be a real number, got {type(value).__name__}"
    if not math.isfinite(cv):
        return f"{what} must be finite, got {cv!r}"
    if abs(cv) > FLOAT32_MAX:
        return f"{what} must fit a float32, got {cv!r}"
    return cv


# -- research payload -----------------------------------------------------------------


def research_payload(frame_seq: int, spectral_bins: np.ndarray[Any, Any] | None, cv: float, bucket: int) -> bytes:
    """The 41-byte research payload: ``u32 BE seq || 8 x f32 BE bins || f32 BE cv || u8 bucket``.

    ``spectral_bins`` is a finite real array of shape (8,), or ``None`` for "not measured"
    (eight quiet NaNs on the wire). ``bucket`` is an index into :data:`LABELS`. Bad arguments
    raise :class:`~cortex_sal.errors.WrongTypeError` or
    :class:`~cortex_sal.errors.InvalidArgumentError`; values are rounded to float32.
    """
    seq = _check_seq(frame_seq)
    if isinstance(seq, str):
        raise (WrongTypeError if _integer(frame_seq) is None else InvalidArgumentError)(seq)
    if spectral_bins is None:
        bins: tuple[float, ...] = _NOT_MEASURED
    else:
        arr = _check_array(spectral_bins, "spectral_bins", (SPECTRAL_BINS,), f32=True)
        if isinstance(arr, str):
            raise (WrongTypeError if not isinstance(spectral_bins, np.ndarray) else InvalidArgumentError)(arr)
        bins = tuple(float(x) for x in arr)
    value = _check_cv(cv, "cv")
    if isinstance(value, str):
        raise (WrongTypeError if _real(cv) is None else InvalidArgumentError)(value)
    b = _integer(bucket)
    if b is None:
        raise WrongTypeError(f"bucket must be an int, got {type(bucket).__name__}")
    if not 0 <= b < len(LABELS):
        raise InvalidArgumentError(f"bucket must be between 0 and {len(LABELS) - 1}, got {b}")
    return _PAYLOAD.pack(seq, *bins, value, b)


def parse_research_payload(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode a research payload into ``frame_seq``, ``spectral_bins``, ``cv``, ``bucket``, ``polyvagal_state``.

    ``spectral_bins`` is a float32 array of shape (8,), or ``None`` when all eight are NaN
    ("not measured"). A payload of the wrong size, an unknown bucket, a non-finite ``cv``
    or a mix of NaN and numbers in the bins is refused (``InvalidArgumentError`` /
    ``WrongLengthError``): ``research_payload(**fields)`` of a parsed payload (without
    ``polyvagal_state``) gives the same bytes back.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WrongTypeError(f"a research payload is bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) != RESEARCH_PAYLOAD_SIZE:
        raise WrongLengthError(f"a research payload is exactly {RESEARCH_PAYLOAD_SIZE} bytes, got {len(raw)}")
    seq, *rest = _PAYLOAD.unpack(raw)
    bins_t, cv, bucket = rest[:SPECTRAL_BINS], rest[SPECTRAL_BINS], rest[SPECTRAL_BINS + 1]
    if bucket >= len(LABELS):
        raise InvalidArgumentError(f"research payload bucket {bucket} names no label")
    if not math.isfinite(cv):
        raise InvalidArgumentError("research payload cv is not finite")
    nan = [math.isnan(x) for x in bins_t]
    if all(nan):
        bins: np.ndarray[Any, Any] | None = None
    elif any(nan) or not all(math.isfinite(x) for x in bins_t):
        raise InvalidArgumentError("research payload spectral bins must be all finite or all NaN (not measured)")
    else:
        bins = np.array(bins_t, dtype=np.float32)
    return {
        "frame_seq": seq,
        "spectral_bins": bins,
        "cv": float(cv),
        "bucket": bucket,
        "polyvagal_state": LABELS[bucket],
    }


# -- the router -----------------------------------------------------------------------


class TelemetryRouter:
    """Schema, freshness and anti-replay checks, then the 41-byte research payload.

    ``clock.time()`` (wall seconds) is the reference for the ±5 s timestamp window. The
    per-sensor "last routed frame_seq" lives in a dict that grows with the number of
    distinct ``sensor_id_hash`` values (see the module docstring); use :meth:`forget` and
    :meth:`clear`, and ``len(router)`` to watch it.
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, timestamp_tolerance_s: float = TIMESTAMP_TOLERANCE_S) -> None:
        tolerance = _real(timestamp_tolerance_s)
        if tolerance is None or not math.isfinite(tolerance) or tolerance < 0:
            raise InvalidArgumentError(
                f"timestamp_tolerance_s must be a finite number >= 0, got {timestamp_tolerance_s!r}"
            )
        self._clock = clock
        self._tolerance = tolerance
        self._last_seq: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- schema ------------------------------------------------------------------------

    def _validate(self, payload: object) -> tuple[str, int, float, int, np.ndarray[Any, Any] | None]:
        """(sensor_id_hash, frame_seq, cv, bucket, spectral bins or None), or SchemaError."""
        if not isinstance(payload, Mapping):
            raise SchemaError(f"telemetry payload must be a mapping, got {type(payload).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in payload]
        if missing:
            raise SchemaError(f"telemetry payload lacks required key(s): {', '.join(missing)}")
        unknown = sorted(repr(k) for k in payload if k not in REQUIRED_KEYS and k not in OPTIONAL_KEYS)
        if unknown:
            raise SchemaError(f"telemetry payload has unknown key(s): {', '.join(unknown)}")

        features = _check_array(payload["features"], "features", FEATURES_SHAPE, f32=False)
        if isinstance(features, str):
            raise SchemaError(features)
        cv = _check_cv(payload["coherency"], "coherency")
        if isinstance(cv, str):
            raise SchemaError(cv)
        label = payload["polyvagal_state"]
        if not isinstance(label, str):
            raise SchemaError(f"polyvagal_state must be a str, got {type(label).__name__}")
        if label not in LABELS:
            raise SchemaError(f"polyvagal_state {label!r} is not one of {LABELS}")
        ts = _real(payload["timestamp"])
        if ts is None:
            raise SchemaError(
                f"timestamp must be a real number (wall seconds), got {type(payload['timestamp']).__name__}"
            )
        if not math.isfinite(ts):
            raise SchemaError(f"timestamp must be finite, got {ts!r}")
        now = self._clock.time()
        if not abs(ts - now) <= self._tolerance:
            raise SchemaError(f"timestamp is {ts - now:+.3f} s from now (tolerance ±{self._tolerance} s)")
        seq = _check_seq(payload["frame_seq"])
        if isinstance(seq, str):
            raise SchemaError(seq)
        sensor = payload["sensor_id_hash"]
        if not isinstance(sensor, str):
            raise SchemaError(f"sensor_id_hash must be a str, got {type(sensor).__name__}")
        if not sensor:
            raise SchemaError("sensor_id_hash must not be empty")
        bins = payload.get("spectral_bins")
        if bins is not None:
            checked = _check_array(bins, "spectral_bins", (SPECTRAL_BINS,), f32=True)
            if isinstance(checked, str):
                raise SchemaError(checked)
            bins = checked
        return sensor, seq, cv, LABELS.index(label), bins

    # -- routing -----------------------------------------------------------------------

    def ingest_from_bridge(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Route one bridge payload.

        Returns ``{"status": "routed", "research_payload": <41 bytes>}``, or
        ``{"status": "replay_attack", "frame_seq": n, "last_frame_seq": m}`` when ``n`` is not
        strictly greater than the last routed number ``m`` of that sensor (nothing changes).
        Raises :class:`~cortex_sal.errors.SchemaError` (a ``ValueError``) for a missing or
        unknown key, a wrong type, shape or value, an unknown label or a stale timestamp.
        """
        sensor, seq, cv, bucket, bins = self._validate(payload)
        out = research_payload(seq, bins, cv, bucket)
        with self._lock:
            last = self._last_seq.get(sensor)
            if last is not None and seq <= last:
                return {"status": "replay_attack", "frame_seq": seq, "last_frame_seq": last}
            self._last_seq[sensor] = seq
        return {"status": "routed", "research_payload": out}

    def ingest_batch(
        self,
        features: np.ndarray[Any, Any],
        coherency: np.ndarray[Any, Any],
        polyvagal_states: Sequence[str],
        timestamp: float,
        frame_seqs: Sequence[int],
        sensor_id_hashes: Sequence[str],
        spectral_bins: np.ndarray[Any, Any],
    ) -> list[dict[str, Any]]:
        """Route n payloads at once (one timestamp for the batch): the same checks and
        results as ``ingest_from_bridge`` row by row, validated and packed vectorised.

        A schema error anywhere refuses the whole batch (``SchemaError``) before any state
        changes; replays are answered row by row, as the single path does.
        """
        for what, column in (
            ("polyvagal_states", polyvagal_states),
            ("frame_seqs", frame_seqs),
            ("sensor_id_hashes", sensor_id_hashes),
        ):
            try:
                if isinstance(column, str | bytes):
                    raise TypeError
                len(column)
            except TypeError:
                raise SchemaError(
                    f"{what} must be a sequence (one item per row), got {type(column).__name__}"
                ) from None
        n = len(sensor_id_hashes)
        f = _check_array(features, "features", (n, *FEATURES_SHAPE), f32=False)
        if isinstance(f, str):
            raise SchemaError(f)
        cv = _check_array(coherency, "coherency", (n,), f32=True)
        if isinstance(cv, str):
            raise SchemaError(cv)
        bins = _check_array(spectral_bins, "spectral_bins", (n, SPECTRAL_BINS), f32=True)
        if isinstance(bins, str):
            raise SchemaError(bins)
        if len(polyvagal_states) != n or len(frame_seqs) != n:
            raise SchemaError(f"batch columns disagree in length (expected {n} rows)")
        try:
            buckets = [LABELS.index(label) for label in polyvagal_states]
        except ValueError:
            raise SchemaError(f"a polyvagal_state is not one of {LABELS}") from None
        ts = _real(timestamp)
        if ts is None or not math.isfinite(ts):
            raise SchemaError("timestamp must be a finite real number (wall seconds)")
        now = self._clock.time()
        if not abs(ts - now) <= self._tolerance:
            raise SchemaError(f"timestamp is {ts - now:+.3f} s from now (tolerance ±{self._tolerance} s)")
        seqs = [_check_seq(seq) for seq in frame_seqs]
        bad = next((s for s in seqs if isinstance(s, str)), None)
        if bad is not None:
            raise SchemaError(bad)
        if not all(isinstance(h, str) and h for h in sensor_id_hashes):
            raise SchemaError("every sensor_id_hash must be a non-empty str")
        packed = np.empty(n, dtype=_PAYLOAD_DTYPE)
        packed["seq"] = seqs
        packed["bins"] = bins
        packed["cv"] = cv
        packed["bucket"] = buckets
        raw = packed.tobytes()
        out: list[dict[str, Any]] = []
        with self._lock:
            for i, (sensor, seq) in enumerate(zip(sensor_id_hashes, seqs, strict=True)):
                last = self._last_seq.get(sensor)
                if last is not None and seq <= last:  # type: ignore[operator]  # seqs were checked to be ints above
                    out.append({"status": "replay_attack", "frame_seq": seq, "last_frame_seq": last})
                    continue
                self._last_seq[sensor] = seq  # type: ignore[assignment]  # an int, checked above
                start = i * RESEARCH_PAYLOAD_SIZE
                out.append({"status": "routed", "research_payload": raw[start : start + RESEARCH_PAYLOAD_SIZE]})
        return out

    # -- per-sensor state ----------------------------------------------------------------

    def last_seq(self, sensor_id_hash: str) -> int | None:
        """The last routed ``frame_seq`` of this sensor, ``None`` if none was routed."""
        with self._lock:
            return self._last_seq.get(sensor_id_hash)

    def forget(self, sensor_id_hash: str) -> bool:
        """Drop a sensor's replay state (call when its session ends); True if it was tracked.

        After this the sensor's next ``frame_seq`` is accepted whatever its value: forget a
        sensor only when its frames can no longer arrive (its session keys are gone).
        """
        with self._lock:
            return self._last_seq.pop(sensor_id_hash, None) is not None

    def clear(self) -> None:
        """Drop the replay state of every sensor (the session is destroyed)."""
        with self._lock:
            self._last_seq.clear()

    def __len__(self) -> int:
        """How many sensors' last ``frame_seq`` the router holds."""
        with self._lock:
            return len(self._last_seq)

    def __repr__(self) -> str:
        return f"<TelemetryRouter tracking {len(self)} sensor(s)>"


__all__ = [
    "LABELS",
    "RESEARCH_PAYLOAD_SIZE",
    "TIMESTAMP_TOLERANCE_S",
    "TelemetryRouter",
    "parse_research_payload",
    "research_payload",
]
