"""Targets of the SAL domain layer (``cortex_sal.sal``): the telemetry router, the research
payload, the shield (frames, raw samples, batches) and the clinical channel. Imports only
``sal`` and the layers below (``keros`` for the sensor channel and its clock).
"""

from __future__ import annotations

import copy
import math
import struct
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as COracleX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as COraclePublic
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fuzzlib.keros import SENSOR, T0, _frame_spec, frame_seq, predict_frame
from fuzzlib.oracle import Target, as_bytes, c_public, is_bytes_like, live_slots, refusal, require
from fuzzlib.plan import KINDS, Mutation, Plan, Spec, message, odd_object


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
        from cortex_sal.clock import ManualClock
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
        from cortex_sal.clock import ManualClock
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
        from cortex_sal.clock import ManualClock
        from cortex_sal.sal.shield import CognitiveShield

        self.clock = ManualClock(T0)
        self.shield = CognitiveShield(clock=self.clock)
        self.samples = calm_samples()
        self._register()

    def _register(self) -> None:
        from cortex_sal.sal.results import Registered

        self.shield.destroy_session()
        result = self.shield.register_sensor(SENSOR, 35.0, 16)
        require(isinstance(result, Registered), f"registration failed: {result}")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import WrongTypeError
        from cortex_sal.keros import State
        from cortex_sal.sal.results import Refused

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
        if not isinstance(data, bytes):
            predicted = "WrongTypeError"  # the shield takes bytes: anything else is the caller's error
        elif predicted == "accept" or len(as_bytes(data)) != len(frame):
            predicted = "accept" if predicted == "accept" else "FrameFormatError"
        frames_before, log_before = state.frame_seq, len(self.shield._log)
        if predicted == "WrongTypeError":
            _, exc = refusal((WrongTypeError,), lambda: self.shield.ingest_frame(SENSOR, data))  # type: ignore[arg-type]
            require(exc is not None, "a frame that is not bytes was not refused")
            require(state.frame_seq == frames_before, "a refused frame reached the pipeline")
            require(len(self.shield._log) == log_before, "a frame that is not bytes was logged")
            require(gateway.last_accepted_seq == last, "a refused frame moved last_accepted")
            return "refused:WrongTypeError"
        result = self.shield.ingest_frame(SENSOR, data)  # type: ignore[arg-type]
        if predicted == "accept":
            require(gateway.last_accepted_seq == frame_seq(frame), "an intact frame did not pass the channel")
            require(state.frame_seq == frames_before + 1, "an intact frame was not processed")
            return "accepted"
        require(isinstance(result, Refused), f"a mutated frame was not refused: {result}")
        require(result.detail.startswith(predicted + ":"), f"refused for {result.detail!r}, model: {predicted}")
        require(state.frame_seq == frames_before, "a refused frame reached the pipeline")
        require(len(self.shield._log) == log_before + 1, "a refused frame was not logged once")
        require(gateway.last_accepted_seq == last, "a refused frame moved last_accepted")
        if predicted == "FrameAuthError":
            require(gateway.state is State.FAILED, "a failed tag did not compromise the session")
        else:
            self.shield.ingest_frame(SENSOR, frame)
            require(gateway.last_accepted_seq == frame_seq(frame), "the valid frame no longer passes the channel")
        return f"refused:{predicted}"


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
        from cortex_sal.clock import ManualClock
        from cortex_sal.sal.results import Registered
        from cortex_sal.sal.shield import CognitiveShield

        self.name = "shield_batch" if batch else "shield_raw"
        self.batch = batch
        self.clock = ManualClock(T0)
        self.shield = CognitiveShield(clock=self.clock)
        self.ids = [SENSOR, "eeg_fp1_certified_v1/0002", "eeg_fp1_certified_v1/0003"]
        for sensor_id in self.ids:
            require(isinstance(self.shield.register_sensor(sensor_id, 35.0, 16), Registered), "register")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import InvalidArgumentError, ShieldError, WrongTypeError
        from cortex_sal.sal.results import Refused, Released

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
        require(all(isinstance(r, Released | Refused) for r in results), "unknown result type")
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
        from cortex_sal.clock import ManualClock
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
