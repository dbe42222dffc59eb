"""libsodium, loaded with ctypes from the PyNaCl wheel that bundles it: the checked fallback binding.

We rely on PyNaCl *privately*: not on its Python API (which takes and returns
``bytes``) but on the libsodium 1.0.20 shared object inside the pinned 1.6.2 wheel
(``nacl/_sodium.abi3.so``). Every symbol we use is declared here with its C
signature and checked at import; a missing one raises
:class:`~cortex_sal.errors.CryptoBackendError` naming it. ``CORTEX_SAL_LIBSODIUM``
may point at another libsodium (for instance the system's) of a compatible version.
Which primitive calls this binding and which the compiled cffi functions of the same library
is decided in one place, :mod:`cortex_sal.crypto._backend`.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any, Protocol

from ..errors import CryptoBackendError

EXPECTED_VERSION = "1.0.20"
PYNACL_VERSION = "1.6.2"  # the wheel that bundles EXPECTED_VERSION

_c = ctypes
_p = ctypes.c_void_p
_sz = ctypes.c_size_t
_ull = ctypes.c_ulonglong
_ullp = ctypes.POINTER(ctypes.c_ulonglong)
_i = ctypes.c_int

# name -> (argtypes, restype)
SIGNATURES: dict[str, tuple[list[object], object]] = {
    "sodium_init": ([], _i),
    "sodium_memzero": ([_p, _sz], None),
    "sodium_memcmp": ([_p, _p, _sz], _i),
    "randombytes_buf": ([_p, _sz], None),
    "sodium_runtime_has_avx": ([], _i),  # the scrub's wipe needs AVX (crypto._scrub)
    "crypto_scalarmult_curve25519": ([_p, _p, _p], _i),
    "crypto_scalarmult_curve25519_base": ([_p, _p], _i),
    "crypto_auth_hmacsha256": ([_p, _p, _ull, _p], _i),
    "crypto_auth_hmacsha256_statebytes": ([], _sz),
    "crypto_auth_hmacsha256_init": ([_p, _p, _sz], _i),
    "crypto_auth_hmacsha256_update": ([_p, _p, _ull], _i),
    "crypto_auth_hmacsha256_final": ([_p, _p], _i),
    "crypto_aead_chacha20poly1305_ietf_encrypt": ([_p, _ullp, _p, _ull, _p, _ull, _p, _p, _p], _i),
    "crypto_aead_chacha20poly1305_ietf_decrypt": ([_p, _ullp, _p, _p, _ull, _p, _ull, _p, _p], _i),
    "crypto_sign_ed25519_seed_keypair": ([_p, _p, _p], _i),
    "crypto_sign_ed25519_detached": ([_p, _ullp, _p, _ull, _p], _i),
    "crypto_sign_ed25519_verify_detached": ([_p, _p, _ull, _p], _i),
}


def default_library_path() -> Path:
    """Where the pinned PyNaCl wheel keeps its libsodium."""
    spec = importlib.util.find_spec("nacl")
    if spec is None or not spec.submodule_search_locations:
        raise CryptoBackendError("PyNaCl is not installed: install cortex-sal's dependency pynacl==1.6.2")
    for location in spec.submodule_search_locations:
        candidates = sorted(Path(location).glob("_sodium*.so"))
        if candidates:
            return candidates[0]
    raise CryptoBackendError("PyNaCl is installed but its bundled libsodium (nacl/_sodium*.so) is missing")


class CFunction(Protocol):
    """A bound libsodium function: ctypes checks and converts the arguments it declares."""

    def __call__(self, *args: Any) -> Any: ...


class Sodium:
    """The loaded library: one attribute per declared function (see :data:`SIGNATURES`)."""

    sodium_init: CFunction
    sodium_memzero: CFunction
    sodium_memcmp: CFunction
    randombytes_buf: CFunction
    sodium_runtime_has_avx: CFunction
    crypto_scalarmult_curve25519: CFunction
    crypto_scalarmult_curve25519_base: CFunction
    crypto_auth_hmacsha256: CFunction
    crypto_auth_hmacsha256_statebytes: CFunction
    crypto_auth_hmacsha256_init: CFunction
    crypto_auth_hmacsha256_update: CFunction
    crypto_auth_hmacsha256_final: CFunction
    crypto_aead_chacha20poly1305_ietf_encrypt: CFunction
    crypto_aead_chacha20poly1305_ietf_decrypt: CFunction
    crypto_sign_ed25519_seed_keypair: CFunction
    crypto_sign_ed25519_detached: CFunction
    crypto_sign_ed25519_verify_detached: CFunction
    version: str
    path: str
    hmac_state_bytes: int

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            lib = ctypes.CDLL(os.fspath(path))
        except OSError as exc:
            raise CryptoBackendError(f"cannot load libsodium from {path}: {exc}") from None
        missing = [name for name in SIGNATURES if not hasattr(lib, name)]
        if missing:
            raise CryptoBackendError(f"libsodium at {path} lacks required symbol(s): {', '.join(missing)}")
        for name, (argtypes, restype) in SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = restype
            setattr(self, name, fn)
        if lib.sodium_init() < 0:
            raise CryptoBackendError("sodium_init() failed")
        self.version = _version_of(lib, path)
        if self.version.split(".")[:2] != EXPECTED_VERSION.split(".")[:2]:
            raise CryptoBackendError(
                f"libsodium at {path} is version {self.version}; Cortex SAL is built against {EXPECTED_VERSION}"
            )
        self._lib = lib
        self._unconverted: ctypes.PyDLL | None = None
        self.path = os.fspath(path)
        self.hmac_state_bytes = int(lib.crypto_auth_hmacsha256_statebytes())

    def bind(self, name: str, argtypes: list[Any], restype: Any) -> CFunction:
        """A second binding of a checked symbol with another signature (fast paths)."""
        if name not in SIGNATURES:
            raise CryptoBackendError(f"{name} is not a declared libsodium symbol")
        fn: CFunction = ctypes.CFUNCTYPE(restype, *argtypes)((name, self._lib))
        return fn

    def bind_unconverted(self, name: str) -> CFunction:
        """A binding of a checked symbol WITHOUT argtypes, through ``ctypes.PyDLL``: ctypes
        converts nothing per call and keeps the GIL for the ~1 us the call takes (argument
        conversion and the GIL round trip are a quarter of a 1 KiB AEAD call). Its callers pass
        only ctypes objects (char arrays, ``c_void_p``, ``c_ulonglong``), ``bytes`` or ``None`` -
        never a Python int, which ctypes would pass as a C int. Returns an ``int``."""
        if name not in SIGNATURES:
            raise CryptoBackendError(f"{name} is not a declared libsodium symbol")
        if self._unconverted is None:
            self._unconverted = ctypes.PyDLL(self.path)  # the same loaded library, separate function objects
        fn = getattr(self._unconverted, name)
        fn.restype = ctypes.c_int
        bound: CFunction = fn
        return bound


def _version_of(lib: ctypes.CDLL, path: str | os.PathLike[str]) -> str:
    """A system libsodium says its version; the wheel's copy is known by PyNaCl's."""
    if hasattr(lib, "sodium_version_string"):
        lib.sodium_version_string.argtypes = []
        lib.sodium_version_string.restype = ctypes.c_char_p
        return str(lib.sodium_version_string().decode("ascii"))
    try:
        pynacl = importlib.metadata.version("pynacl")
    except importlib.metadata.PackageNotFoundError:
        pynacl = "unknown"
    if pynacl != PYNACL_VERSION:
        raise CryptoBackendError(
            f"libsodium at {path} comes from PyNaCl {pynacl}; Cortex SAL pins PyNaCl {PYNACL_VERSION} "
            f"(libsodium {EXPECTED_VERSION})"
        )
    return EXPECTED_VERSION


def load() -> Sodium:
    return Sodium(os.environ.get("CORTEX_SAL_LIBSODIUM") or default_library_path())


sodium = load()
