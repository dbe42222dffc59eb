"""Targets of the crypto layer (``cortex_sal.crypto``): X25519 with an outside public key,
Ed25519 verification, AEAD decryption, HMAC verification. Oracles: ``cryptography`` and the
standard library, independent of libsodium.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as COracleEd25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as COracleX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as COraclePublic
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from fuzzlib.oracle import (
    LOW_ORDER_POINTS,
    Target,
    as_bytes,
    c_public,
    is_bytes_like,
    live_slots,
    low_order,
    refusal,
    require,
)
from fuzzlib.plan import Mutation, Plan, Spec, message, mutate


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
