"""The store never holds a secret (issue #12, Custody): a real shield session runs on the store, then
the database file, its WAL and any journal are scanned for every secret of that session with the
residue harness's patterns (exact, 8-byte fragments, HMAC pads, hex, base64), and hold none.

The secrets are known independently of the code under test: the KEROS v2 session's keys from the
test's own Noise peer (``IndependentNoiseXX``, over ``cryptography``), the gateway's static and
ephemeral keys and the receipt signing seed that the test generated (the seed's SHA-512 expansion
computed with ``hashlib``), and the raw samples the test encrypted. The shield's own Phase B salt
and LIMES master are read from its locked memory during the session (the values themselves).
A control writes one secret into the database with bare ``sqlite3`` and the same scan finds it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from cortex_sal.clock import ManualClock
from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.keros.certificate import CertificateAuthority, TrustStore
from cortex_sal.keros.v2 import PROLOGUE, GatewayV2
from cortex_sal.sal.results import RefusalReason, Refused, Registered, Released
from cortex_sal.securemem import SecureKeyBuffer
from cortex_sal.sources import synthetic_eeg
from cortex_sal.store.base import subject_of
from cortex_sal.store.runtime import durable_ledger, open_shield
from cortex_sal.store.sqlite import DATABASE_FILE, RECEIPT_KEY_FILE, SqliteStore
from cortex_sal.testing.noise_oracle import IndependentNoiseXX
from cortex_sal.testing.residue import _FragmentIndex, patterns
from cortex_sal.testing.scenarios import SHIELD_V2_SEED, V2_FRAMES, V2_MODEL

SENSOR_ID = f"{V2_MODEL}/SN-7"
APP = "custody-app"


def _database_files(directory: Path) -> list[Path]:
    """The database, its -wal, -shm and any -journal: every file SQLite keeps for the store."""
    return sorted(p for p in directory.iterdir() if p.name.startswith(DATABASE_FILE))


def scan_files(paths: list[Path], secrets: dict[str, bytes]) -> list[str]:
    """Every pattern of every secret found in the files, as ``file: secret/kind=n``."""
    pats = {name: patterns(value) for name, value in secrets.items()}
    fragments = _FragmentIndex(pats)
    hits = []
    for path in paths:
        data = path.read_bytes()
        for name, by_kind in pats.items():
            for kind, needles in by_kind.items():
                n = sum(data.count(needle) for needle in needles) if kind != "frag8" else 0
                if n:
                    hits.append(f"{path.name}: {name}/{kind}={n}")
        for name, n in sorted(fragments.count(data).items()):
            hits.append(f"{path.name}: {name}/frag8={n}")
    return hits


def _ed25519_expansion(seed: bytes) -> dict[str, bytes]:
    digest = hashlib.sha512(seed).digest()  # RFC 8032 5.1.5: h[:32] clamped is the scalar, h[32:] the prefix
    scalar = bytearray(digest[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    return {"receipt_sha512_low": digest[:32], "receipt_scalar": bytes(scalar), "receipt_prefix": digest[32:]}


def _write_key_file(directory: Path, seed: bytes) -> None:
    fd = os.open(directory / RECEIPT_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, seed)
    finally:
        os.close(fd)


def _v2_session(secrets: dict[str, bytes]) -> tuple[IndependentNoiseXX, GatewayV2, X25519PrivateKey]:
    """A KEROS v2 handshake: our gateway against the test's independent sensor; every key into ``secrets``."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as OracleKey

    now = int(time.time())
    gateway_static, gateway_ephemeral = os.urandom(32), os.urandom(32)
    sensor = IndependentNoiseXX(True, os.urandom(32), os.urandom(32), PROLOGUE)
    gateway_public = OracleKey.from_private_bytes(gateway_static).public_key().public_bytes_raw()
    with CertificateAuthority.generate("manufacturer", "Custody Devices") as maker, \
            CertificateAuthority.generate("site", "Custody Ward") as site:  # fmt: skip
        sensor_cert = maker.issue_sensor(sensor.s_pub, model_id=V2_MODEL, serial="SN-7", not_before=now - 60,
                                         not_after=now + 3600)  # fmt: skip
        gateway_cert = site.issue_gateway(gateway_public, gateway_name="gw", serial="GW-1", not_before=now - 60,
                                          not_after=now + 3600)  # fmt: skip
        trust = TrustStore([maker.root, site.root])
    static = X25519PrivateKey(SecureKeyBuffer(gateway_static))
    gateway = GatewayV2(static, gateway_cert, trust, ephemeral=X25519PrivateKey(SecureKeyBuffer(gateway_ephemeral)))
    assert sensor.read_2(gateway.receive_sensor_hello(sensor.write_1())) == gateway_cert
    gateway.receive_sensor_finish(sensor.write_3(sensor_cert))
    secrets.update(gateway_static_private=gateway_static, gateway_ephemeral_private=gateway_ephemeral)
    secrets.update({f"sensor_{k}" if k.endswith("_private") else k: v for k, v in sensor.secrets().items()})
    return sensor, gateway, static


def test_a_shield_session_on_the_store_leaves_no_secret_in_its_database(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir(mode=0o700)
    seed = os.urandom(32)
    _write_key_file(directory, seed)  # the gateway's receipt key, written before the store exists
    secrets: dict[str, bytes] = {"receipt_seed": seed, **_ed25519_expansion(seed)}

    clock = ManualClock()
    store = SqliteStore(directory, exclusive=True, controller="custody-gateway", jurisdiction="DE", clock=clock)
    store.set_retention("biometric", 30)
    subject = subject_of(SENSOR_ID)
    grant = durable_ledger(store, DEFAULT_THRESHOLDS, clock).grant(
        subject, ("biometric",), 3600, app=APP, purpose="focus feedback"
    )  # as `cortex-sal consent grant` does, before the gateway starts

    sensor, gateway, static = _v2_session(secrets)
    shield = open_shield(store, clock=clock)
    attached = shield.attach_sensor(gateway.transport(), gateway.peer)
    assert isinstance(attached, Registered) and attached.sensor_id == SENSOR_ID
    *frames, after_revocation = (
        np.asarray(x, "<f4").tobytes() for x in synthetic_eeg(V2_FRAMES + 1, seed=SHIELD_V2_SEED).frames
    )
    secrets.update(samples_after_revocation=after_revocation)
    secrets.update({f"samples_{i}": frame for i, frame in enumerate(frames)})
    for i, payload in enumerate(frames):
        result = shield.ingest_frame(SENSOR_ID, sensor.encrypt(payload))
        assert isinstance(result, Released), (i, result)
        values = {"coherency": result.coherency_index, "state": result.state_label, "tensor": result.tensor.tolist()}
        assert store.record_release(subject, "biometric", i + 1, values)
        clock.advance(2.0)
    with shield._salt._view() as salt, shield._liveness._master._view() as master:
        secrets.update(shield_salt=bytes(salt), limes_master=bytes(master))  # the oracle may hold bytes
    shield._consent.revoke(subject, "withdrawn by the wearer", app=APP)  # a withdrawal signed in session
    refused = shield.ingest_frame(SENSOR_ID, sensor.encrypt(after_revocation))
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.CONSENT_INACTIVE

    # during the session: the WAL holds every write since the store opened
    assert len(store.releases(subject)) == V2_FRAMES
    assert [r.kind for r in store.receipts(subject)] == ["grant", "withdrawal"]
    live_files = _database_files(directory)
    wal = directory / f"{DATABASE_FILE}-wal"
    assert wal in live_files and wal.stat().st_size > 0
    live_bytes = b"".join(p.read_bytes() for p in live_files)
    assert grant.receipt_id.encode() in live_bytes  # the scan reads what the store wrote
    assert scan_files(live_files, secrets) == []
    assert SENSOR_ID.encode() not in live_bytes  # nor a raw sensor identifier

    shield.close()
    static.purge()
    store.close()

    # after the session: SQLite checkpointed the WAL into the database
    closed_files = _database_files(directory)
    closed_bytes = b"".join(p.read_bytes() for p in closed_files)
    assert grant.receipt_id.encode() in closed_bytes
    assert scan_files(closed_files, secrets) == []
    assert SENSOR_ID.encode() not in closed_bytes

    # the control: a secret written into the database by hand is found by the same scan
    conn = sqlite3.connect(str(directory / DATABASE_FILE))
    with conn:
        conn.execute("CREATE TABLE scratch (key BLOB, note TEXT)")
        conn.execute(
            "INSERT INTO scratch VALUES (?, ?)",
            (secrets["transport_i2r"], base64.b64encode(secrets["samples_7"]).decode()),
        )
    conn.close()
    found = scan_files(_database_files(directory), secrets)
    assert any("transport_i2r/exact=" in hit for hit in found), found
    assert any("transport_i2r/frag8=" in hit for hit in found), found
    assert any("samples_7/b64=" in hit for hit in found), found
    assert {hit.split(": ")[1].split("/")[0] for hit in found} == {"transport_i2r", "samples_7"}, found
