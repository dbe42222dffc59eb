"""Known-answer tests for the crypto layer, parsed from the ``cryptography_vectors`` package.

Every vector file is parsed at collection time; each vector is its own test id, and the
number of parsed vectors is checked against both an independent count of the file's
record markers and the number the file is known to hold, so a parser that silently
drops vectors (or a file that moved) fails loudly instead of running zero tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cryptography_vectors
import pytest

from cortex_sal.crypto import (
    Ed25519SigningKey,
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
from cortex_sal.errors import DecryptionError
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer

X25519_FILE = "asymmetric/X25519/rfc7748.txt"
HKDF_FILE = "KDF/rfc-5869-HKDF-SHA256.txt"
HMAC_FILE = "HMAC/rfc-4231-sha256.txt"
CHACHA_BORINGSSL_FILE = "ciphers/ChaCha20Poly1305/boringssl.txt"
CHACHA_OPENSSL_FILE = "ciphers/ChaCha20Poly1305/openssl.txt"
ED25519_FILE = "asymmetric/Ed25519/sign.input"


# -- parsing ---------------------------------------------------------------------------


def _read(path: str) -> str:
    with cryptography_vectors.open_vector_file(path, "r") as f:
        text: str = f.read()
    return text


_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_records(path: str, start_key: str) -> list[dict[str, str]]:
    """``KEY = value`` records; a new record begins at each ``start_key`` line.

    Comments (``#``) and blank lines are ignored (some records have blank lines inside).
    A key repeated within one record is a parse error rather than a silent overwrite.
    """
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for lineno, raw in enumerate(_read(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise AssertionError(f"{path}:{lineno}: unparsable line {raw!r}")
        key, value = m.group(1), m.group(2)
        if key == start_key:
            current = {}
            records.append(current)
        if current is None:
            raise AssertionError(f"{path}:{lineno}: {key} before the first {start_key}")
        if key in current:
            raise AssertionError(f"{path}:{lineno}: {key} repeated inside one record")
        current[key] = value
    return records


def count_markers(path: str, start_key: str) -> int:
    """An independent count of the records a file holds (lines starting with ``start_key``)."""
    return len(re.findall(rf"^\s*{re.escape(start_key)}\s*=", _read(path), flags=re.MULTILINE))


def unhex(value: str) -> bytes:
    """Hex, or a double-quoted ASCII string (the BoringSSL AEAD file uses both)."""
    value = value.strip()
    if value.startswith('"'):
        assert value.endswith('"') and len(value) >= 2, value
        return value[1:-1].encode("ascii")
    return bytes.fromhex(value)


def _exported(buf: SecureBuffer) -> bytes:
    """Test-only: the contents of a secure buffer as bytes (to feed back as public input)."""
    with buf.export_bytearray() as ba:
        return bytes(ba)


# -- X25519 (RFC 7748) -----------------------------------------------------------------

X25519_VECTORS = parse_records(X25519_FILE, "COUNT")


def test_x25519_vector_count() -> None:
    assert len(X25519_VECTORS) == count_markers(X25519_FILE, "COUNT") == 3


@pytest.mark.parametrize("vector", X25519_VECTORS, ids=[f"rfc7748-{v['COUNT']}" for v in X25519_VECTORS])
def test_x25519_rfc7748(vector: dict[str, str]) -> None:
    scalar = bytes.fromhex(vector["INPUT_SCALAR"])
    u = bytes.fromhex(vector["INPUT_U"])
    expected = bytes.fromhex(vector["OUTPUT_U"])
    # RFC 7748 scalars are unclamped on the wire; libsodium clamps them, as the RFC requires.
    with SecureKeyBuffer(scalar) as k, x25519_shared_secret(k, u) as shared:
        assert isinstance(shared, SecureKeyBuffer)
        assert shared.constant_time_compare(expected)


def test_x25519_public_key_of_nine_is_first_iteration() -> None:
    # X25519(9, 9) is the RFC 7748 iteration-1 value; x25519_public_key(k) is X25519(k, 9).
    nine = bytes([9]) + bytes(31)
    with SecureKeyBuffer(nine) as k:
        assert x25519_public_key(k) == bytes.fromhex("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")


def test_x25519_rfc7748_section_6_1_diffie_hellman() -> None:
    alice_priv = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    alice_pub = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    bob_priv = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    bob_pub = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    with SecureKeyBuffer(alice_priv) as a, SecureKeyBuffer(bob_priv) as b:
        assert x25519_public_key(a) == alice_pub
        assert x25519_public_key(b) == bob_pub
        with x25519_shared_secret(a, bob_pub) as s1, x25519_shared_secret(b, alice_pub) as s2:
            assert s1.constant_time_compare(shared)
            assert s2.constant_time_compare(shared)


@pytest.mark.parametrize(
    ("iterations", "expected"),
    [
        (1, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"),
        (1000, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"),
    ],
    ids=["1", "1000"],
)
def test_x25519_rfc7748_iterated(iterations: int, expected: str) -> None:
    # RFC 7748 5.2: k = u = 9; repeat: k, u = X25519(k, u), k.
    k = SecureKeyBuffer(bytes([9]) + bytes(31))
    u = bytes([9]) + bytes(31)
    for _ in range(iterations):
        new_k = x25519_shared_secret(k, u)
        u = _exported(k)
        k.secure_purge()
        k = new_k
    try:
        assert k.constant_time_compare(bytes.fromhex(expected))
    finally:
        k.secure_purge()


# -- HKDF-SHA256 (RFC 5869) ------------------------------------------------------------

HKDF_VECTORS = parse_records(HKDF_FILE, "COUNT")


def test_hkdf_vector_count() -> None:
    assert len(HKDF_VECTORS) == count_markers(HKDF_FILE, "COUNT") == 3
    assert all(v["Hash"] == "SHA-256" for v in HKDF_VECTORS)
    # the empty-salt case must be among them
    assert any(v["salt"] == "" for v in HKDF_VECTORS)


@pytest.mark.parametrize("vector", HKDF_VECTORS, ids=[f"rfc5869-{v['COUNT']}" for v in HKDF_VECTORS])
def test_hkdf_rfc5869(vector: dict[str, str]) -> None:
    ikm_b = bytes.fromhex(vector["IKM"])
    salt = bytes.fromhex(vector["salt"])
    info = bytes.fromhex(vector["info"])
    length = int(vector["L"])
    prk_expected = bytes.fromhex(vector["PRK"])
    okm_expected = bytes.fromhex(vector["OKM"])
    assert len(okm_expected) == length

    ikm = SecureBuffer.from_bytes(ikm_b)
    salts: list[bytes | None] = [salt] if salt else [b"", None]  # empty and absent salt are the same
    for s in salts:
        with hkdf_extract(s, ikm) as prk:
            assert isinstance(prk, SecureKeyBuffer)
            assert prk.constant_time_compare(prk_expected)
            okm = SecureBuffer(length)
            hkdf_expand_into(prk, info, okm)
            assert okm.constant_time_compare(okm_expected)
            okm.secure_purge()
        with hkdf_sha256(ikm, salt=s, info=info, length=length) as okm2:
            with okm2.export_bytearray() as ba:
                assert ba == okm_expected
    # a salt held in a secure buffer gives the same PRK
    if salt:
        with SecureBuffer.from_bytes(salt) as secret_salt, hkdf_extract(secret_salt, ikm) as prk:
            assert prk.constant_time_compare(prk_expected)
    ikm.secure_purge()


# -- HMAC-SHA256 (RFC 4231) ------------------------------------------------------------

HMAC_VECTORS = parse_records(HMAC_FILE, "Len")


def test_hmac_vector_count() -> None:
    assert len(HMAC_VECTORS) == count_markers(HMAC_FILE, "Len") == 6
    # keys of many lengths (none of them the 32-byte fast path)
    assert {len(bytes.fromhex(v["Key"])) for v in HMAC_VECTORS} == {4, 20, 25, 131}


def _hmac_key(key: bytes) -> SecureBuffer:
    return SecureKeyBuffer(key) if len(key) == 32 else SecureBuffer.from_bytes(key)


@pytest.mark.parametrize("vector", HMAC_VECTORS, ids=[f"rfc4231-{i + 1}" for i in range(len(HMAC_VECTORS))])
def test_hmac_rfc4231(vector: dict[str, str]) -> None:
    key_b = bytes.fromhex(vector["Key"])
    msg = bytes.fromhex(vector["Msg"])
    expected = bytes.fromhex(vector["MD"])
    assert int(vector["Len"]) == 8 * len(msg)  # "Len" is the message length in bits
    with _hmac_key(key_b) as key:
        assert hmac_sha256(key, msg) == expected
        # the same message in parts, and as a secure buffer read in place
        half = len(msg) // 2
        assert hmac_sha256(key, msg[:half], msg[half:]) == expected
        with SecureBuffer.from_bytes(msg) as secret_msg:
            assert hmac_sha256(key, secret_msg) == expected
        with SecureKeyBuffer.allocate() as out:
            hmac_sha256_into(key, out, msg)
            assert out.constant_time_compare(expected)
        assert hmac_sha256_verify(key, expected, msg) is True
        assert hmac_sha256_verify(key, expected, msg + b"x") is False


def test_hmac_rfc4231_truncated_output() -> None:
    # RFC 4231 test case 5 (not in the vector file): the output is truncated to 128 bits.
    key_b = bytes([0x0C]) * 20
    msg = b"Test With Truncation"
    with SecureBuffer.from_bytes(key_b) as key:
        tag = hmac_sha256(key, msg)
    assert len(tag) == 32
    assert tag[:16] == bytes.fromhex("a3b6167473100ee06e0c796c2955552b")


# -- ChaCha20-Poly1305 (RFC 8439) ------------------------------------------------------


@dataclass(frozen=True)
class AeadVector:
    name: str
    key: bytes
    nonce: bytes
    plaintext: bytes
    aad: bytes
    ciphertext: bytes
    tag: bytes
    fails: bool

    @property
    def applicable(self) -> bool:
        return len(self.key) == 32 and len(self.nonce) == 12 and len(self.tag) == 16


def _boringssl_vectors() -> list[AeadVector]:
    return [
        AeadVector(
            name=f"boringssl-{r['COUNT']}",
            key=unhex(r["KEY"]),
            nonce=unhex(r["NONCE"]),
            plaintext=unhex(r["IN"]),
            aad=unhex(r["AD"]),
            ciphertext=unhex(r["CT"]),
            tag=unhex(r["TAG"]),
            fails=False,
        )
        for r in parse_records(CHACHA_BORINGSSL_FILE, "COUNT")
    ]


def _openssl_vectors() -> list[AeadVector]:
    out = []
    for r in parse_records(CHACHA_OPENSSL_FILE, "COUNT"):
        result = r.get("Result")
        assert result in (None, "CIPHERFINAL_ERROR"), result
        out.append(
            AeadVector(
                name=f"openssl-{r['COUNT']}",
                key=unhex(r["Key"]),
                nonce=unhex(r["IV"]),
                plaintext=unhex(r["Plaintext"]),
                aad=unhex(r["AAD"]),
                ciphertext=unhex(r["Ciphertext"]),
                tag=unhex(r["Tag"]),
                fails=result == "CIPHERFINAL_ERROR",
            )
        )
    return out


BORINGSSL_AEAD = _boringssl_vectors()
OPENSSL_AEAD = _openssl_vectors()
AEAD_VECTORS = [v for v in BORINGSSL_AEAD + OPENSSL_AEAD if v.applicable]


def test_aead_vector_count() -> None:
    assert len(BORINGSSL_AEAD) == count_markers(CHACHA_BORINGSSL_FILE, "COUNT") == 66
    assert len(OPENSSL_AEAD) == count_markers(CHACHA_OPENSSL_FILE, "COUNT") == 5
    # inapplicable entries are filtered out, but most of the files must actually run
    assert len(AEAD_VECTORS) > 60
    assert sum(v.fails for v in AEAD_VECTORS) >= 1  # the failure path is exercised
    assert any(not v.plaintext for v in AEAD_VECTORS)  # and so is the empty plaintext
    assert all(len(v.ciphertext) == len(v.plaintext) for v in AEAD_VECTORS)


@pytest.mark.parametrize("vector", AEAD_VECTORS, ids=[v.name for v in AEAD_VECTORS])
def test_chacha20poly1305(vector: AeadVector) -> None:
    sealed = vector.ciphertext + vector.tag
    with SecureKeyBuffer(vector.key) as key:
        produced = aead_encrypt(key, vector.nonce, vector.plaintext, vector.aad)
        if vector.fails:
            # the vector's tag is wrong: our (correct) output must differ only in the tag
            assert produced[: len(vector.ciphertext)] == vector.ciphertext
            assert produced != sealed
            with SecureBuffer(len(vector.plaintext) + 1) as out, pytest.raises(DecryptionError):
                aead_decrypt_into(key, vector.nonce, sealed, vector.aad, out)
            if vector.plaintext:
                with pytest.raises(DecryptionError):
                    aead_decrypt(key, vector.nonce, sealed, vector.aad)
            return
        assert produced == sealed
        # the plaintext read in place from a secure buffer encrypts the same
        if vector.plaintext:
            with SecureBuffer.from_bytes(vector.plaintext) as secret_pt:
                assert aead_encrypt(key, vector.nonce, secret_pt, vector.aad) == sealed
            with aead_decrypt(key, vector.nonce, sealed, vector.aad) as pt:
                assert pt.constant_time_compare(vector.plaintext)
        # decrypt_into works for every length, including an empty plaintext
        with SecureBuffer(len(vector.plaintext) + 1) as out:
            assert aead_decrypt_into(key, vector.nonce, sealed, vector.aad, out, offset=1) == len(vector.plaintext)
            with out.export_bytearray() as ba:
                assert ba == b"\x00" + vector.plaintext


# -- Ed25519 (RFC 8032; the SUPERCOP/ed25519.cr.yp.to sign.input) ----------------------


def _ed25519_vectors() -> list[tuple[int, bytes, bytes, bytes, bytes]]:
    out = []
    lines = [line for line in _read(ED25519_FILE).splitlines() if line.strip()]
    for lineno, line in enumerate(lines, 1):
        fields = line.split(":")
        # sk||pk : pk : msg : sig||msg : (trailing empty field)
        assert len(fields) == 5 and fields[4] == "", f"line {lineno}: {len(fields)} fields"
        sk_pk = bytes.fromhex(fields[0])
        pk = bytes.fromhex(fields[1])
        msg = bytes.fromhex(fields[2])
        sig_msg = bytes.fromhex(fields[3])
        assert len(sk_pk) == 64 and sk_pk[32:] == pk and len(pk) == 32, f"line {lineno}"
        assert sig_msg[64:] == msg, f"line {lineno}"
        out.append((lineno, sk_pk[:32], pk, msg, sig_msg[:64]))
    return out


ED25519_VECTORS = _ed25519_vectors()


def test_ed25519_vector_count() -> None:
    raw_lines = [line for line in _read(ED25519_FILE).splitlines() if line.strip()]
    assert len(ED25519_VECTORS) == len(raw_lines) == 1024
    assert any(not v[3] for v in ED25519_VECTORS)  # the empty message is included


@pytest.mark.parametrize(
    ("lineno", "seed", "pk", "msg", "sig"), ED25519_VECTORS, ids=[f"sign.input-{v[0]}" for v in ED25519_VECTORS]
)
def test_ed25519_sign_input(lineno: int, seed: bytes, pk: bytes, msg: bytes, sig: bytes) -> None:
    with SecureKeyBuffer(seed) as s, Ed25519SigningKey(s) as sk:
        assert sk.public_key() == pk
        assert sk.sign(msg) == sig
    ed25519_verify(pk, msg, sig)  # raises InvalidSignatureError on failure
