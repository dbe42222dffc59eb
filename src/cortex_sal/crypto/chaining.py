"""Noise's chaining key ``ck`` and its ``HKDF`` (spec revision 34, sections 4.3 and 5.2), in locked memory.

:class:`ChainingKey` holds ``ck`` and the scratch areas of the SymmetricState's key schedule in
one locked workspace (one arena slot instead of four)::

    ck (32) | HKDF temp key (32) | temp_h (32) | DH output (32)

``HKDF(chaining_key, input_key_material, num_outputs)`` with HMAC-SHA256 (``HASHLEN`` 32)::

    temp_key = HMAC(chaining_key, input_key_material)
    output1  = HMAC(temp_key, 0x01)
    output2  = HMAC(temp_key, output1 || 0x02)
    output3  = HMAC(temp_key, output2 || 0x03)

Every HMAC reads and writes locked memory in place (:func:`cortex_sal.crypto.hmac.hmac_raw`,
state in the arena). Each scratch area is zeroed the line after its last use: the temp key at
the end of every HKDF, the DH output after its MixKey, ``temp_h`` after its MixHash. The new
cipher key ``k`` is written straight into the :class:`~cortex_sal.crypto.cipher.CipherKey`
that will use it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..checks import public_bytes
from ..errors import HandshakeError, LowOrderPointError, NotCopyableError, WrongTypeError
from ..securemem import SecureBuffer, SecureKeyBuffer
from . import _backend
from ._backend import PTR, to_cdata
from ._buffers import address, secret, view
from .aead import SCRUB
from .cipher import CipherKey
from .hmac import NOISE_HKDF_CDATA, hmac_raw, noise_hkdf_cdata

HASHLEN = 32
DHLEN = 32
_CK, _TEMP_KEY, _TEMP_H, _DH = 0, 32, 64, 96
_WS_SIZE = 128
_zero = _backend.function("memzero")  # (address, length): the scratch areas, in place
_X25519 = _backend.function("x25519")
# the compiled cffi functions, when _backend chose them: the key schedule then runs on cdata
# pointers (no per-argument conversion); None when ctypes was chosen
_X25519_RAW = _backend.raw("x25519")
_ZERO_RAW = _backend.raw("memzero")
_CDATA = NOISE_HKDF_CDATA and _X25519_RAW is not None and _ZERO_RAW is not None


class ChainingKey:
    """``ck`` of a Noise SymmetricState, with the MixKey family of key operations on it.

    ``ChainingKey(h)`` starts from the initial handshake hash (``ck = h``, public until the
    first MixKey). :meth:`split` ends it: both transport keys are derived and the workspace is
    purged. :meth:`purge` ends it without deriving anything. Every operation on a purged chaining
    key raises :class:`~cortex_sal.errors.HandshakeError`.
    """

    __slots__ = ("_ws",)

    def __init__(self, initial: bytes) -> None:
        ck = public_bytes(initial, "initial chaining key", HASHLEN)
        self._ws: SecureBuffer | None = SecureBuffer(_WS_SIZE)
        self._ws.write(ck, _CK)

    def _workspace(self) -> SecureBuffer:
        ws = self._ws
        if ws is None:
            raise HandshakeError("the chaining key is gone (split or purged)")
        return ws

    def _hkdf(self, ws: int, ikm: object, ikm_len: int, out1: int, out2: int, out3: int | None = None) -> None:
        """HKDF(ck, ikm, 2 or 3) on addresses: ``ws`` is the workspace's, ``ikm`` an address or bytes."""
        if _CDATA:
            wsp = PTR[ws]
            noise_hkdf_cdata(
                wsp, to_cdata(ikm), ikm_len, wsp + _TEMP_KEY, to_cdata(out1), to_cdata(out2),
                None if out3 is None else to_cdata(out3),
            )  # fmt: skip
            return
        temp_key = ws + _TEMP_KEY
        try:
            hmac_raw(ws + _CK, HASHLEN, [(ikm, ikm_len)], temp_key)  # temp_key = HMAC(ck, ikm)
            hmac_raw(temp_key, HASHLEN, [(b"\x01", 1)], out1)  # output1 = HMAC(temp_key, 0x01)
            hmac_raw(temp_key, HASHLEN, [(out1, HASHLEN), (b"\x02", 1)], out2)  # output2
            if out3 is not None:
                hmac_raw(temp_key, HASHLEN, [(out2, HASHLEN), (b"\x03", 1)], out3)  # output3
        finally:
            _zero(temp_key, HASHLEN)  # the temp key, the line after its last use

    @staticmethod
    def _target(key: CipherKey) -> int:
        if type(key) is not CipherKey:
            raise WrongTypeError(f"the new key goes into a CipherKey, got {type(key).__name__}")
        return address(key._key)

    def mix_key(self, input_key_material: SecureBuffer | bytes, key: CipherKey) -> None:
        """``ck, temp_k = HKDF(ck, ikm, 2)``, ``temp_k`` written into ``key``. ``ikm``: a secure
        buffer (read in place) or public bytes (a Noise ``e`` token in a psk pattern)."""
        ws = address(self._workspace())
        target = address(key._key) if type(key) is CipherKey else self._target(key)
        if isinstance(input_key_material, SecureBuffer):
            self._hkdf(ws, address(input_key_material), len(input_key_material), ws + _CK, target)
        else:
            ikm = public_bytes(input_key_material, "input key material")
            self._hkdf(ws, ikm, len(ikm), ws + _CK, target)

    def mix_key_dh(self, private_key: SecureKeyBuffer, public_key: bytes, key: CipherKey) -> None:
        """``MixKey(DH(private_key, public_key))``: the X25519 output is written into the workspace
        and zeroed right after the MixKey. A low-order public key raises ``LowOrderPointError``
        (the same libsodium call and refusal as :func:`~cortex_sal.crypto.x25519_shared_secret_into`)."""
        if type(private_key) is not SecureKeyBuffer:  # a SecureKeyBuffer is 32 bytes by construction
            secret(private_key, "X25519 private key", DHLEN)
        public = public_bytes(public_key, "X25519 public key", DHLEN)
        ws = address(self._workspace())
        target = address(key._key) if type(key) is CipherKey else self._target(key)
        if _CDATA:  # the same steps on cdata pointers: one conversion each
            wsp = PTR[ws]
            dh = wsp + _DH
            try:
                if _X25519_RAW(dh, PTR[address(private_key)], public) != 0:  # as scalarmult_into
                    raise LowOrderPointError(
                        "X25519 peer public key is a low-order point (the shared secret is all zeros)"
                    )
                noise_hkdf_cdata(wsp, dh, DHLEN, wsp + _TEMP_KEY, wsp, PTR[target])
            finally:
                _ZERO_RAW(dh, DHLEN)  # the shared secret, the line after its last use
                SCRUB()  # also when X25519 refused the key: its registers
            return
        try:
            if _X25519(ws + _DH, address(private_key), public) != 0:  # as scalarmult_into
                raise LowOrderPointError("X25519 peer public key is a low-order point (the shared secret is all zeros)")
            self._hkdf(ws, ws + _DH, DHLEN, ws + _CK, target)
        finally:
            _zero(ws + _DH, DHLEN)  # the shared secret, the line after its last use
            SCRUB()

    def mix_key_and_hash(self, input_key_material: SecureBuffer, h: bytes, key: CipherKey) -> bytes:
        """``ck, temp_h, temp_k = HKDF(ck, ikm, 3)``; returns ``HASH(h || temp_h)`` (MixHash) and
        writes ``temp_k`` into ``key``. ``temp_h`` is hashed in place and zeroed right after."""
        ikm = secret(input_key_material, "a psk")
        workspace = self._workspace()
        target = self._target(key)
        ws = address(workspace)
        try:
            self._hkdf(ws, address(ikm), len(ikm), ws + _CK, ws + _TEMP_H, target)
            hasher = hashlib.sha256(h)
            with view(workspace) as locked:
                hasher.update(locked[_TEMP_H : _TEMP_H + HASHLEN])  # read in place: no bytes copy
            return hasher.digest()
        finally:
            _zero(ws + _TEMP_H, HASHLEN)

    def split(self, key1: CipherKey, key2: CipherKey) -> None:
        """``temp_k1, temp_k2 = HKDF(ck, empty, 2)`` into ``key1`` and ``key2``; then ``ck`` and the
        workspace are purged (also when the derivation fails)."""
        try:
            ws = address(self._workspace())
            self._hkdf(ws, None, 0, self._target(key1), self._target(key2))
        finally:
            self.purge()

    def purge(self) -> None:
        """Purge ``ck`` and the workspace. Idempotent."""
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.secure_purge()

    @property
    def is_purged(self) -> bool:
        return self._ws is None

    @property
    def workspace_buffer(self) -> SecureBuffer | None:
        """The locked workspace (custody checks: it must end purged); None once purged."""
        return self._ws

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a ChainingKey holds ck: it cannot be pickled or copied")

    def __repr__(self) -> str:
        return f"<ChainingKey {'purged' if self._ws is None else 'live'}>"


__all__ = ["DHLEN", "HASHLEN", "ChainingKey"]
