"""Residue scenarios: each runs a real code path in the child and knows, on the parent
side, how to compute every secret that path must not leave behind (with ``cryptography``
as the independent oracle, never with the code under test).

A scenario declares its inputs (secret or public), the code it runs in the child, and
the secrets the parent derives from the inputs. Add a scenario here for every code path
that touches a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

HANDSHAKE_INFO = b"cortex-sensor-ecdh-handshake-v1"


class ChildContext(Protocol):
    def read_key(self) -> Any: ...
    def read_secret(self, size: int) -> Any: ...
    def read_public(self, size: int) -> bytes: ...
    def checkpoint(self, name: str, *, collect: bool = True) -> None: ...


@dataclass(frozen=True)
class Scenario:
    name: str
    # parent side: make the inputs (list of (kind, bytes), kind "secret" or "public"),
    # and derive the named secrets the child will hold from those inputs
    make_inputs: Callable[[], list[tuple[str, bytes]]]
    expected_secrets: Callable[[list[bytes]], dict[str, bytes]]
    run: Callable[[ChildContext], None]
    checkpoints_during: tuple[str, ...]
    checkpoints_after: tuple[str, ...]


# -- X25519 + HKDF (+ the HMAC ACK over the derived key) --------------------------------


def _x25519_hkdf_inputs() -> list[tuple[str, bytes]]:
    return [("secret", os.urandom(32)), ("secret", os.urandom(32)), ("public", os.urandom(32))]


def _x25519_hkdf_expected(inputs: list[bytes]) -> dict[str, bytes]:
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    sensor_priv, gateway_priv, challenge = inputs
    sensor = X25519PrivateKey.from_private_bytes(sensor_priv)
    gateway = X25519PrivateKey.from_private_bytes(gateway_priv)
    shared = sensor.exchange(gateway.public_key())
    prk = hmac.new(challenge, shared, hashlib.sha256).digest()
    session = HKDF(hashes.SHA256(), 32, challenge, HANDSHAKE_INFO).derive(shared)
    return {
        "sensor_private": sensor_priv,
        "gateway_private": gateway_priv,
        "shared_secret": shared,
        "hkdf_prk": prk,
        "session_key": session,
    }


def _x25519_hkdf_run(ctx: ChildContext) -> None:
    from ..crypto import hkdf_sha256, hmac_sha256, x25519_public_key, x25519_shared_secret

    sensor = ctx.read_key()
    gateway = ctx.read_key()
    challenge = ctx.read_public(32)
    sensor_pub = x25519_public_key(sensor)
    gateway_pub = x25519_public_key(gateway)
    shared = x25519_shared_secret(sensor, gateway_pub)
    shared_other_side = x25519_shared_secret(gateway, sensor_pub)
    session = hkdf_sha256(shared, salt=challenge, info=HANDSHAKE_INFO)
    ack = hmac_sha256(session, challenge)  # public tag: the one-shot HMAC path
    if len(ack) != 32 or not shared.constant_time_compare(shared_other_side):
        raise RuntimeError("the two sides disagree")
    ctx.checkpoint("session")
    for buf in (sensor, gateway, shared, shared_other_side, session):
        buf.secure_purge()
    ctx.checkpoint("after_purge")


# -- the control: a path that leaks on purpose, so the harness is seen to find leaks ------


def _leak_control_inputs() -> list[tuple[str, bytes]]:
    return [("secret", os.urandom(32))]


def _leak_control_expected(inputs: list[bytes]) -> dict[str, bytes]:
    return {"leaked_key": inputs[0]}


_kept: list[object] = []


def _leak_control_run(ctx: ChildContext) -> None:
    key = ctx.read_key()
    with key.export_bytearray() as lent:
        _kept.append(bytes(lent))  # the mistake the custody rules forbid
        _kept.append(lent.hex())
    ctx.checkpoint("session")
    key.secure_purge()
    ctx.checkpoint("after_purge")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="x25519_hkdf",
            make_inputs=_x25519_hkdf_inputs,
            expected_secrets=_x25519_hkdf_expected,
            run=_x25519_hkdf_run,
            checkpoints_during=("session",),
            checkpoints_after=("after_purge", "end"),
        ),
        Scenario(
            name="leak_control",
            make_inputs=_leak_control_inputs,
            expected_secrets=_leak_control_expected,
            run=_leak_control_run,
            checkpoints_during=("session",),
            checkpoints_after=("after_purge", "end"),
        ),
    ]
}
