"""An independent Noise_XX_25519_ChaChaPoly_SHA256 peer for the residue harness's parent.

Written from the spec (revision 34, sections 4-5 and 7) with ``cryptography``, ``hmac`` and
``hashlib`` only - nothing from ``cortex_sal`` - and keeping every intermediate secret as
``bytes`` on purpose: the parent must *know* each chaining key, cipher key and DH output
so that it can look for them in the child. Not for production (its keys are plain bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"  # exactly HASHLEN bytes: h = name


def _hkdf(ck: bytes, ikm: bytes, outputs: int) -> list[bytes]:
    temp = hmac.digest(ck, ikm, "sha256")
    out1 = hmac.digest(temp, b"\x01", "sha256")
    out2 = hmac.digest(temp, out1 + b"\x02", "sha256")
    return [temp, out1, out2][: outputs + 1]


def _nonce(n: int) -> bytes:
    return bytes(4) + struct.pack("<Q", n)


class IndependentNoiseXX:
    """One side of an XX handshake (initiator or responder), then transport.

    ``secrets()`` lists every secret this side saw: static and ephemeral private keys,
    each DH output, each HKDF temp key, every ``ck`` and ``k`` and the two transport keys.
    """

    def __init__(self, initiator: bool, static_private: bytes, ephemeral_private: bytes, prologue: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self.initiator = initiator
        self.s = X25519PrivateKey.from_private_bytes(static_private)
        self.e = X25519PrivateKey.from_private_bytes(ephemeral_private)
        self.s_pub = self.s.public_key().public_bytes_raw()
        self.e_pub = self.e.public_key().public_bytes_raw()
        self.h = PROTOCOL_NAME
        self.ck = PROTOCOL_NAME
        self.k: bytes | None = None
        self.n = 0
        self.rs: bytes | None = None
        self.re: bytes | None = None
        self.known: dict[str, bytes] = {"static_private": static_private, "ephemeral_private": ephemeral_private}
        self._step = 0
        self.send_key = self.recv_key = b""
        self.send_n = self.recv_n = 0
        self._mix_hash(prologue)

    # -- SymmetricState -------------------------------------------------------------------

    def _mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def _mix_key(self, name: str, ikm: bytes) -> None:
        temp, self.ck, self.k = _hkdf(self.ck, ikm, 2)
        self.n = 0
        self._step += 1
        self.known.update({f"dh_{name}": ikm, f"temp_{self._step}": temp, f"ck_{self._step}": self.ck,
                           f"k_{self._step}": self.k})  # fmt: skip

    def _encrypt_and_hash(self, plaintext: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        out = plaintext if self.k is None else ChaCha20Poly1305(self.k).encrypt(_nonce(self.n), plaintext, self.h)
        if self.k is not None:
            self.n += 1
        self._mix_hash(out)
        return out

    def _decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        out = ciphertext if self.k is None else ChaCha20Poly1305(self.k).decrypt(_nonce(self.n), ciphertext, self.h)
        if self.k is not None:
            self.n += 1
        self._mix_hash(ciphertext)
        return out

    def _dh(self, private: object, public: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        return private.exchange(X25519PublicKey.from_public_bytes(public))  # type: ignore[attr-defined]  # private: a bytes-like private key

    # -- the three XX messages ------------------------------------------------------------

    def write_1(self, payload: bytes = b"") -> bytes:  # -> e
        assert self.initiator
        self._mix_hash(self.e_pub)
        return self.e_pub + self._encrypt_and_hash(payload)

    def read_1(self, message: bytes) -> bytes:
        message = bytes(message)  # public; other peers hand out bytearrays
        assert not self.initiator
        self.re = message[:32]
        self._mix_hash(self.re)
        return self._decrypt_and_hash(message[32:])

    def write_2(self, payload: bytes) -> bytes:  # <- e, ee, s, es
        assert not self.initiator and self.re is not None
        self._mix_hash(self.e_pub)
        self._mix_key("ee", self._dh(self.e, self.re))
        enc_s = self._encrypt_and_hash(self.s_pub)
        self._mix_key("es", self._dh(self.s, self.re))
        return self.e_pub + enc_s + self._encrypt_and_hash(payload)

    def read_2(self, message: bytes) -> bytes:
        message = bytes(message)  # public; other peers hand out bytearrays
        assert self.initiator
        self.re = message[:32]
        self._mix_hash(self.re)
        self._mix_key("ee", self._dh(self.e, self.re))
        self.rs = self._decrypt_and_hash(message[32:80])
        self._mix_key("es", self._dh(self.e, self.rs))
        return self._decrypt_and_hash(message[80:])

    def write_3(self, payload: bytes) -> bytes:  # -> s, se
        assert self.initiator and self.re is not None
        enc_s = self._encrypt_and_hash(self.s_pub)
        self._mix_key("se", self._dh(self.s, self.re))
        out = enc_s + self._encrypt_and_hash(payload)
        self._split()
        return out

    def read_3(self, message: bytes) -> bytes:
        message = bytes(message)  # public; other peers hand out bytearrays
        assert not self.initiator and self.re is not None
        self.rs = self._decrypt_and_hash(message[:48])
        self._mix_key("se", self._dh(self.e, self.rs))
        payload = self._decrypt_and_hash(message[48:])
        self._split()
        return payload

    def _split(self) -> None:
        temp, k1, k2 = _hkdf(self.ck, b"", 2)
        self.known.update(split_temp=temp, transport_i2r=k1, transport_r2i=k2)
        self.send_key, self.recv_key = (k1, k2) if self.initiator else (k2, k1)

    # -- transport (ordered) ----------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        out = ChaCha20Poly1305(self.send_key).encrypt(_nonce(self.send_n), plaintext, b"")
        self.send_n += 1
        return out

    def decrypt(self, message: bytes) -> bytes:
        message = bytes(message)  # public; other peers hand out bytearrays
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        out = ChaCha20Poly1305(self.recv_key).decrypt(_nonce(self.recv_n), message, b"")
        self.recv_n += 1
        return out

    def secrets(self) -> dict[str, bytes]:
        return dict(self.known)
