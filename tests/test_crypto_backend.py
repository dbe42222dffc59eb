"""The binding each primitive uses (``crypto._backend``, the one place that decides), the symbol by
symbol fallback to ctypes, and results that agree with ``cryptography`` on every binding.

Known answers come from ``cryptography`` (the oracle) and RFC 8439 / RFC 7748 / RFC 8032 vectors
through it, never from our own output. Forcing ctypes is done in a child process
(``CORTEX_SAL_FORCE_CTYPES``), because the bindings are chosen once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from cortex_sal.crypto import _backend, backend_info
from cortex_sal.errors import CryptoBackendError

ORACLE_CHILD = r"""
import hashlib, hmac, json, os, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519 as c_ed, x25519 as c_x
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cortex_sal import crypto
from cortex_sal.crypto.aead import decrypt_unchecked
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer

checked = []
def agree(name, ours, theirs):
    if ours != theirs:
        sys.exit(f"{name}: ours {ours!r} != oracle {theirs!r}")
    checked.append(name)

kb, nonce, pt, aad = os.urandom(32), os.urandom(12), os.urandom(1024), os.urandom(8)
key = SecureKeyBuffer(kb)
ct = ChaCha20Poly1305(kb).encrypt(nonce, pt, aad)
agree("aead_encrypt", crypto.aead_encrypt(key, nonce, pt, aad), ct)
agree("aead_encrypt (secure plaintext)", crypto.aead_encrypt(key, nonce, SecureBuffer.from_bytes(pt), aad), ct)
out = SecureBuffer(1030)
assert decrypt_unchecked(key, nonce, ct, aad, out, 3)
assert not decrypt_unchecked(key, nonce, ct[:-1] + bytes([ct[-1] ^ 1]), aad, out, 3)
assert crypto.aead_decrypt_into(key, nonce, ct, aad, out, 6) == 1024
with crypto.aead_decrypt(key, nonce, ct, aad) as plain:
    agree("aead_decrypt", plain.constant_time_compare(pt), True)
ck = crypto.CipherKey(SecureKeyBuffer(kb))
n = 7
noise_nonce = bytes(4) + n.to_bytes(8, "little")
agree("CipherKey.encrypt_fast", ck.encrypt_fast(n, aad, pt), ChaCha20Poly1305(kb).encrypt(noise_nonce, pt, aad))
agree("CipherKey.encrypt", ck.encrypt(n, aad, pt), ChaCha20Poly1305(kb).encrypt(noise_nonce, pt, aad))
agree("CipherKey.decrypt_fast", ck.decrypt_fast(n, aad, ck.encrypt(n, aad, pt)), pt)
agree("CipherKey.decrypt", ck.decrypt(n, aad, ck.encrypt(n, aad, pt)), pt)
agree("CipherKey.decrypt_into_fast", ck.decrypt_into_fast(n, aad, ck.encrypt(n, aad, pt), out, 1), 1024)
agree("CipherKey.decrypt_into", ck.decrypt_into(n, aad, ck.encrypt(n, aad, pt), out, 2), 1024)
agree("CipherKey bad tag", ck.decrypt_fast(n, aad, bytes(1040)), None)

msg = os.urandom(64)
agree("hmac_sha256", crypto.hmac_sha256(key, msg), hmac.digest(kb, msg, "sha256"))
agree("hmac_sha256 (parts)", crypto.hmac_sha256(key, msg[:10], msg[10:]), hmac.digest(kb, msg, "sha256"))
agree("hmac_sha256_verify", crypto.hmac_sha256_verify(key, hmac.digest(kb, msg, "sha256"), msg), True)
blob = os.urandom(7 * 45)
agree("hmac_sha256_many", crypto.hmac_sha256_many(key, blob, 45),
      b"".join(hmac.digest(kb, blob[i : i + 45], "sha256") for i in range(0, len(blob), 45)))  # fmt: skip
with crypto.hkdf_sha256(key, salt=b"salt", info=b"info", length=80) as okm:
    agree("hkdf_sha256", okm.constant_time_compare(HKDF(hashes.SHA256(), 80, b"salt", b"info").derive(kb)), True)

peer = c_x.X25519PrivateKey.generate()
scalar = os.urandom(32)  # the test makes the secret, so the oracle can have it
priv = crypto.X25519PrivateKey(SecureKeyBuffer(scalar))
oracle_priv = c_x.X25519PrivateKey.from_private_bytes(scalar)
agree("x25519_base", priv.public_bytes(), oracle_priv.public_key().public_bytes_raw())
with crypto.x25519_shared_secret(priv.key_buffer, peer.public_key().public_bytes_raw()) as shared:
    agree("x25519", shared.constant_time_compare(oracle_priv.exchange(peer.public_key())), True)

seed = os.urandom(32)
sk = crypto.Ed25519SigningKey(SecureKeyBuffer(seed))
oracle_sk = c_ed.Ed25519PrivateKey.from_private_bytes(seed)
agree("ed25519_seed_keypair", sk.public_key(), oracle_sk.public_key().public_bytes_raw())
agree("ed25519_sign", sk.sign(msg), oracle_sk.sign(msg))
crypto.ed25519_verify(sk.public_key(), msg, oracle_sk.sign(msg))
checked.append("ed25519_verify")
print(json.dumps({"bindings": dict(crypto.backend_info().bindings), "checked": checked}))
"""


def _child(force: str | None) -> dict[str, object]:
    env = dict(os.environ)
    env.pop("CORTEX_SAL_FORCE_CTYPES", None)
    if force is not None:
        env["CORTEX_SAL_FORCE_CTYPES"] = force
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", ORACLE_CHILD], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_each_primitive_has_one_binding_and_status_reports_it() -> None:
    info = backend_info()
    bindings = dict(info.bindings)
    assert set(bindings) == set(_backend.PRIMITIVES)
    assert set(bindings.values()) <= {_backend.API, _backend.ABI, _backend.CTYPES}
    assert bindings == _backend.BINDINGS  # backend_info reports the decision itself
    # the pinned wheel: the compiled lib has the AEAD, X25519, Ed25519 key pair and memzero
    if not os.environ.get("CORTEX_SAL_FORCE_CTYPES") and not os.environ.get("CORTEX_SAL_LIBSODIUM"):
        for name in ("aead_encrypt", "aead_decrypt", "x25519", "x25519_base", "ed25519_seed_keypair", "memzero"):
            assert bindings[name] == _backend.API, name
        for name in ("hmac_sha256", "ed25519_sign", "ed25519_verify"):
            assert bindings[name] == _backend.ABI, name


def test_cortex_sal_status_shows_every_binding() -> None:
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "cortex_sal", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for name, binding in backend_info().bindings:
        line = next(line for line in proc.stdout.splitlines() if f" {name} " in line)
        assert binding in line, line


def test_decide_falls_back_symbol_by_symbol() -> None:
    api = types.SimpleNamespace(crypto_aead_chacha20poly1305_ietf_encrypt=object())  # only one symbol
    abi = types.SimpleNamespace(crypto_auth_hmacsha256=object())
    choice = _backend.decide(api, abi, frozenset())
    assert choice["aead_encrypt"] == _backend.API
    assert choice["aead_decrypt"] == _backend.CTYPES  # not in this api lib: ctypes, not a failure
    assert choice["hmac_sha256"] == _backend.ABI
    assert choice["x25519"] == _backend.CTYPES
    assert _backend.decide(None, None, frozenset()) == dict.fromkeys(_backend.PRIMITIVES, _backend.CTYPES)
    forced = _backend.decide(api, abi, frozenset({"aead_encrypt"}))
    assert forced["aead_encrypt"] == _backend.CTYPES and forced["hmac_sha256"] == _backend.ABI


def test_a_primitive_no_binding_provides_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_backend.PRIMITIVES, "imaginary", (None, "crypto_imaginary_symbol"))
    with pytest.raises(CryptoBackendError, match=r"imaginary \(crypto_imaginary_symbol\)"):
        _backend.decide(None, None, frozenset())


def test_force_ctypes_refuses_unknown_names() -> None:
    assert _backend.forced_ctypes(None) == frozenset()
    assert _backend.forced_ctypes("all") == frozenset(_backend.PRIMITIVES)
    assert _backend.forced_ctypes(" aead_encrypt, hmac_sha256 ") == {"aead_encrypt", "hmac_sha256"}
    with pytest.raises(CryptoBackendError, match=r"unknown primitive.*aead_encrpyt"):
        _backend.forced_ctypes("aead_encrpyt")


def test_an_unknown_forced_name_fails_the_import() -> None:
    env = dict(os.environ, CORTEX_SAL_FORCE_CTYPES="nonsense")
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import cortex_sal.crypto"], capture_output=True, text=True, env=env
    )
    assert proc.returncode != 0 and "CryptoBackendError" in proc.stderr and "nonsense" in proc.stderr


@pytest.mark.parametrize("force", [None, "all", "aead_encrypt,hmac_sha256_init", "aead_decrypt,hmac_sha256,x25519"])
def test_every_binding_agrees_with_the_oracle(force: str | None) -> None:
    result = _child(force)
    bindings = result["bindings"]
    assert isinstance(bindings, dict)
    forced = _backend.forced_ctypes(force)
    for name in forced:
        assert bindings[name] == _backend.CTYPES
    if force is None:
        assert _backend.CTYPES not in bindings.values() or os.environ.get("CORTEX_SAL_LIBSODIUM")
    assert len(result["checked"]) == 20  # type: ignore[arg-type]  # every check of the child ran


def test_the_converting_wrapper_takes_the_ctypes_convention() -> None:
    import ctypes

    from cryptography.hazmat.primitives.asymmetric import x25519 as c_x

    base = _backend.function("x25519_base")
    scalar = bytes(range(32))
    out = ctypes.create_string_buffer(32)
    assert base(out, scalar) == 0
    assert out.raw == c_x.X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()
