"""Bad input to the crypto layer: each refusal is a specific ``CortexError`` subclass.

Every refusal is checked for its exact class (not merely a base class) and for its
message: messages say what was wrong and never carry the secret (the key's bytes in any
usual spelling, or the plaintext).
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Callable, Iterator

import pytest

from cortex_sal.crypto import (
    Ed25519SigningKey,
    X25519PrivateKey,
    aead_decrypt,
    aead_decrypt_into,
    aead_encrypt,
    ed25519_verify,
    hkdf_expand_into,
    hkdf_extract,
    hkdf_sha256,
    hmac_sha256,
    hmac_sha256_into,
    hmac_sha256_verify,
    x25519_public_key,
    x25519_shared_secret,
)
from cortex_sal.errors import (
    CortexError,
    DecryptionError,
    InvalidArgumentError,
    InvalidSignatureError,
    LowOrderPointError,
    PurgedBufferError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer
from cortex_sal.securemem.arena import arena

# A distinctive key: its bytes must never show up in an error message.
KEY = bytes.fromhex("d1c3a7e95b0f4c2d8e6a1b3f5d7c9e0a2b4d6f8103a5c7e9f1b3d5e7092c4e6a")
PLAINTEXT = b"attack at dawn -- the secret plaintext of the tests"
NONCE = bytes(range(12))
AAD = b"header"


def _forbidden_spellings(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), repr(secret)[2:-1], secret.hex(" "), secret[:8].hex()]


FORBIDDEN = [*_forbidden_spellings(KEY), PLAINTEXT.decode(), PLAINTEXT.hex()]


def check_message(exc: BaseException) -> None:
    text = str(exc) + " " + repr(exc) + " " + " ".join(str(a) for a in exc.args)
    assert text.strip(), "an error must say what was wrong"
    for spelling in FORBIDDEN:
        assert spelling not in text, f"error message carries secret material: {text!r}"


def expect(exc_type: type[CortexError], fn: Callable[[], object]) -> CortexError:
    """Call ``fn``; it must raise exactly ``exc_type`` (not a subclass, not a base class).

    The exception's traceback is dropped before returning: its frames hold the secure
    buffers of the failed call, and a traceback kept alive by a reference cycle would hand
    them to the cyclic garbage collector (the arena finaliser-under-lock hazard).
    """
    try:
        fn()
    except CortexError as caught:
        exc = caught
        where = "".join(traceback.format_exception(caught)) if type(caught) is not exc_type else ""
    else:
        pytest.fail(f"expected {exc_type.__name__}, nothing was raised")
    exc.__traceback__ = None
    assert type(exc) is exc_type, f"expected {exc_type.__name__}, got {type(exc).__name__}: {exc}\n{where}"
    check_message(exc)
    return exc


@pytest.fixture
def key() -> Iterator[SecureKeyBuffer]:
    with SecureKeyBuffer(KEY) as k:
        yield k


@pytest.fixture
def purged_key() -> SecureKeyBuffer:
    k = SecureKeyBuffer(KEY)
    k.secure_purge()
    return k


def _pub() -> bytes:
    with SecureKeyBuffer(bytes(range(32))) as k:
        return x25519_public_key(k)


PEER = _pub()


def _sealed() -> bytes:
    with SecureKeyBuffer(KEY) as k:
        return aead_encrypt(k, NONCE, PLAINTEXT, AAD)


SEALED = _sealed()


def _signed() -> tuple[bytes, bytes]:
    with SecureKeyBuffer(KEY) as s, Ed25519SigningKey(s) as sk:
        return sk.public_key(), sk.sign(PLAINTEXT)


ED_PUB, ED_SIG = _signed()


def sb(data: bytes) -> SecureBuffer:
    return SecureBuffer.from_bytes(data)


# -- wrong types: bytes where a secret is required, and a secret where bytes are required ----

WRONG_TYPE: dict[str, Callable[[SecureKeyBuffer], object]] = {
    # a secret passed as bytes / bytearray / str
    "x25519_public_key(bytes)": lambda k: x25519_public_key(KEY),  # type: ignore[arg-type]
    "x25519_public_key(bytearray)": lambda k: x25519_public_key(bytearray(KEY)),  # type: ignore[arg-type]
    "x25519_shared_secret(bytes, pub)": lambda k: x25519_shared_secret(KEY, PEER),  # type: ignore[arg-type]
    "X25519PrivateKey(bytes)": lambda k: X25519PrivateKey(KEY),  # type: ignore[arg-type]
    "X25519PrivateKey.from_buffer(bytes)": lambda k: X25519PrivateKey.from_buffer(KEY),  # type: ignore[arg-type]
    "hkdf_extract(salt, bytes ikm)": lambda k: hkdf_extract(b"salt", KEY),  # type: ignore[arg-type]
    "hkdf_expand_into(bytes prk)": lambda k: hkdf_expand_into(KEY, b"", SecureBuffer(32)),  # type: ignore[arg-type]
    "hkdf_expand_into(bytearray okm)": lambda k: hkdf_expand_into(k, b"", bytearray(32)),  # type: ignore[arg-type]
    "hkdf_sha256(bytes ikm)": lambda k: hkdf_sha256(KEY, salt=None, info=b""),  # type: ignore[arg-type]
    "hmac_sha256(bytes key)": lambda k: hmac_sha256(KEY, b"m"),  # type: ignore[arg-type]
    "hmac_sha256(bytes key, 2 parts)": lambda k: hmac_sha256(KEY, b"m", b"n"),  # type: ignore[arg-type]
    "hmac_sha256(str key)": lambda k: hmac_sha256(KEY.hex(), b"m"),  # type: ignore[arg-type]
    "hmac_sha256_into(bytearray out)": lambda k: hmac_sha256_into(k, bytearray(32), b"m"),  # type: ignore[arg-type]
    "hmac_sha256_verify(bytes key)": lambda k: hmac_sha256_verify(KEY, bytes(32), b"m"),  # type: ignore[arg-type]
    "aead_encrypt(bytes key)": lambda k: aead_encrypt(KEY, NONCE, PLAINTEXT, AAD),  # type: ignore[arg-type]
    "aead_decrypt(bytes key)": lambda k: aead_decrypt(KEY, NONCE, SEALED, AAD),  # type: ignore[arg-type]
    "aead_decrypt_into(bytes key)": lambda k: aead_decrypt_into(KEY, NONCE, SEALED, AAD, SecureBuffer(64)),  # type: ignore[arg-type]
    "aead_decrypt_into(bytearray out)": lambda k: aead_decrypt_into(k, NONCE, SEALED, AAD, bytearray(64)),  # type: ignore[arg-type]
    "Ed25519SigningKey(bytes seed)": lambda k: Ed25519SigningKey(KEY),  # type: ignore[arg-type]
    # public data passed as a secure buffer
    "x25519_shared_secret(key, secure pub)": lambda k: x25519_shared_secret(k, sb(PEER)),  # type: ignore[arg-type]
    "hkdf_extract(str salt)": lambda k: hkdf_extract("salt", k),  # type: ignore[arg-type]
    "hkdf_expand_into(secure info)": lambda k: hkdf_expand_into(k, sb(b"info"), SecureBuffer(32)),  # type: ignore[arg-type]
    "hkdf_sha256(secure info)": lambda k: hkdf_sha256(k, salt=None, info=sb(b"info")),  # type: ignore[arg-type]
    "hkdf_sha256(str length)": lambda k: hkdf_sha256(k, salt=None, info=b"", length="32"),  # type: ignore[arg-type]
    "hkdf_sha256(bool length)": lambda k: hkdf_sha256(k, salt=None, info=b"", length=True),
    "hmac_sha256_verify(secure tag)": lambda k: hmac_sha256_verify(k, sb(bytes(32)), b"m"),  # type: ignore[arg-type]
    "hmac_sha256(int part)": lambda k: hmac_sha256(k, b"m", 5),  # type: ignore[arg-type]
    "hmac_sha256(str part)": lambda k: hmac_sha256(k, "message"),  # type: ignore[arg-type]
    "aead_encrypt(secure nonce)": lambda k: aead_encrypt(k, sb(NONCE), PLAINTEXT, AAD),  # type: ignore[arg-type]
    "aead_encrypt(str nonce)": lambda k: aead_encrypt(k, "n" * 12, PLAINTEXT, AAD),  # type: ignore[arg-type]
    "aead_encrypt(secure aad)": lambda k: aead_encrypt(k, NONCE, PLAINTEXT, sb(AAD)),  # type: ignore[arg-type]
    "aead_encrypt(str plaintext)": lambda k: aead_encrypt(k, NONCE, PLAINTEXT.decode(), AAD),  # type: ignore[arg-type]
    "aead_decrypt(secure ciphertext)": lambda k: aead_decrypt(k, NONCE, sb(SEALED), AAD),  # type: ignore[arg-type]
    "aead_decrypt(secure nonce)": lambda k: aead_decrypt(k, sb(NONCE), SEALED, AAD),  # type: ignore[arg-type]
    "aead_decrypt_into(secure aad)": lambda k: aead_decrypt_into(k, NONCE, SEALED, sb(AAD), SecureBuffer(64)),  # type: ignore[arg-type]
    "ed25519_verify(secure pk)": lambda k: ed25519_verify(sb(ED_PUB), PLAINTEXT, ED_SIG),  # type: ignore[arg-type]
    "ed25519_verify(secure sig)": lambda k: ed25519_verify(ED_PUB, PLAINTEXT, sb(ED_SIG)),  # type: ignore[arg-type]
    "ed25519_verify(str message)": lambda k: ed25519_verify(ED_PUB, PLAINTEXT.decode(), ED_SIG),  # type: ignore[arg-type]
    "sign(str message)": lambda k: Ed25519SigningKey(k).sign(PLAINTEXT.decode()),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", list(WRONG_TYPE), ids=list(WRONG_TYPE))
def test_wrong_type(case: str, key: SecureKeyBuffer) -> None:
    exc = expect(WrongTypeError, lambda: WRONG_TYPE[case](key))
    assert isinstance(exc, TypeError)  # ordinary ``except TypeError`` keeps working


# -- wrong lengths --------------------------------------------------------------------------

WRONG_LENGTH: dict[str, Callable[[SecureKeyBuffer], object]] = {
    "x25519_public_key(16-byte key)": lambda k: x25519_public_key(sb(KEY[:16])),  # type: ignore[arg-type]
    "x25519_public_key(64-byte key)": lambda k: x25519_public_key(sb(KEY + KEY)),  # type: ignore[arg-type]
    "x25519_shared_secret(31-byte pub)": lambda k: x25519_shared_secret(k, PEER[:31]),
    "x25519_shared_secret(33-byte pub)": lambda k: x25519_shared_secret(k, PEER + b"\x00"),
    "x25519_shared_secret(empty pub)": lambda k: x25519_shared_secret(k, b""),
    "x25519_shared_secret(31-byte key)": lambda k: x25519_shared_secret(sb(KEY[:31]), PEER),  # type: ignore[arg-type]
    "X25519PrivateKey(16-byte key)": lambda k: X25519PrivateKey(sb(KEY[:16])),  # type: ignore[arg-type]
    "aead_encrypt(nonce 11)": lambda k: aead_encrypt(k, NONCE[:11], PLAINTEXT, AAD),
    "aead_encrypt(nonce 13)": lambda k: aead_encrypt(k, NONCE + b"\x00", PLAINTEXT, AAD),
    "aead_encrypt(nonce 24)": lambda k: aead_encrypt(k, NONCE * 2, PLAINTEXT, AAD),
    "aead_encrypt(empty nonce)": lambda k: aead_encrypt(k, b"", PLAINTEXT, AAD),
    "aead_encrypt(bytearray nonce 8)": lambda k: aead_encrypt(k, bytearray(8), PLAINTEXT, AAD),  # type: ignore[arg-type]
    "aead_encrypt(16-byte key)": lambda k: aead_encrypt(sb(KEY[:16]), NONCE, PLAINTEXT, AAD),  # type: ignore[arg-type]
    "aead_encrypt(64-byte key)": lambda k: aead_encrypt(sb(KEY + KEY), NONCE, PLAINTEXT, AAD),  # type: ignore[arg-type]
    "aead_decrypt(nonce 8)": lambda k: aead_decrypt(k, NONCE[:8], SEALED, AAD),
    "aead_decrypt(16-byte key)": lambda k: aead_decrypt(sb(KEY[:16]), NONCE, SEALED, AAD),  # type: ignore[arg-type]
    "aead_decrypt(ciphertext shorter than tag)": lambda k: aead_decrypt(k, NONCE, SEALED[:15], AAD),
    "aead_decrypt(tag only)": lambda k: aead_decrypt(k, NONCE, SEALED[-16:], AAD),
    "aead_decrypt_into(ciphertext shorter than tag)": lambda k: aead_decrypt_into(
        k, NONCE, SEALED[:15], AAD, SecureBuffer(64)
    ),
    "aead_decrypt_into(out too small)": lambda k: aead_decrypt_into(
        k, NONCE, SEALED, AAD, SecureBuffer(len(PLAINTEXT) - 1)
    ),
    "aead_decrypt_into(offset overruns)": lambda k: aead_decrypt_into(
        k, NONCE, SEALED, AAD, SecureBuffer(len(PLAINTEXT) + 3), offset=4
    ),
    "aead_decrypt_into(negative offset)": lambda k: aead_decrypt_into(
        k, NONCE, SEALED, AAD, SecureBuffer(len(PLAINTEXT) + 8), offset=-1
    ),
    "aead_decrypt_into(nonce 13)": lambda k: aead_decrypt_into(
        k, NONCE + b"\x00", SEALED, AAD, SecureBuffer(len(PLAINTEXT))
    ),
    "Ed25519SigningKey(64-byte seed)": lambda k: Ed25519SigningKey(sb(KEY + KEY)),  # type: ignore[arg-type]
    "Ed25519SigningKey(31-byte seed)": lambda k: Ed25519SigningKey(sb(KEY[:31])),  # type: ignore[arg-type]
    "ed25519_verify(31-byte pk)": lambda k: ed25519_verify(ED_PUB[:31], PLAINTEXT, ED_SIG),
    "ed25519_verify(33-byte pk)": lambda k: ed25519_verify(ED_PUB + b"\x00", PLAINTEXT, ED_SIG),
    "ed25519_verify(63-byte sig)": lambda k: ed25519_verify(ED_PUB, PLAINTEXT, ED_SIG[:63]),
    "ed25519_verify(65-byte sig)": lambda k: ed25519_verify(ED_PUB, PLAINTEXT, ED_SIG + b"\x00"),
    "hmac_sha256_into(16-byte out)": lambda k: hmac_sha256_into(k, SecureBuffer(16), b"m"),
    "hmac_sha256_into(33-byte out)": lambda k: hmac_sha256_into(k, SecureBuffer(33), b"m"),
    "hkdf_expand_into(16-byte prk)": lambda k: hkdf_expand_into(sb(KEY[:16]), b"", SecureBuffer(32)),
}


@pytest.mark.parametrize("case", list(WRONG_LENGTH), ids=list(WRONG_LENGTH))
def test_wrong_length(case: str, key: SecureKeyBuffer) -> None:
    exc = expect(WrongLengthError, lambda: WRONG_LENGTH[case](key))
    assert isinstance(exc, ValueError)


def test_secure_key_buffer_refuses_wrong_key_length() -> None:
    expect(WrongLengthError, lambda: SecureKeyBuffer(KEY[:31]))
    expect(WrongLengthError, lambda: SecureKeyBuffer(KEY + b"\x00"))


BAD_VALUE: dict[str, Callable[[SecureKeyBuffer], object]] = {
    "hkdf_sha256(length 0)": lambda k: hkdf_sha256(k, salt=None, info=b"", length=0),
    "hkdf_sha256(length -1)": lambda k: hkdf_sha256(k, salt=None, info=b"", length=-1),
    "hkdf_sha256(length 255*32+1)": lambda k: hkdf_sha256(k, salt=None, info=b"", length=255 * 32 + 1),
    "hkdf_expand_into(okm 255*32+1)": lambda k: hkdf_expand_into(k, b"", SecureBuffer(255 * 32 + 1)),
}


@pytest.mark.parametrize("case", list(BAD_VALUE), ids=list(BAD_VALUE))
def test_bad_value(case: str, key: SecureKeyBuffer) -> None:
    expect(InvalidArgumentError, lambda: BAD_VALUE[case](key))


# -- purged secrets -------------------------------------------------------------------------


def _purged(buf: SecureBuffer) -> SecureBuffer:
    buf.secure_purge()
    return buf


PURGED: dict[str, Callable[[SecureKeyBuffer, SecureKeyBuffer], object]] = {
    # (purged key, live key)
    "x25519_public_key": lambda p, k: x25519_public_key(p),
    "x25519_shared_secret": lambda p, k: x25519_shared_secret(p, PEER),
    "X25519PrivateKey": lambda p, k: X25519PrivateKey(p),
    "hkdf_extract(ikm)": lambda p, k: hkdf_extract(b"salt", p),
    "hkdf_extract(secure salt)": lambda p, k: hkdf_extract(p, k),
    "hkdf_expand_into(prk)": lambda p, k: hkdf_expand_into(p, b"", SecureBuffer(32)),
    "hkdf_expand_into(okm)": lambda p, k: hkdf_expand_into(k, b"", _purged(SecureBuffer(32))),
    "hkdf_sha256": lambda p, k: hkdf_sha256(p, salt=b"s", info=b"i"),
    "hmac_sha256(fast path)": lambda p, k: hmac_sha256(p, b"m"),
    "hmac_sha256(parts)": lambda p, k: hmac_sha256(p, b"m", b"n"),
    "hmac_sha256(purged SecureBuffer key)": lambda p, k: hmac_sha256(_purged(sb(KEY[:20])), b"m"),
    "hmac_sha256(purged message part)": lambda p, k: hmac_sha256(k, b"m", _purged(sb(b"part"))),
    "hmac_sha256_into(out)": lambda p, k: hmac_sha256_into(k, p, b"m"),
    "hmac_sha256_into(key)": lambda p, k: hmac_sha256_into(p, SecureKeyBuffer.allocate(), b"m"),
    "hmac_sha256_verify": lambda p, k: hmac_sha256_verify(p, bytes(32), b"m"),
    "aead_encrypt(fast path)": lambda p, k: aead_encrypt(p, NONCE, PLAINTEXT, AAD),
    "aead_encrypt(checked path)": lambda p, k: aead_encrypt(p, bytearray(NONCE), PLAINTEXT, AAD),  # type: ignore[arg-type]
    "aead_encrypt(purged plaintext)": lambda p, k: aead_encrypt(k, NONCE, _purged(sb(PLAINTEXT)), AAD),
    "aead_decrypt": lambda p, k: aead_decrypt(p, NONCE, SEALED, AAD),
    "aead_decrypt_into(key)": lambda p, k: aead_decrypt_into(p, NONCE, SEALED, AAD, SecureBuffer(64)),
    "aead_decrypt_into(out)": lambda p, k: aead_decrypt_into(k, NONCE, SEALED, AAD, _purged(SecureBuffer(64))),
    "Ed25519SigningKey(seed)": lambda p, k: Ed25519SigningKey(p),
    "ed25519_verify(purged message)": lambda p, k: ed25519_verify(ED_PUB, _purged(sb(PLAINTEXT)), ED_SIG),
}


@pytest.mark.parametrize("case", list(PURGED), ids=list(PURGED))
def test_purged_secret(case: str, purged_key: SecureKeyBuffer, key: SecureKeyBuffer) -> None:
    expect(PurgedBufferError, lambda: PURGED[case](purged_key, key))


def test_purged_signing_key() -> None:
    with SecureKeyBuffer(KEY) as seed:
        sk = Ed25519SigningKey(seed)
    assert sk.sign(b"m")  # the seed is not consumed: the key outlives it
    sk.purge()
    assert sk.is_purged
    expect(PurgedBufferError, lambda: sk.sign(b"m"))
    expect(PurgedBufferError, sk.public_key)


def test_purged_x25519_private_key() -> None:
    pk = X25519PrivateKey(SecureKeyBuffer(KEY))
    pk.purge()
    assert pk.is_purged
    expect(PurgedBufferError, pk.public_bytes)
    expect(PurgedBufferError, lambda: pk.exchange(PEER))


# -- X25519 low-order points ---------------------------------------------------------------

_P = 2**255 - 19
_SMALL_ORDER = {
    "0 (order 4)": 0,
    "1 (order 1)": 1,
    "e0eb7a7c... (order 8)": int.from_bytes(
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), "little"
    ),
    "5f9c95bc... (order 8)": int.from_bytes(
        bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"), "little"
    ),
    "p-1 (order 2)": _P - 1,
    "p (non-canonical 0)": _P,
    "p+1 (non-canonical 1)": _P + 1,
}
LOW_ORDER: dict[str, bytes] = {}
for _name, _u in _SMALL_ORDER.items():
    _enc = _u.to_bytes(32, "little")
    LOW_ORDER[_name] = _enc
    # RFC 7748 ignores the top bit of u: the same points with it set are refused too
    LOW_ORDER[_name + ", top bit set"] = _enc[:31] + bytes([_enc[31] | 0x80])


def test_low_order_list_is_what_the_literature_says() -> None:
    assert len(set(LOW_ORDER.values())) == 14
    assert LOW_ORDER["0 (order 4)"] == bytes(32)
    assert LOW_ORDER["1 (order 1)"] == b"\x01" + bytes(31)
    assert (
        LOW_ORDER["e0eb7a7c... (order 8)"].hex() == "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
    )
    # and the oracle refuses every one of them as well (all-zero shared secret)
    from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519

    c_priv = c_x25519.X25519PrivateKey.from_private_bytes(KEY)
    for enc in LOW_ORDER.values():
        with pytest.raises(ValueError):
            c_priv.exchange(c_x25519.X25519PublicKey.from_public_bytes(enc))


@pytest.mark.parametrize("point", list(LOW_ORDER.values()), ids=list(LOW_ORDER))
def test_low_order_point_refused(point: bytes, key: SecureKeyBuffer) -> None:
    gc.collect()
    live_before = arena().live_slots()[0]
    expect(LowOrderPointError, lambda: x25519_shared_secret(key, point))
    expect(LowOrderPointError, lambda: X25519PrivateKey(SecureKeyBuffer(KEY)).exchange(point))
    gc.collect()
    # the shared-secret buffers allocated for the refused results were purged, not leaked
    assert arena().live_slots()[0] == live_before
    assert not key.is_purged  # the private key itself is left alone


def test_low_order_refusal_does_not_leak_slots_when_repeated(key: SecureKeyBuffer) -> None:
    gc.collect()
    before = arena().live_slots()
    for _ in range(50):
        with pytest.raises(LowOrderPointError):
            x25519_shared_secret(key, bytes(32))
    assert arena().live_slots() == before


def test_valid_point_near_low_order_is_accepted(key: SecureKeyBuffer) -> None:
    # guards the tests above from passing because *every* peer is refused
    with x25519_shared_secret(key, (2).to_bytes(32, "little")) as shared:
        assert not shared.constant_time_compare(bytes(32))


# -- AEAD authentication failures ----------------------------------------------------------


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


_CT_LEN = len(PLAINTEXT)
TAMPER: dict[str, tuple[bytes, bytes, bytes]] = {}  # name -> (nonce, sealed, aad)
for _bit in (0, 7, 8 * (_CT_LEN // 2) + 3, 8 * _CT_LEN - 1):
    TAMPER[f"ciphertext bit {_bit}"] = (NONCE, _flip(SEALED, _bit), AAD)
for _bit in (0, 5, 63, 64, 127):
    TAMPER[f"tag bit {_bit}"] = (NONCE, _flip(SEALED, 8 * _CT_LEN + _bit), AAD)
for _bit in (0, 8 * len(AAD) - 1):
    TAMPER[f"aad bit {_bit}"] = (NONCE, SEALED, _flip(AAD, _bit))
TAMPER["aad dropped"] = (NONCE, SEALED, b"")
TAMPER["aad extended"] = (NONCE, SEALED, AAD + b"\x00")
for _bit in (0, 47, 95):
    TAMPER[f"nonce bit {_bit}"] = (_flip(NONCE, _bit), SEALED, AAD)
TAMPER["ciphertext truncated"] = (NONCE, SEALED[:-17] + SEALED[-16:], AAD)
TAMPER["ciphertext extended"] = (NONCE, SEALED[:-16] + b"\x00" + SEALED[-16:], AAD)
TAMPER["tag zeroed"] = (NONCE, SEALED[:-16] + bytes(16), AAD)


@pytest.mark.parametrize(("nonce", "sealed", "aad"), list(TAMPER.values()), ids=list(TAMPER))
def test_tampered_aead_fails(nonce: bytes, sealed: bytes, aad: bytes, key: SecureKeyBuffer) -> None:
    # sanity: the untampered message opens
    with aead_decrypt(key, NONCE, SEALED, AAD) as pt:
        assert pt.constant_time_compare(PLAINTEXT)
    gc.collect()
    live_before = arena().live_slots()[0]
    expect(DecryptionError, lambda: aead_decrypt(key, nonce, sealed, aad))
    gc.collect()
    assert arena().live_slots()[0] == live_before  # the would-be plaintext buffer was purged

    # decrypt_into: the output buffer never receives plaintext, and nothing outside the
    # target range is touched
    n = len(sealed) - 16
    offset, tail = 5, 7
    before = bytes([0xA5]) * offset
    region = bytes([0x5A]) * n
    after = bytes([0xC3]) * tail
    with SecureBuffer.from_bytes(before + region + after) as out:
        expect(DecryptionError, lambda: aead_decrypt_into(key, nonce, sealed, aad, out, offset=offset))
        with out.export_bytearray() as ba:
            assert PLAINTEXT[:8] not in ba and PLAINTEXT[-8:] not in ba
            assert ba[:offset] == before
            assert ba[offset + n :] == after
            # the target range keeps its old contents or is wiped (libsodium zeroes it)
            assert ba[offset : offset + n] in (region, bytes(n))


def test_wrong_key_fails(key: SecureKeyBuffer) -> None:
    with SecureKeyBuffer(bytes(32)) as other:
        expect(DecryptionError, lambda: aead_decrypt(other, NONCE, SEALED, AAD))


def test_empty_plaintext_tag_tampered(key: SecureKeyBuffer) -> None:
    sealed = aead_encrypt(key, NONCE, b"", AAD)
    assert len(sealed) == 16
    with SecureBuffer(1) as out:
        assert aead_decrypt_into(key, NONCE, sealed, AAD, out) == 0
        expect(DecryptionError, lambda: aead_decrypt_into(key, NONCE, _flip(sealed, 3), AAD, out))


# -- Ed25519 verification failures ---------------------------------------------------------

BAD_SIGNATURES: dict[str, tuple[bytes, bytes, bytes]] = {}  # name -> (pk, message, sig)
for _bit in (0, 100, 255, 256, 300, 511):
    BAD_SIGNATURES[f"signature bit {_bit}"] = (ED_PUB, PLAINTEXT, _flip(ED_SIG, _bit))
BAD_SIGNATURES["message bit flipped"] = (ED_PUB, _flip(PLAINTEXT, 9), ED_SIG)
BAD_SIGNATURES["message extended"] = (ED_PUB, PLAINTEXT + b"!", ED_SIG)
BAD_SIGNATURES["message truncated"] = (ED_PUB, PLAINTEXT[:-1], ED_SIG)
BAD_SIGNATURES["empty message"] = (ED_PUB, b"", ED_SIG)
BAD_SIGNATURES["public key bit flipped"] = (_flip(ED_PUB, 17), PLAINTEXT, ED_SIG)
BAD_SIGNATURES["other public key"] = (PEER, PLAINTEXT, ED_SIG)
BAD_SIGNATURES["all-zero signature"] = (ED_PUB, PLAINTEXT, bytes(64))
BAD_SIGNATURES["all-zero public key"] = (bytes(32), PLAINTEXT, ED_SIG)


@pytest.mark.parametrize(("pk", "message", "sig"), list(BAD_SIGNATURES.values()), ids=list(BAD_SIGNATURES))
def test_bad_signature(pk: bytes, message: bytes, sig: bytes) -> None:
    ed25519_verify(ED_PUB, PLAINTEXT, ED_SIG)  # sanity: the genuine one verifies
    expect(InvalidSignatureError, lambda: ed25519_verify(pk, message, sig))
    if message:  # the same refusal when the message is read in place from a secure buffer
        with SecureBuffer.from_bytes(message) as secret_msg:
            expect(InvalidSignatureError, lambda: ed25519_verify(pk, secret_msg, sig))


# -- HMAC verification is a bool, never an exception -------------------------------------


def test_hmac_verify_rejects_without_raising(key: SecureKeyBuffer) -> None:
    tag = hmac_sha256(key, b"message")
    assert hmac_sha256_verify(key, tag, b"message") is True
    assert hmac_sha256_verify(key, _flip(tag, 200), b"message") is False
    assert hmac_sha256_verify(key, tag, b"messagE") is False
    assert hmac_sha256_verify(key, tag[:16], b"message") is False
    assert hmac_sha256_verify(key, tag + b"\x00", b"message") is False
    assert hmac_sha256_verify(key, b"", b"message") is False


# -- the message checker itself must be able to fail ---------------------------------------


def test_message_checker_catches_leaks() -> None:
    for spelling in FORBIDDEN:
        with pytest.raises(AssertionError):
            check_message(WrongTypeError(f"bad key {spelling}"))
    with pytest.raises(AssertionError):
        expect(WrongLengthError, lambda: x25519_public_key(KEY))  # type: ignore[arg-type]
