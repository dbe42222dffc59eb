"""The seed's SAL vectors, behind ``python src/sal/cognitive_shield_v2.py --test``.

Groups A-H as the seed names them. Crypto groups use RFC known answers; the rest are
boundary tables (just inside, on, and just outside every bound and window edge) whose
expected outcome follows from the design's numbers - never from running the code under
test. Prints one line per vector and the closing ``N passed, M failed``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import numpy as np

from ..crypto import hkdf_expand_into, hkdf_extract, x25519_public_key, x25519_shared_secret
from ..errors import (
    CortexError,
    FrameAuthError,
    InvalidArgumentError,
    LowOrderPointError,
    ReplayAttackError,
    SchemaError,
    SessionExpiredError,
    WrongLengthError,
)
from ..governance import DEFAULT_THRESHOLDS as T
from ..keros import ManualClock, SecureBusSession, SensorCertificationAuthority, establish_in_process
from ..keros.legacy_v1 import keys as keros_v1
from ..sal.drift import DriftDetector, DriftState
from ..sal.features import LABELS, bridge_check, state_label
from ..sal.router import TelemetryRouter, research_payload
from ..sal.seed import SeedCognitiveShield as CognitiveShield  # the seed's vectors speak in the seed's dicts
from ..securemem import SecureBuffer, SecureKeyBuffer
from .selfcheck import expect, raises, run

Vector = tuple[str, str, Callable[[], None]]  # group, name, check

SENSOR = "eeg_fp1_certified_v1"
P = 2**255 - 19


# -- A: ECDH structure (RFC 7748) -----------------------------------------------------------


def _x25519(scalar_hex: str, u_hex: str, out_hex: str) -> Callable[[], None]:
    def check() -> None:
        k = SecureKeyBuffer(bytes.fromhex(scalar_hex))
        with k, x25519_shared_secret(k, bytes.fromhex(u_hex)) as s:
            expect(s.constant_time_compare(bytes.fromhex(out_hex)))

    return check


def _low_order(point: bytes) -> Callable[[], None]:
    def check() -> None:
        k = SecureKeyBuffer()
        with k:
            raises(LowOrderPointError, lambda: x25519_shared_secret(k, point))

    return check


def group_a() -> Iterator[Vector]:
    alice = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    bob = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
    alice_pub = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    bob_pub = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    yield (
        "A",
        "rfc7748 5.2 vector 1",
        _x25519(
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
    )
    yield (
        "A",
        "rfc7748 5.2 vector 2",
        _x25519(
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    )
    yield "A", "rfc7748 6.1 alice -> bob", _x25519(alice, bob_pub, shared)
    yield "A", "rfc7748 6.1 bob -> alice", _x25519(bob, alice_pub, shared)

    def public(scalar: str, pub: str) -> Callable[[], None]:
        def check() -> None:
            k = SecureKeyBuffer(bytes.fromhex(scalar))
            with k:
                expect(x25519_public_key(k) == bytes.fromhex(pub))

        return check

    yield "A", "rfc7748 6.1 alice public", public(alice, alice_pub)
    yield "A", "rfc7748 6.1 bob public", public(bob, bob_pub)
    yield (
        "A",
        "rfc7748 5.2 iterated x1",
        _x25519("09" + "00" * 31, "09" + "00" * 31, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"),
    )
    low_order = {
        "zero": bytes(32),
        "one": (1).to_bytes(32, "little"),
        "order-8 a": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        "order-8 b": bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        "p-1": (P - 1).to_bytes(32, "little"),
        "p": P.to_bytes(32, "little"),
        "p+1": (P + 1).to_bytes(32, "little"),
    }
    for name, point in low_order.items():
        yield "A", f"low-order point refused: {name}", _low_order(point)
    for size in (31, 33):

        def wrong(size: int = size) -> None:
            k = SecureKeyBuffer()
            with k:
                raises(WrongLengthError, lambda: x25519_shared_secret(k, bytes(size)))

        yield "A", f"peer key of {size} bytes refused", wrong


# -- B: HKDF key mathematics (RFC 5869) ------------------------------------------------------

RFC5869 = [
    (
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
        "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        "0b" * 22,
        "",
        "",
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


def group_b() -> Iterator[Vector]:
    for i, (ikm, salt, info, prk, okm) in enumerate(RFC5869, start=1):

        def check_prk(ikm: str = ikm, salt: str = salt, prk: str = prk) -> None:
            with SecureBuffer.from_bytes(bytes.fromhex(ikm)) as k, hkdf_extract(bytes.fromhex(salt), k) as out:
                expect(out.constant_time_compare(bytes.fromhex(prk)))

        def check_okm(prk: str = prk, info: str = info, okm: str = okm) -> None:
            expected = bytes.fromhex(okm)
            with SecureBuffer.from_bytes(bytes.fromhex(prk)) as p, SecureBuffer(len(expected)) as out:
                hkdf_expand_into(p, bytes.fromhex(info), out)
                expect(out.constant_time_compare(expected))

        yield "B", f"rfc5869 case {i} PRK", check_prk
        yield "B", f"rfc5869 case {i} OKM", check_okm
    for length, ok in ((1, True), (32, True), (255 * 32, True), (255 * 32 + 1, False)):

        def check_len(length: int = length, ok: bool = ok) -> None:
            with SecureKeyBuffer() as prk:
                if ok:
                    with SecureBuffer(length) as out:
                        hkdf_expand_into(prk, b"info", out)
                else:
                    with SecureBuffer(length) as out:
                        raises(InvalidArgumentError, lambda: hkdf_expand_into(prk, b"info", out))

        yield "B", f"HKDF-Expand L={length} {'accepted' if ok else 'refused'}", check_len

    def info_binds() -> None:
        with SecureKeyBuffer() as prk, SecureKeyBuffer.allocate() as a, SecureKeyBuffer.allocate() as b:
            hkdf_expand_into(prk, keros_v1.HANDSHAKE_INFO, a)
            hkdf_expand_into(prk, b"cortex-clinical-stream-v1", b)
            expect(not a.constant_time_compare(b))

    yield "B", "distinct info strings give distinct keys", info_binds


# -- C: full handshake with ACK ----------------------------------------------------------------


def _handshake(sensor_id: str, ack_mutator: Callable[[bytes], bytes] | None = None) -> dict[str, object]:
    ca = SensorCertificationAuthority()
    with ca.new_ephemeral_key() as sensor, ca.new_ephemeral_key() as tee:
        challenge = ca.issue_challenge()
        k = keros_v1.derive_session_key(sensor.key_buffer, tee.public_bytes(), challenge)
        with k:
            ack = keros_v1.compute_ack(k, challenge)
        if ack_mutator:
            ack = ack_mutator(ack)
        return ca.full_handshake(sensor_id, sensor.public_bytes(), ack, tee, challenge)


def group_c() -> Iterator[Vector]:
    def ok() -> None:
        r = _handshake(SENSOR)
        key = r["session_key"]
        expect(r["status"] == "ok" and isinstance(key, SecureKeyBuffer))
        if isinstance(key, SecureKeyBuffer):
            key.secure_purge()

    def refused(sensor_id: str, mutate: Callable[[bytes], bytes] | None) -> Callable[[], None]:
        def check() -> None:
            r = _handshake(sensor_id, mutate)
            expect(r["status"] == "refused" and r["session_key"] is None and bool(r["reason"]))

        return check

    yield "C", "full handshake returns a SecureKeyBuffer", ok
    yield "C", "wrong ACK refused", refused(SENSOR, lambda a: bytes(32))
    yield "C", "ACK with one bit flipped refused", refused(SENSOR, lambda a: bytes([a[0] ^ 1]) + a[1:])
    yield "C", "ACK of 31 bytes refused", refused(SENSOR, lambda a: a[:31])
    yield "C", "unknown sensor refused", refused("eeg_unknown_v9", None)
    yield "C", "serial of a certified model admitted", lambda: expect(_handshake(SENSOR + "/0042")["status"] == "ok")

    def both_sides() -> None:
        a, b = establish_in_process(SENSOR, "gw", clock=ManualClock())
        with a, b:
            expect(a.session_key.constant_time_compare(b.session_key))

    yield "C", "both sides derive the same session key", both_sides
    ca = SensorCertificationAuthority()
    for snr, ok_ in ((29.9, False), (29.999, False), (30.0, True), (30.1, True)):
        yield "C", f"SNR {snr} dB {'admitted' if ok_ else 'refused'}", _admit(ca, snr=snr, bits=16, ok=ok_)
    for bits, ok_ in ((11, False), (12, True), (13, True)):
        yield "C", f"{bits} bits {'admitted' if ok_ else 'refused'}", _admit(ca, snr=35.0, bits=bits, ok=ok_)

    def closes() -> None:
        sensor, session = establish_in_process(SENSOR, "gw", clock=ManualClock())
        key = session.session_key
        session.close()
        sensor.close()
        expect(key.is_purged)

    yield "C", "session key purged when the session closes", closes


def _admit(ca: SensorCertificationAuthority, *, snr: float, bits: int, ok: bool) -> Callable[[], None]:
    def check() -> None:
        if ok:
            ca.admit(SENSOR, snr, bits)
        else:
            raises(CortexError, lambda: ca.admit(SENSOR, snr, bits))

    return check


# -- D: router ingest ------------------------------------------------------------------------------

NOW = 1_800_000_000.0


def _payload(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "features": np.array([0.5, 0.1, 0.4, 0.6, 0.8]),
        "coherency": 0.2,
        "polyvagal_state": LABELS[0],
        "timestamp": NOW,
        "frame_seq": 1,
        "sensor_id_hash": "ab" * 8,
        "spectral_bins": np.full(8, 0.125),
    }
    payload.update(overrides)
    return payload


def _routed(payload: dict[str, object]) -> dict[str, object]:
    return TelemetryRouter(clock=ManualClock(NOW)).ingest_from_bridge(payload)


def group_d() -> Iterator[Vector]:
    yield "D", "valid payload routed", lambda: expect(_routed(_payload())["status"] == "routed")
    for key in ("features", "coherency", "polyvagal_state", "timestamp", "frame_seq", "sensor_id_hash"):

        def missing(key: str = key) -> None:
            p = _payload()
            del p[key]
            raises(SchemaError, lambda: _routed(p))

        yield "D", f"missing {key} refused", missing
    bad: dict[str, dict[str, object]] = {
        "features of shape (4,)": {"features": np.zeros(4)},
        "features of shape (5, 1)": {"features": np.zeros((5, 1))},
        "non-finite features": {"features": np.array([0.5, np.nan, 0.4, 0.6, 0.8])},
        "unknown state label": {"polyvagal_state": "euphoric"},
        "coherency not a number": {"coherency": "0.2"},
    }

    def schema_refused(override: dict[str, object]) -> Callable[[], None]:
        return lambda: raises(SchemaError, lambda: _routed(_payload(**override)))

    for name, override in bad.items():
        yield "D", f"{name} refused", schema_refused(override)
    for delta, ok in ((5.0, True), (-5.0, True), (4.999, True), (5.001, False), (-5.001, False)):

        def window(delta: float = delta, ok: bool = ok) -> None:
            p = _payload(timestamp=NOW + delta)
            if ok:
                expect(_routed(p)["status"] == "routed")
            else:
                raises(SchemaError, lambda: _routed(p))

        yield "D", f"timestamp now{delta:+} {'accepted' if ok else 'refused'}", window

    def layout() -> None:
        bins = np.arange(8, dtype=np.float64) / 10
        out = research_payload(7, bins, 0.25, 2)
        expect(out == struct.pack(">I8ffB", 7, *bins.astype(np.float32), np.float32(0.25), 2) and len(out) == 41)

    yield "D", "research payload is the 41-byte layout", layout


# -- E: replay protection --------------------------------------------------------------------


def group_e() -> Iterator[Vector]:
    def router_seq(first: int, second: int, expected: str, other_sensor: bool = False) -> Callable[[], None]:
        def check() -> None:
            router = TelemetryRouter(clock=ManualClock(NOW))
            expect(router.ingest_from_bridge(_payload(frame_seq=first))["status"] == "routed")
            sid = "cd" * 8 if other_sensor else "ab" * 8
            got = router.ingest_from_bridge(_payload(frame_seq=second, sensor_id_hash=sid))["status"]
            expect(got == expected, f"{got} != {expected}")

        return check

    yield "E", "router: same frame_seq is a replay", router_seq(5, 5, "replay_attack")
    yield "E", "router: lower frame_seq is a replay", router_seq(5, 4, "replay_attack")
    yield "E", "router: higher frame_seq routed", router_seq(5, 6, "routed")
    yield "E", "router: sequences are per sensor", router_seq(5, 1, "routed", other_sensor=True)

    def pair() -> tuple[SecureBusSession, SecureBusSession]:
        return establish_in_process(SENSOR, "gw", clock=ManualClock())

    def replay() -> None:
        s, g = pair()
        f = s.encrypt_frame(b"x")
        g.decrypt_frame(f).secure_purge()
        raises(ReplayAttackError, lambda: g.decrypt_frame(f))

    def reorder() -> None:
        s, g = pair()
        f1, f2 = s.encrypt_frame(b"1"), s.encrypt_frame(b"2")
        g.decrypt_frame(f2).secure_purge()
        raises(ReplayAttackError, lambda: g.decrypt_frame(f1))

    def tampered() -> None:
        s, g = pair()
        f = bytearray(s.encrypt_frame(b"payload"))
        f[25] ^= 0x80
        raises(FrameAuthError, lambda: g.decrypt_frame(bytes(f)))

    def exhausted() -> None:
        sender, _ = establish_in_process(SENSOR, "gw", clock=ManualClock(), max_seq=2)
        sender.encrypt_frame(b"1")
        raises(SessionExpiredError, lambda: sender.encrypt_frame(b"2"))

    yield "E", "frame replay refused", replay
    yield "E", "frame reorder refused", reorder
    yield "E", "tampered frame refused", tampered
    yield "E", "sequence exhaustion forces a re-handshake", exhausted


# -- F: drift hard block -----------------------------------------------------------------------


def _drift(readings: list[tuple[float, float]]) -> DriftState:
    """Feed (seconds after start, coherency) readings; return the last state."""
    clock = ManualClock()
    detector = DriftDetector(thresholds=T, clock=clock)
    elapsed = 0.0
    state = detector.state  # no reading yet
    for at, c in readings:
        clock.advance(at - elapsed)
        elapsed = at
        state = detector.update(c)
    return state


def group_f() -> Iterator[Vector]:
    limit = T.max_coherency_sum_per_minute
    cases: list[tuple[str, list[tuple[float, float]], int, bool]] = [
        ("window sum exactly at the limit: no violation", [(0, 1.0), (1, 1.0), (2, limit - 2.0)], 0, False),
        ("window sum just above the limit: one violation", [(0, 1.0), (1, 1.0), (2, limit - 2.0 + 1e-9)], 1, False),
        ("second violation", [(0, 2.0), (1, 0.6), (2, 0.1)], 2, False),
        ("third hard violation blocks", [(0, 2.0), (1, 0.6), (2, 0.1), (3, 0.1)], 3, True),
        ("a reading 60 s old has left the window", [(0, 2.0), (60, 0.6)], 0, False),
        ("a reading 59.9 s old is still in the window", [(0, 2.0), (59.9, 0.6)], 1, False),
    ]
    for name, readings, hard, blocked in cases:

        def check(readings: list[tuple[float, float]] = readings, hard: int = hard, blocked: bool = blocked) -> None:
            st = _drift(readings)
            expect(st.hard_violations == hard and st.blocked == blocked, repr(st))

        yield "F", name, check

    def has_capacity(readings: list[tuple[float, float]], capacity: str) -> Callable[[], None]:
        return lambda: expect(_drift(readings).capacity == capacity)

    for hard, capacity in ((0, "FULL"), (1, "FULL"), (2, "LIMITED"), (3, "NONE")):
        readings = [(0.0, 2.6)] + [(float(i), 0.0) for i in range(1, hard)] if hard else [(0.0, 0.1)]
        yield "F", f"{hard} hard violation(s): capacity {capacity}", has_capacity(readings, capacity)

    def stays_blocked() -> None:
        clock = ManualClock()
        detector = DriftDetector(thresholds=T, clock=clock)
        for c in (2.6, 0.0, 0.0):
            detector.update(c)
        clock.advance(10 * T.drift_window_s)
        expect(detector.update(0.0).blocked)

    yield "F", "a hard block is for good", stays_blocked

    def shield_refuses_blocked() -> None:
        clock = ManualClock()
        with CognitiveShield(clock=clock) as shield:
            shield.register_sensor(SENSOR, 35.0, 16)
            state = shield._sensors[SENSOR]
            state.blocked = True
            r = shield.ingest_raw_data(SENSOR, np.zeros(256))
            expect(r["status"] == "refused" and "drift" in r["reason"])

    yield "F", "the shield refuses a blocked sensor", shield_refuses_blocked


# -- G and H: bridge bounds ------------------------------------------------------------------------


def _bridge(std: float = 0.1, p75: float = 0.6, peak: float = 0.8) -> str | None:
    return bridge_check(np.array([0.5, std, 0.4, p75, peak]), T)


def _bridge_passes(ok: bool, std: float = 0.1, p75: float = 0.6, peak: float = 0.8) -> Callable[[], None]:
    return lambda: expect((_bridge(std=std, p75=p75, peak=peak) is None) == ok)


def group_g() -> Iterator[Vector]:
    bound = T.bridge_max_std
    for std, ok in ((0.0, True), (0.49, True), (bound, True), (bound + 1e-9, False), (0.51, False), (1.0, False)):
        yield (
            "G",
            f"std {std} {'passes' if ok else 'refused'}",
            _bridge_passes(ok, std=std),
        )

    def noisy_frame() -> None:
        with CognitiveShield(clock=ManualClock()) as shield:
            shield.register_sensor(SENSOR, 35.0, 16)
            square = np.where(np.arange(256) % 2, 150.0, -150.0)  # clipped to 0/1: huge spread
            r = shield.ingest_raw_data(SENSOR, square)
            expect(r["status"] == "refused" and "bridge" in r["reason"], repr(r))

    yield "G", "a frame beyond the bounds is refused by the shield", noisy_frame

    def label(c: float, expected: int) -> Callable[[], None]:
        return lambda: expect(state_label(c, T) == LABELS[expected])

    for c, idx in ((0.0, 0), (0.2999, 0), (0.3, 1), (0.6999, 1), (0.7, 2), (5.0, 2)):
        yield "G", f"coherency {c} labelled {LABELS[idx]}", label(c, idx)


def group_h() -> Iterator[Vector]:
    peak = T.bridge_max_peak
    for value, ok in ((0.0, True), (0.89, True), (peak, True), (peak + 1e-9, False), (0.95, False), (1.0, False)):
        yield (
            "H",
            f"peak {value} {'passes' if ok else 'refused'}",
            _bridge_passes(ok, peak=max(value, 0.0), p75=min(value, 0.6)),
        )
    p75 = T.bridge_max_p75
    for value, ok in ((0.69, True), (p75, True), (p75 + 1e-9, False), (0.75, False)):
        yield (
            "H",
            f"p75 {value} {'passes' if ok else 'refused'}",
            _bridge_passes(ok, p75=value, peak=0.85),
        )


GROUPS = (group_a, group_b, group_c, group_d, group_e, group_f, group_g, group_h)


def vectors() -> list[Vector]:
    return [v for group in GROUPS for v in group()]


def main() -> int:
    return run((f"{group} {name}", check) for group, name, check in vectors())
