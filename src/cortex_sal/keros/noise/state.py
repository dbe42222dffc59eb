"""The Noise state machines of spec revision 34, sections 5.1-5.3, on locked memory.

Named and behaving as the spec names them: :class:`CipherState` (k, n), :class:`SymmetricState`
(ck, h and a CipherState) and :class:`HandshakeState` (s, e, rs, re and the message patterns).
Suite: ``25519_ChaChaPoly_SHA256`` only.

Custody, the reason this is not a thin wrapper over ``noiseprotocol``:

* ``ck``, every cipher key ``k``, the HKDF temp key, ``temp_h``, the psks, the DH outputs and the
  e/s private keys live in :class:`~cortex_sal.securemem.SecureBuffer` slots and never become
  ``bytes``. The primitives come from :mod:`cortex_sal.crypto`, which reads and writes them in
  place: ``k`` is a :class:`~cortex_sal.crypto.CipherKey` (ChaCha20-Poly1305 IETF with Noise's
  nonce ``0x00000000 || n as u64 little-endian``, REKEY, the stack scrub after a decrypt into
  locked memory), ``ck`` a :class:`~cortex_sal.crypto.ChainingKey` (HKDF on HMAC-SHA256 whose
  state lives in the arena; X25519 written into its locked workspace, with the same low-order
  refusal as :func:`~cortex_sal.crypto.x25519_shared_secret`). ``ck`` and the scratch areas
  (temp key, ``temp_h``, DH output) share one arena slot, the workspace.
* each is wiped the line after its last use: the DH output after its ``MixKey``, the temp key
  at the end of each HKDF, ``temp_h`` after its ``MixHash``, a psk after its ``MixKeyAndHash``,
  the ephemeral private key after the last DH token that needs it, ``ck`` and the handshake
  ``k`` in :meth:`SymmetricState.split`. A ``MixKey`` writes the new ``k`` over the old one.
* the transcript hash ``h`` is public (it is the handshake hash, a channel binding value) and
  uses ``hashlib``. ``temp_h`` (from ``MixKeyAndHash``, psk patterns only) is hashed into ``h``
  in place on its locked slot: no ``bytes`` copy is made, OpenSSL's SHA-256 context holds the
  block for the call and zeroes its block buffer after compressing it.

A static key passed as ``s`` belongs to the caller: the handshake reads it in place and never
purges it. An injected ephemeral (``e``, for known-answer tests) belongs to the handshake
once the constructor returns. psks are copied into the handshake's own locked buffers, which it
wipes after use; the caller's psk buffers are left alone.

Failures are terminal: any error while writing or reading a message (bad tag, wrong length,
low-order public key, wrong turn, a message over 65535 bytes) purges every secret the
handshake holds, moves it to FAILED and re-raises (``keros.states.FailurePolicy``); every later
call raises :class:`~cortex_sal.errors.HandshakeStateError`. A call refused for its argument's
*type* changes nothing.

Not thread-safe: one object is used by one thread at a time (like every sans-IO machine here).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from ...checks import int_in_range, public_bytes
from ...crypto import ChainingKey, CipherKey, X25519PrivateKey, x25519_public_key
from ...crypto import rekey as rekey_key
from ...crypto.cipher import MAX_MESSAGE, MAX_NONCE, MAX_PLAINTEXT, TAG_SIZE
from ...errors import (
    CryptoError,
    DecryptionError,
    HandshakeError,
    HandshakeStateError,
    InvalidArgumentError,
    NotCopyableError,
    SessionExpiredError,
    WrongLengthError,
    WrongTypeError,
)
from ...securemem import SecureBuffer, SecureKeyBuffer
from ..states import FailurePolicy, State
from .patterns import HandshakePattern, parse_pattern

log = logging.getLogger("cortex_sal.keros.noise")

HASHLEN = 32
DHLEN = 32
KEY_SIZE = 32
# MAX_MESSAGE = 65535: a Noise message, tag included (spec section 3); MAX_PLAINTEXT = 65519;
# MAX_NONCE = 2^64-1: reserved, EncryptWithAd/DecryptWithAd refuse it, REKEY uses it

_public = public_bytes  # the HandshakeState's name for the check of its public arguments


def _live_key(key: object, what: str) -> SecureKeyBuffer:
    if not isinstance(key, SecureKeyBuffer):
        raise WrongTypeError(f"{what} must be a SecureKeyBuffer, got {type(key).__name__}")
    key.ensure_live()  # raises PurgedBufferError / ForkedBufferError for a dead buffer
    return key


_AUTH_FAILED = "Noise message failed authentication (wrong key, nonce or ad, or tampered)"


class CipherState:
    """``k`` and ``n`` of spec section 5.1. ``k`` is a :class:`~cortex_sal.crypto.CipherKey` this object owns.

    Without a key (during a handshake, before the first ``MixKey``) ``EncryptWithAd`` and
    ``DecryptWithAd`` return their input, as the spec says. Nonce ``2^64-1`` is reserved:
    when ``n`` reaches it every further call raises :class:`SessionExpiredError`.
    ``close()`` purges the key; every later call raises :class:`SessionExpiredError`.
    """

    __slots__ = ("__weakref__", "_cipher", "_closed", "_n")

    def __init__(self, key: SecureKeyBuffer | None = None) -> None:
        """``key`` (optional) is taken over: this object purges it when rekeyed or closed."""
        self._cipher: CipherKey | None = None if key is None else CipherKey(_live_key(key, "CipherState key"))
        self._n = 0
        self._closed = False

    @classmethod
    def _keyed(cls, cipher: CipherKey) -> CipherState:
        cs = cls()
        cs._cipher = cipher
        return cs

    # -- spec functions -----------------------------------------------------------------

    def initialize_key(self, key: SecureKeyBuffer | None) -> None:
        """InitializeKey(key): take ``key`` over (purging the previous one) and set ``n = 0``."""
        self._check_open()
        cipher = None if key is None else CipherKey(_live_key(key, "CipherState key"))
        old, self._cipher, self._n = self._cipher, cipher, 0
        if old is not None and old.key_buffer is not key:
            old.purge()

    def has_key(self) -> bool:
        self._check_open()
        return self._cipher is not None

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(nonce)."""
        self._check_open()
        self._n = int_in_range(nonce, "nonce", 0, MAX_NONCE)

    @property
    def n(self) -> int:
        """The next nonce."""
        return self._n

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes | SecureBuffer) -> bytes:
        """EncryptWithAd(ad, plaintext): ``ciphertext || tag`` under nonce ``n``, then ``n += 1``.

        ``plaintext`` may be a :class:`SecureBuffer`, read in place (a secret sensor sample).
        At most 65519 bytes, so that the Noise message (tag included) fits 65535.
        """
        cipher = self._cipher
        if cipher is not None:
            n = self._n
            ciphertext = cipher.encrypt_fast(n, ad, plaintext)  # type: ignore[arg-type]  # None unless bytes
            if ciphertext is not None:  # ENCRYPT(k, n++, ad, plaintext)
                self._n = n + 1
                return ciphertext
        return self._encrypt_checked(ad, plaintext)

    def _encrypt_checked(self, ad: object, plaintext: object) -> bytes:
        self._check_open()
        ad_b = public_bytes(ad, "associated data")
        if isinstance(plaintext, SecureBuffer):
            size = len(plaintext)
        elif isinstance(plaintext, bytes | bytearray | memoryview):
            plaintext = bytes(plaintext)
            size = len(plaintext)
        else:
            raise WrongTypeError(f"plaintext must be bytes or a SecureBuffer, got {type(plaintext).__name__}")
        if size > MAX_PLAINTEXT:
            raise WrongLengthError(
                f"a {size}-byte plaintext does not fit a Noise message: at most {MAX_PLAINTEXT} bytes "
                f"(65535 including the {TAG_SIZE}-byte tag)"
            )
        if self._cipher is None:
            if isinstance(plaintext, SecureBuffer):
                raise WrongTypeError("a SecureBuffer plaintext cannot be sent in clear (this CipherState has no key)")
            return plaintext  # the spec: no key, ciphertext = plaintext
        if self._n >= MAX_NONCE:
            raise SessionExpiredError("CipherState nonces are exhausted (n reached 2^64-1): rekeying cannot help")
        ciphertext = self._cipher.encrypt(self._n, ad_b, plaintext)
        self._n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd(ad, ciphertext) for public payloads; ``n += 1`` only if the tag verified.

        A bad tag raises :class:`DecryptionError` and leaves ``n`` unchanged.
        """
        cipher = self._cipher
        if cipher is not None:
            n = self._n
            plaintext = cipher.decrypt_fast(n, ad, ciphertext)  # DECRYPT(k, n, ad, ciphertext)
            if plaintext is not None:
                self._n = n + 1
                return plaintext
        # a bad tag, or not the simple case: the checked path tells which
        result = self._decrypt_checked(ad, ciphertext, None, 0)
        assert isinstance(result, bytes)
        return result

    def decrypt_into(self, ad: bytes, ciphertext: bytes, out: SecureBuffer, offset: int = 0) -> int:
        """DecryptWithAd for a secret payload: the plaintext goes straight into ``out`` at ``offset``.

        Returns the plaintext length. On a bad tag libsodium zeroes the target region and
        :class:`DecryptionError` is raised; ``n`` is unchanged.
        """
        if not isinstance(out, SecureBuffer):
            raise WrongTypeError(f"out must be a SecureBuffer, got {type(out).__name__}")
        result = self._decrypt_checked(ad, ciphertext, out, offset)
        assert isinstance(result, int)
        return result

    def _decrypt_checked(self, ad: object, ciphertext: object, out: SecureBuffer | None, offset: int) -> bytes | int:
        self._check_open()
        ad_b = public_bytes(ad, "associated data")
        ct = public_bytes(ciphertext, "ciphertext")
        size = len(ct)
        if size > MAX_MESSAGE:
            raise WrongLengthError(f"a {size}-byte Noise message exceeds the 65535-byte maximum")
        if out is not None:
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise InvalidArgumentError(f"offset must be a non-negative int, got {offset!r}")
            plain_len = size - (TAG_SIZE if self._cipher is not None else 0)
            if offset + plain_len > len(out):
                raise WrongLengthError(
                    f"a {plain_len}-byte plaintext at offset {offset} does not fit a {len(out)}-byte buffer"
                )
        cipher = self._cipher
        if cipher is None:  # the spec: no key, plaintext = ciphertext (public handshake data)
            if out is None:
                return ct
            if size:
                out.write(ct, offset)
            return size
        if size < TAG_SIZE:
            raise WrongLengthError(f"a {size}-byte Noise ciphertext cannot hold the {TAG_SIZE}-byte tag")
        if self._n >= MAX_NONCE:
            raise SessionExpiredError("CipherState nonces are exhausted (n reached 2^64-1): rekeying cannot help")
        if out is None:
            plaintext = cipher.decrypt(self._n, ad_b, ct)
            if plaintext is None:
                raise DecryptionError(_AUTH_FAILED)
            self._n += 1
            return plaintext
        written = cipher.decrypt_into(self._n, ad_b, ct, out, offset)  # the stack scrub is built in
        if written < 0:
            raise DecryptionError(_AUTH_FAILED)
        self._n += 1
        return written

    def rekey(self) -> None:
        """Rekey() of spec section 4.2: ``k = REKEY(k)``; ``n`` is unchanged. The old key is purged."""
        self._check_open()
        if self._cipher is None:
            raise CryptoError("Rekey() needs a key: this CipherState has none")
        old, self._cipher = self._cipher, self._cipher.rekeyed()
        old.purge()

    # -- lifecycle ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SessionExpiredError("this CipherState is closed (its key was purged)")

    def ensure_key_live(self) -> None:
        """Raise ``PurgedBufferError`` / ``ForkedBufferError`` if the key cannot be used any more."""
        if self._cipher is not None:
            self._cipher.ensure_live()

    def take_key(self) -> CipherKey:
        """Hand the key over (a transport takes it): returns it and leaves this CipherState closed."""
        self._check_open()
        cipher = self._cipher
        if cipher is None:
            raise CryptoError("this CipherState has no key to hand over")
        self._cipher = None
        self.close()
        return cipher

    def close(self) -> None:
        """Purge the key. Idempotent; every later call raises :class:`SessionExpiredError`."""
        self._closed = True
        cipher, self._cipher = self._cipher, None
        if cipher is not None:
            cipher.purge()

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def _k(self) -> SecureKeyBuffer | None:
        """The locked buffer of ``k`` (None without a key): custody checks and HandshakeState."""
        cipher = self._cipher
        return None if cipher is None else cipher.key_buffer

    def _fresh_key(self) -> CipherKey:
        """For :class:`SymmetricState`: the key the next ``k`` is written into in place
        (allocated on first use); ``n`` restarts at 0, as InitializeKey says."""
        if self._cipher is None:
            self._cipher = CipherKey.allocate()
        self._n = 0
        return self._cipher

    def __enter__(self) -> CipherState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a CipherState holds a key: it cannot be pickled or copied")

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("keyed" if self._cipher is not None else "empty")
        return f"<CipherState {state} n={self._n}>"


class SymmetricState:
    """``ck``, ``h`` and a :class:`CipherState` (spec section 5.2). ``ck`` lives in locked memory.

    ``InitializeSymmetric`` runs in the constructor. :meth:`split` purges ``ck`` and the
    handshake's ``k`` once both transport keys are derived.
    """

    __slots__ = ("_ck", "_h", "cipher_state")

    def __init__(self, protocol_name: bytes) -> None:
        if not isinstance(protocol_name, bytes):
            raise WrongTypeError(f"protocol_name must be bytes, got {type(protocol_name).__name__}")
        if len(protocol_name) <= HASHLEN:
            self._h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self._h = hashlib.sha256(protocol_name).digest()
        self._ck: ChainingKey | None = ChainingKey(self._h)  # ck = h
        self.cipher_state = CipherState()

    def _chaining_key(self) -> ChainingKey:
        if self._ck is None:
            raise HandshakeError("SymmetricState already split: ck is gone")
        return self._ck

    def mix_key(self, input_key_material: SecureBuffer | bytes) -> None:
        """MixKey: ``ck, temp_k = HKDF(ck, ikm, 2)``; ``InitializeKey(temp_k)`` (written in place)."""
        ikm = input_key_material
        if not isinstance(ikm, SecureBuffer):
            ikm = public_bytes(ikm, "input key material")
        ck = self._ck
        if ck is None:
            raise HandshakeError("SymmetricState already split: ck is gone")
        ck.mix_key(ikm, self.cipher_state._fresh_key())

    def mix_key_dh(self, private_key: SecureKeyBuffer, public_key: bytes) -> None:
        """``MixKey(DH(private_key, public_key))``: the DH output goes into locked memory and is
        zeroed right after the MixKey. A low-order public key raises :class:`LowOrderPointError`."""
        ck = self._ck
        if ck is None:
            raise HandshakeError("SymmetricState already split: ck is gone")
        ck.mix_key_dh(private_key, public_key, self.cipher_state._fresh_key())  # checks both keys

    def mix_hash(self, data: bytes) -> None:
        """MixHash: ``h = HASH(h || data)``."""
        self._h = hashlib.sha256(self._h + data).digest()

    def mix_key_and_hash(self, input_key_material: SecureBuffer) -> None:
        """MixKeyAndHash: ``ck, temp_h, temp_k = HKDF(ck, ikm, 3)``; ``MixHash(temp_h)``;
        ``InitializeKey(temp_k)``. ``temp_h`` stays in locked memory and is zeroed right after."""
        if not isinstance(input_key_material, SecureBuffer):
            raise WrongTypeError(f"a psk must be a SecureKeyBuffer, got {type(input_key_material).__name__}")
        ck = self._chaining_key()
        self._h = ck.mix_key_and_hash(input_key_material, self._h, self.cipher_state._fresh_key())

    def get_handshake_hash(self) -> bytes:
        return self._h

    @property
    def h(self) -> bytes:
        return self._h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash: ``ciphertext = EncryptWithAd(h, plaintext)``; ``MixHash(ciphertext)``."""
        ciphertext = self.cipher_state.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash: ``plaintext = DecryptWithAd(h, ciphertext)``; ``MixHash(ciphertext)``."""
        plaintext = self.cipher_state.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split: ``temp_k1, temp_k2 = HKDF(ck, empty, 2)`` into two new CipherStates; then
        ``ck`` and the workspace are purged. ``temp_k1`` is written over the handshake ``k``
        (dead from here on), whose slot the first CipherState takes over."""
        ck = self._chaining_key()
        cs = self.cipher_state
        k1 = cs._cipher or CipherKey.allocate()
        cs._cipher = None
        k2 = CipherKey.allocate()
        try:
            ck.split(k1, k2)
        except BaseException:
            k1.purge()
            k2.purge()
            raise
        finally:
            self.close()
        return CipherState._keyed(k1), CipherState._keyed(k2)

    def close(self) -> None:
        """Purge ``ck`` and the workspace, and the handshake cipher key. Idempotent."""
        ck, self._ck = self._ck, None
        if ck is not None:
            ck.purge()
        self.cipher_state.close()

    def _secret_buffers(self) -> list[SecureBuffer]:
        workspace = self._ck.workspace_buffer if self._ck is not None else None
        return [b for b in (workspace, self.cipher_state._k) if b is not None]

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a SymmetricState holds ck: it cannot be pickled or copied")


# HandshakeState's table, in keros.states' vocabulary: (state, event) -> state. A message that
# is not the last keeps HANDSHAKE; the last moves to ESTABLISHED (Split() ran, the two
# CipherStates wait); split() hands them over (TRANSPORT). Writing or reading out of turn,
# split() before the last message, any call after close: refused by keros.states.FailurePolicy
# (FAILED, every secret purged).
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.HANDSHAKE, "write_message"): State.HANDSHAKE,
    (State.HANDSHAKE, "read_message"): State.HANDSHAKE,
    (State.ESTABLISHED, "split"): State.TRANSPORT,
}


# (token, initiator) -> (local key is e, remote key is re)
_DH_KEYS = {
    ("ee", True): (True, True),
    ("ee", False): (True, True),
    ("es", True): (True, False),
    ("es", False): (False, True),
    ("se", True): (False, True),
    ("se", False): (True, False),
    ("ss", True): (False, False),
    ("ss", False): (False, False),
}


def _private_key(key: object, what: str) -> SecureKeyBuffer | None:
    if key is None:
        return None
    if isinstance(key, X25519PrivateKey):
        key = key.key_buffer
    if not isinstance(key, SecureKeyBuffer):
        raise WrongTypeError(f"{what} must be an X25519PrivateKey or a SecureKeyBuffer, got {type(key).__name__}")
    key.ensure_live()  # a purged key is refused here, before anything is built
    return key


def _public_key(key: object, what: str) -> bytes | None:
    return None if key is None else public_bytes(key, what, DHLEN)


class HandshakeState(FailurePolicy):
    """A Noise handshake for one side (spec section 5.3), as a sans-IO object.

    ``protocol_name``: ``"Noise_XX_25519_ChaChaPoly_SHA256"`` or just the pattern with its
    modifiers (``"XX"``, ``"IKpsk2"``). ``s``: this side's static key (caller-owned, read in
    place, never purged here). ``rs``: the peer's static public key, only for patterns that
    pre-know it (``<- s`` / ``-> s`` pre-messages); a pattern that *transmits* it refuses an ``rs``
    (the received key would silently replace it). ``e``: an injected ephemeral for known-answer
    tests, owned by the handshake from then on. ``psks``: one 32-byte SecureKeyBuffer per
    ``psk`` token, copied. ``re`` exists for completeness: no supported pattern pre-knows ``re``.

    Call :meth:`write_message` / :meth:`read_message` in turn (:attr:`message_index` is the
    step within the handshake); after the last message :attr:`status` is ESTABLISHED and
    :meth:`split` hands over the two transport CipherStates (TRANSPORT). States and failures
    follow ``keros.states`` (see ``TRANSITIONS``).
    """

    _TRANSITIONS = TRANSITIONS

    __slots__ = (
        "_e",
        "_e_pub",
        "_e_uses",
        "_handshake_hash",
        "_index",
        "_initiator",
        "_pattern",
        "_psks",
        "_re",
        "_rs",
        "_s",
        "_s_pub",
        "_s_uses",
        "_split",
        "_sym",
        "protocol_name",
    )

    def __init__(
        self,
        protocol_name: str | bytes,
        initiator: bool,
        prologue: bytes = b"",
        *,
        s: X25519PrivateKey | SecureKeyBuffer | None = None,
        e: X25519PrivateKey | SecureKeyBuffer | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[SecureKeyBuffer] | None = None,
    ) -> None:
        # every check first: a refused construction allocates and takes over nothing
        pattern = parse_pattern(protocol_name)
        if not isinstance(initiator, bool):
            raise WrongTypeError(f"initiator must be a bool, got {type(initiator).__name__}")
        prologue_b = _public(prologue, "prologue")
        s_key = _private_key(s, "s (static private key)")
        e_key = _private_key(e, "e (injected ephemeral private key)")
        rs_b = _public_key(rs, "rs (remote static public key)")
        re_b = _public_key(re, "re (remote ephemeral public key)")
        if psks is None:
            psk_list: list[SecureKeyBuffer] = []
        elif isinstance(psks, SecureBuffer) or not isinstance(psks, list | tuple):
            raise WrongTypeError(f"psks must be a list of SecureKeyBuffer, got {type(psks).__name__}")
        else:
            psk_list = [_live_key(p, "each psk") for p in psks]
        name = pattern.name
        facts = pattern.facts(initiator)
        if facts.static_needed != (s_key is not None):
            need = "needs" if s_key is None else "does not use"
            raise InvalidArgumentError(f"pattern {name} {need} a local static key s for this role")
        if rs_b is not None and not facts.remote_static_premessage:
            why = "transmits it during the handshake" if facts.remote_static_transmitted else "has no rs"
            raise InvalidArgumentError(f"pattern {name} refuses a pre-known rs: it {why}")
        if rs_b is None and facts.remote_static_premessage:
            raise InvalidArgumentError(f"pattern {name} needs the peer's static public key rs for this role")
        if (re_b is not None) != facts.remote_ephemeral_premessage:
            raise InvalidArgumentError(f"pattern {name} has no pre-known remote ephemeral: re must be None")
        if e_key is not None and not facts.sends_e:
            raise InvalidArgumentError(f"pattern {name} generates no ephemeral key for this role: e must be None")
        if len(psk_list) != pattern.psk_count:
            raise InvalidArgumentError(f"pattern {name} needs {pattern.psk_count} psk(s), got {len(psk_list)}")
        if s_key is not None and s_key is e_key:
            raise InvalidArgumentError("s and e must be different keys")

        self._pattern = pattern
        self.protocol_name = pattern.protocol_name()
        self._initiator = initiator
        self._state = State.HANDSHAKE
        self._name = f"Noise {pattern.name} {'initiator' if initiator else 'responder'}"
        self._failure: str | None = None
        self._index = 0
        self._split: tuple[CipherState, CipherState] | None = None
        self._handshake_hash: bytes | None = None
        self._s = s_key
        if isinstance(s, X25519PrivateKey):
            self._s_pub: bytes | None = s.public_bytes()  # computed once per key object
        else:
            self._s_pub = x25519_public_key(s_key) if s_key is not None else None
        self._e = e_key
        self._e_pub: bytes | None = None
        self._rs = rs_b
        self._re = re_b
        self._psks: list[SecureKeyBuffer] = []
        self._sym: SymmetricState | None = None
        # DH tokens that use each local private key: the key is let go after the last one
        self._e_uses = facts.e_uses
        self._s_uses = facts.s_uses
        try:
            for p in psk_list:
                copy = SecureKeyBuffer.allocate()
                self._psks.append(copy)
                copy.write(p)
            sym = self._sym = SymmetricState(self.protocol_name.encode("ascii"))
            sym.mix_hash(prologue_b)
            for token in pattern.initiator_pre:  # the initiator's pre-message keys first
                sym.mix_hash(self._pre_key(token, initiator_side=True))
            for token in pattern.responder_pre:
                sym.mix_hash(self._pre_key(token, initiator_side=False))
        except BaseException:
            self._e = None  # a constructor that raises takes nothing over: e stays the caller's
            self._wipe()
            raise
        if self._s_uses == 0:
            self._s = None  # no DH uses the static private key: its public half is all we need

    def _pre_key(self, token: str, *, initiator_side: bool) -> bytes:
        mine = initiator_side == self._initiator
        if token == "s":
            key = self._s_pub if mine else self._rs
        else:  # "e": no supported pattern has one; kept for the spec's fallback shape
            key = self._ephemeral_public() if mine else self._re
        if key is None:
            raise InvalidArgumentError(f"pre-message token {token} needs a key that was not given")
        return key

    # -- state ------------------------------------------------------------------------------

    @property
    def pattern(self) -> HandshakePattern:
        return self._pattern

    @property
    def initiator(self) -> bool:
        return self._initiator

    @property
    def status(self) -> State:
        """HANDSHAKE, ESTABLISHED (complete, CipherStates not taken), TRANSPORT (taken), CLOSED or FAILED."""
        return self._state

    @property
    def state(self) -> State:
        return self._state

    @property
    def failure(self) -> str | None:
        """Why the handshake failed (no secret in it), or None."""
        return self._failure

    @property
    def is_complete(self) -> bool:
        return self._state in (State.ESTABLISHED, State.TRANSPORT)

    @property
    def message_index(self) -> int:
        """How many handshake messages have been written or read so far."""
        return self._index

    @property
    def is_my_turn(self) -> bool:
        """True if the next call is :meth:`write_message`, False if :meth:`read_message`."""
        if self._state is not State.HANDSHAKE:
            return False
        return self._pattern.messages[self._index].from_initiator == self._initiator

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key: pre-known, or as soon as the message carrying it was read."""
        return self._rs

    @property
    def local_static(self) -> bytes | None:
        """This side's static public key (None if the pattern uses none)."""
        return self._s_pub

    @property
    def remote_ephemeral(self) -> bytes | None:
        return self._re

    @property
    def handshake_hash(self) -> bytes:
        """The final ``h`` (channel binding value), once the handshake is ESTABLISHED."""
        if self._handshake_hash is None:
            raise HandshakeStateError(
                f"the handshake hash exists once the handshake is complete (state {self._state.value})"
            )
        return self._handshake_hash

    def get_handshake_hash(self) -> bytes:
        """GetHandshakeHash(): the current ``h`` (the final one once complete). A query: refused
        (``HandshakeStateError``) after close or failure, changing nothing."""
        if self._handshake_hash is not None:
            return self._handshake_hash
        if self._state is not State.HANDSHAKE:
            raise self._refusal("get_handshake_hash")
        assert self._sym is not None
        return self._sym.get_handshake_hash()

    # -- messages -----------------------------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage(payload): the next handshake message. The payload is public (certificates)."""
        payload_b = _public(payload, "handshake payload")
        self._next("write_message")
        if not self.is_my_turn:
            raise self._refuse(
                f"write_message out of turn (message {self._index + 1} of {self._pattern.name} "
                f"comes from the {'responder' if self._initiator else 'initiator'})"
            )
        try:
            fixed, tag = self._pattern.layouts[self._index]
            if fixed + len(payload_b) + tag > MAX_MESSAGE:
                raise WrongLengthError(
                    f"a {len(payload_b)}-byte payload makes a {fixed + len(payload_b) + tag}-byte handshake message; "
                    f"the maximum is {MAX_MESSAGE} (at most {MAX_MESSAGE - fixed - tag} payload bytes here)"
                )
            sym = self._sym
            assert sym is not None
            parts: list[bytes] = []
            for token in self._pattern.messages[self._index].tokens:
                if token == "e":
                    pub = self._ephemeral_public()
                    parts.append(pub)
                    sym.mix_hash(pub)
                    if self._pattern.is_psk:
                        sym.mix_key(pub)
                    if self._e_uses == 0:
                        self._drop_e()
                elif token == "s":
                    assert self._s_pub is not None
                    parts.append(sym.encrypt_and_hash(self._s_pub))
                elif token == "psk":
                    self._mix_psk(sym)
                else:
                    self._dh(sym, token)
            parts.append(sym.encrypt_and_hash(payload_b))
            message = b"".join(parts)
            self._advance()
        except BaseException as exc:
            self._fail(exc)
            raise
        return message

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage(message): process the peer's handshake message, return its (public) payload."""
        msg = _public(message, "handshake message")
        self._next("read_message")
        if self.is_my_turn:
            raise self._refuse(
                f"read_message out of turn (message {self._index + 1} of {self._pattern.name} "
                f"comes from the {'initiator' if self._initiator else 'responder'}, this side)"
            )
        try:
            if len(msg) > MAX_MESSAGE:
                raise WrongLengthError(f"a {len(msg)}-byte handshake message exceeds the {MAX_MESSAGE}-byte maximum")
            fixed, tag = self._pattern.layouts[self._index]
            if len(msg) < fixed + tag:
                raise WrongLengthError(
                    f"handshake message {self._index + 1} of {self._pattern.name} needs at least {fixed + tag} "
                    f"bytes, got {len(msg)}"
                )
            sym = self._sym
            assert sym is not None
            pos = 0
            for token in self._pattern.messages[self._index].tokens:
                if token == "e":
                    self._re = msg[pos : pos + DHLEN]
                    pos += DHLEN
                    sym.mix_hash(self._re)
                    if self._pattern.is_psk:
                        sym.mix_key(self._re)
                elif token == "s":
                    n = DHLEN + (TAG_SIZE if sym.cipher_state._k is not None else 0)
                    self._rs = sym.decrypt_and_hash(msg[pos : pos + n])
                    pos += n
                elif token == "psk":
                    self._mix_psk(sym)
                else:
                    self._dh(sym, token)
            payload = sym.decrypt_and_hash(msg[pos:])
            self._advance()
        except BaseException as exc:
            self._fail(exc)
            raise
        return payload

    def _ephemeral_public(self) -> bytes:
        if self._e is None:
            self._e = SecureKeyBuffer()  # GENERATE_KEYPAIR: 32 random bytes drawn in locked memory
        if self._e_pub is None:
            self._e_pub = x25519_public_key(self._e)
        return self._e_pub

    def _dh(self, sym: SymmetricState, token: str) -> None:
        """MixKey(DH(...)) for one DH token; the shared secret is purged right after."""
        # ee: DH(e, re); es: DH(e, rs) initiator / DH(s, re) responder;
        # se: DH(s, re) initiator / DH(e, rs) responder; ss: DH(s, rs)
        use_e, use_re = _DH_KEYS[token, self._initiator]
        remote = self._re if use_re else self._rs
        private = self._e if use_e else self._s
        if private is None or remote is None:
            raise HandshakeError(f"token {token}: a key it needs is missing")
        sym.mix_key_dh(private, remote)  # raises LowOrderPointError
        if use_e:
            self._e_uses -= 1
            if self._e_uses == 0:
                self._drop_e()  # the ephemeral, the line after its last DH
        else:
            self._s_uses -= 1
            if self._s_uses == 0:
                self._s = None  # the caller's static key after its last DH: let go, never purged here

    def _mix_psk(self, sym: SymmetricState) -> None:
        if not self._psks:
            raise HandshakeError("psk token without a psk")
        psk = self._psks.pop(0)
        try:
            sym.mix_key_and_hash(psk)
        finally:
            psk.secure_purge()  # our copy, the line after its last use

    def _drop_e(self) -> None:
        e, self._e = self._e, None
        if e is not None:
            e.secure_purge()

    def _advance(self) -> None:
        self._index += 1
        if self._index < len(self._pattern.messages):
            return
        sym = self._sym
        assert sym is not None
        self._handshake_hash = sym.get_handshake_hash()
        self._split = sym.split()  # purges ck and the handshake k
        self._sym = None
        self._drop_e()
        self._s = None
        self._state = State.ESTABLISHED

    def split(self) -> tuple[CipherState, CipherState]:
        """Split()'s two CipherStates ``(c1, c2)``: ``c1`` encrypts initiator -> responder,
        ``c2`` responder -> initiator (one-way patterns use only ``c1``). Handed over once:
        the caller owns and closes them. Before the last message it is a call out of turn
        (FAILED, every secret purged); a second call is refused and changes nothing."""
        if self._state is State.HANDSHAKE:
            raise self._refuse(f"split ({len(self._pattern.messages) - self._index} message(s) remain)")
        if self._state is State.TRANSPORT:
            raise self._refuse("split (the CipherStates were already handed over)")
        target = self._next("split")
        pair, self._split = self._split, None
        assert pair is not None
        self._state = target
        return pair

    # -- failure and lifecycle: keros.states.FailurePolicy (_fail, _refuse) -------------------------

    def _wipe(self) -> None:
        self._drop_e()
        self._s = None
        psks, self._psks = self._psks, []
        for psk in psks:
            psk.secure_purge()
        sym, self._sym = self._sym, None
        if sym is not None:
            sym.close()
        pair, self._split = self._split, None
        if pair is not None:
            for cs in pair:
                cs.close()

    def abort(self, why: str = "aborted by the caller") -> None:
        """Fail the handshake on the caller's grounds (e.g. a certificate in a payload did not
        verify): FAILED with ``why`` as the reason, every secret purged. No-op once complete."""
        if not isinstance(why, str):
            raise WrongTypeError(f"why must be a str, got {type(why).__name__}")
        if self._state is State.HANDSHAKE:
            self._fail(why)
        elif self._state in (State.ESTABLISHED, State.TRANSPORT):
            return
        self._wipe()

    def close(self) -> None:
        """Purge everything this handshake still holds (abort, or drop un-taken CipherStates).

        Terminal (CLOSED) unless the CipherStates were handed over or it failed; a later call
        fails it. A complete handshake's hash stays readable. The caller's static key is not
        touched.
        """
        if self._state in (State.HANDSHAKE, State.ESTABLISHED):
            self._state = State.CLOSED
        self._wipe()

    def __enter__(self) -> HandshakeState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a HandshakeState holds secrets: it cannot be pickled or copied")

    def _secret_buffers(self) -> list[SecureBuffer]:
        """Every locked buffer this handshake currently owns (tests check they end purged)."""
        out: list[SecureBuffer] = [*self._psks]
        if self._e is not None:
            out.append(self._e)
        if self._sym is not None:
            out += self._sym._secret_buffers()
        if self._split is not None:
            out += [cs._k for cs in self._split if cs._k is not None]
        return out

    def __repr__(self) -> str:
        role = "initiator" if self._initiator else "responder"
        return f"<HandshakeState {self._pattern.name} {role} {self._state.value} message={self._index}>"


__all__ = [
    "MAX_MESSAGE",
    "MAX_NONCE",
    "MAX_PLAINTEXT",
    "TAG_SIZE",
    "TRANSITIONS",
    "CipherState",
    "HandshakeState",
    "SymmetricState",
    "rekey_key",
]
