"""Channel cost benchmark: KEROS v1 frames and handshake, measured side by side.

Two figures, each a ratio against a reference measured in the same run (no absolute time
is asserted; the script exits 0 unless it fails itself):

1. Frame decrypt path, 1 KiB payloads: ``SecureBusSession.decrypt_frame(frame, out)``
   (parse + anti-replay + nonce check + AEAD + write into a secure buffer + the stack scrub) vs
   the bare compiled ``crypto_aead_chacha20poly1305_ietf_decrypt`` of the same libsodium
   (``nacl._sodium.lib``, cffi API mode) on the same ciphertexts into the same buffer.
                                                                         target <= 1.3x
2. Full v1 handshake, both sides, to ESTABLISHED and wiped: ``SensorHandshake`` +
   ``GatewayHandshake`` vs the same handshake written naively with ``cryptography`` and
   ``bytes`` keys.                                                       target <= 2.0x

Usage:  .venv/bin/python bench/channel.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import struct
import sys
import time

from _timing import Timing, verdict

FRAME_TARGET = 1.3
HANDSHAKE_TARGET = 2.0
PAYLOAD = 1024
SENSOR = "eeg_fp1_certified_v1"


def _clock_pair(ours: object, ref: object, rounds: int) -> Timing:
    """Run ``ours()``/``ref()`` (each returns per-op microseconds) alternately."""
    o_us: list[float] = []
    r_us: list[float] = []
    ours()  # type: ignore[operator]  # warm up
    ref()  # type: ignore[operator]
    for i in range(rounds):
        pair = ((ours, o_us), (ref, r_us)) if i % 2 == 0 else ((ref, r_us), (ours, o_us))
        for fn, sink in pair:
            sink.append(fn())  # type: ignore[operator]
    return Timing(o_us, r_us)


def bench_frames(rounds: int, frames_per_round: int) -> Timing:
    from nacl._sodium import ffi, lib

    from cortex_sal.keros import establish_in_process
    from cortex_sal.securemem import SecureBuffer

    decrypt = lib.crypto_aead_chacha20poly1305_ietf_decrypt  # the bare compiled call
    out = SecureBuffer(PAYLOAD)
    out_addr = ffi.cast("unsigned char *", out._address())
    null = ffi.NULL

    def fresh_session() -> tuple[object, object, list[bytes]]:
        s, g = establish_in_process(SENSOR, "bench-gateway")
        frames = [s.encrypt_frame(os.urandom(PAYLOAD)) for _ in range(frames_per_round)]
        return s, g, frames

    def ours() -> float:
        s, g, frames = fresh_session()
        t0 = time.perf_counter()
        for frame in frames:
            g.decrypt_frame(frame, out)  # type: ignore[attr-defined]
        dt = time.perf_counter() - t0
        s.close()  # type: ignore[attr-defined]
        g.close()  # type: ignore[attr-defined]
        return dt / len(frames) * 1e6

    def ref() -> float:
        s, g, frames = fresh_session()
        key = ffi.cast("unsigned char *", g._recv_key._address())  # type: ignore[attr-defined]  # the bare call
        parts = [(f[20:], len(f) - 20, f[:8], f[8:20]) for f in frames]
        t0 = time.perf_counter()
        for ct, n, aad, nonce in parts:
            if decrypt(out_addr, null, null, ct, n, aad, 8, nonce, key) != 0:
                raise AssertionError("reference decrypt failed")
        dt = time.perf_counter() - t0
        s.close()  # type: ignore[attr-defined]
        g.close()  # type: ignore[attr-defined]
        return dt / len(parts) * 1e6

    try:
        return _clock_pair(ours, ref, rounds)
    finally:
        out.secure_purge()


def bench_handshake(rounds: int, per_round: int) -> Timing:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from cortex_sal.keros import GatewayHandshake, SensorHandshake

    info = b"cortex-sensor-ecdh-handshake-v1"
    id_hash = hashlib.sha256(SENSOR.encode()).digest()

    def naive_once() -> None:
        sensor = X25519PrivateKey.generate()
        sensor_pub = sensor.public_key()
        hello = id_hash + sensor_pub.public_bytes_raw() + struct.pack(">Q", int(time.time() * 1000))
        # gateway
        if hello[:32] != id_hash:
            raise AssertionError
        gateway = X25519PrivateKey.generate()
        challenge = os.urandom(32)
        g_key = HKDF(hashes.SHA256(), 32, challenge, info).derive(gateway.exchange(sensor_pub))
        tee_hello = id_hash + gateway.public_key().public_bytes_raw() + challenge
        # sensor
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        s_key = HKDF(hashes.SHA256(), 32, tee_hello[64:], info).derive(
            sensor.exchange(X25519PublicKey.from_public_bytes(tee_hello[32:64]))
        )
        ack = hmac.digest(s_key, challenge, "sha256")
        if not hmac.compare_digest(ack, hmac.digest(g_key, challenge, "sha256")):
            raise AssertionError("naive handshake disagrees")

    def ours_once() -> None:
        with SensorHandshake(SENSOR) as sensor, GatewayHandshake("bench-gateway") as gateway:
            ack = sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start()))
            gateway.receive_sensor_ack(ack)

    def timed(fn: object) -> object:
        def run() -> float:
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn()  # type: ignore[operator]
            return (time.perf_counter() - t0) / per_round * 1e6

        return run

    return _clock_pair(timed(ours_once), timed(naive_once), rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    from rich.console import Console
    from rich.table import Table

    frames = bench_frames(rounds, 500 if args.quick else 2000)
    handshake = bench_handshake(rounds, 50 if args.quick else 200)
    table = Table(title="KEROS v1 channel cost (ratios measured side by side in this run)", title_justify="left")
    for col in ("figure", "ours", "reference", "ratio", "target", ""):
        table.add_column(col)
    rows = [
        ("frame decrypt path, 1 KiB, scrub included\ndecrypt_frame vs bare compiled decrypt", frames, FRAME_TARGET),
        ("full v1 handshake, both sides\nours vs naive cryptography + bytes keys", handshake, HANDSHAKE_TARGET),
    ]
    for label, timing, target in rows:
        table.add_row(
            label,
            f"{min(timing.ours_us):.2f} us",
            f"{min(timing.ref_us):.2f} us",
            f"{timing.min_ratio:.2f}x (min)\n{timing.median_ratio:.2f}x (median)",
            f"<= {target}x",
            verdict(timing.min_ratio <= target),
        )
    Console(width=120).print(table)
    print(f"{rounds} interleaved rounds; ratios judged on min-per-side timings (noise only adds time).")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
