"""Which binding each primitive calls: the one place that decides (:data:`BINDINGS`).

Three bindings reach the same libsodium 1.0.20 (the one inside the pinned PyNaCl 1.6.2 wheel,
``nacl/_sodium.abi3.so``), fastest first:

* ``cffi-api``: the compiled cffi functions of PyNaCl's extension module ``nacl._sodium``
  (``lib``), where it exposes the symbol: a call costs about a third of a ctypes call;
* ``cffi-abi``: cffi's ABI mode (``ffi.dlopen``) on the same file, for the symbols ``lib`` does
  not expose (HMAC-SHA256, Ed25519 detached): measured faster than ctypes (``bench/custody.py``);
* ``ctypes``: the binding of :mod:`cortex_sal.crypto._sodium`, which is always loaded and
  checked at import (symbols, ``sodium_init``, version): every primitive falls back to it,
  symbol by symbol.

The cffi bindings are used only when ``nacl._sodium`` is the very file the ctypes binding
loaded (so version and ``sodium_init`` are those already checked): with
``CORTEX_SAL_LIBSODIUM`` pointing at another libsodium, every primitive uses ctypes.
``CORTEX_SAL_FORCE_CTYPES`` (``all``, or primitive names separated by commas) sends primitives
to ctypes on purpose (tests, comparisons); an unknown name is refused at import.

Both cffi bindings take pointers as cdata or ``bytes``, never a Python ``int``: :data:`PTR`
turns a live secure buffer's address (taken through :mod:`._buffers`, which checks it is live)
into a cdata pointer, and :func:`function` gives, for code that is not hot, a callable with the
ctypes calling convention (ints, ``bytes``, ``None``, ctypes buffers) whatever the binding.
"""

from __future__ import annotations

import ctypes
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import CryptoBackendError
from ._scrub import UNAVAILABLE as NO_WIPE
from ._sodium import SIGNATURES, sodium

API = "cffi-api"
ABI = "cffi-abi"
CTYPES = "ctypes"

# primitive -> (its symbol in nacl._sodium.lib, or None; its libsodium symbol for ABI and ctypes)
PRIMITIVES: dict[str, tuple[str | None, str]] = {
    "aead_encrypt": ("crypto_aead_chacha20poly1305_ietf_encrypt", "crypto_aead_chacha20poly1305_ietf_encrypt"),
    "aead_decrypt": ("crypto_aead_chacha20poly1305_ietf_decrypt", "crypto_aead_chacha20poly1305_ietf_decrypt"),
    "x25519": ("crypto_scalarmult", "crypto_scalarmult_curve25519"),  # libsodium's crypto_scalarmult IS X25519
    "x25519_base": ("crypto_scalarmult_base", "crypto_scalarmult_curve25519_base"),
    "ed25519_seed_keypair": ("crypto_sign_seed_keypair", "crypto_sign_ed25519_seed_keypair"),  # crypto_sign: Ed25519
    "ed25519_sign": (None, "crypto_sign_ed25519_detached"),
    "ed25519_verify": (None, "crypto_sign_ed25519_verify_detached"),
    "hmac_sha256": (None, "crypto_auth_hmacsha256"),
    "hmac_sha256_init": (None, "crypto_auth_hmacsha256_init"),
    "hmac_sha256_update": (None, "crypto_auth_hmacsha256_update"),
    "hmac_sha256_final": (None, "crypto_auth_hmacsha256_final"),
    "memzero": ("sodium_memzero", "sodium_memzero"),
    "memcmp": ("sodium_memcmp", "sodium_memcmp"),
}

# the C declarations of every libsodium symbol above, for cffi's ABI mode
ABI_CDEF = """
int crypto_aead_chacha20poly1305_ietf_encrypt(unsigned char *c, unsigned long long *clen_p,
    const unsigned char *m, unsigned long long mlen, const unsigned char *ad, unsigned long long adlen,
    const unsigned char *nsec, const unsigned char *npub, const unsigned char *k);
int crypto_aead_chacha20poly1305_ietf_decrypt(unsigned char *m, unsigned long long *mlen_p,
    unsigned char *nsec, const unsigned char *c, unsigned long long clen, const unsigned char *ad,
    unsigned long long adlen, const unsigned char *npub, const unsigned char *k);
int crypto_scalarmult_curve25519(unsigned char *q, const unsigned char *n, const unsigned char *p);
int crypto_scalarmult_curve25519_base(unsigned char *q, const unsigned char *n);
int crypto_sign_ed25519_seed_keypair(unsigned char *pk, unsigned char *sk, const unsigned char *seed);
int crypto_sign_ed25519_detached(unsigned char *sig, unsigned long long *siglen_p, const unsigned char *m,
    unsigned long long mlen, const unsigned char *sk);
int crypto_sign_ed25519_verify_detached(const unsigned char *sig, const unsigned char *m, unsigned long long mlen,
    const unsigned char *pk);
int crypto_auth_hmacsha256(unsigned char *out, const unsigned char *in, unsigned long long inlen,
    const unsigned char *k);
int crypto_auth_hmacsha256_init(void *state, const unsigned char *key, size_t keylen);
int crypto_auth_hmacsha256_update(void *state, const unsigned char *in, unsigned long long inlen);
int crypto_auth_hmacsha256_final(void *state, unsigned char *out);
void sodium_memzero(void *pnt, size_t len);
int sodium_memcmp(const void *b1, const void *b2, size_t len);
"""

# which argument positions are pointers (the rest are lengths), from the ctypes signatures
_POINTER_ARGS: dict[str, tuple[bool, ...]] = {
    symbol: tuple(t is not ctypes.c_size_t and t is not ctypes.c_ulonglong for t in SIGNATURES[symbol][0])
    for _, symbol in PRIMITIVES.values()
}


def _check_table() -> None:
    missing = [symbol for _, symbol in PRIMITIVES.values() if symbol not in SIGNATURES]
    if missing:  # a primitive without a checked ctypes fallback: a programming error, said at import
        raise CryptoBackendError(f"no ctypes fallback declared for libsodium symbol(s): {', '.join(missing)}")


_check_table()


def forced_ctypes(setting: str | None) -> frozenset[str]:
    """The primitives ``CORTEX_SAL_FORCE_CTYPES`` sends to ctypes; an unknown name is refused."""
    if not setting:
        return frozenset()
    names = {part.strip() for part in setting.split(",") if part.strip()}
    if names == {"all"}:
        return frozenset(PRIMITIVES)
    unknown = sorted(names - set(PRIMITIVES))
    if unknown:
        raise CryptoBackendError(
            f"CORTEX_SAL_FORCE_CTYPES names unknown primitive(s) {', '.join(unknown)}; "
            f"known: all, {', '.join(PRIMITIVES)}"
        )
    return frozenset(names)


def decide(api: object | None, abi: object | None, forced: frozenset[str]) -> dict[str, str]:
    """THE decision: for each primitive, ``cffi-api`` if ``api`` (nacl's ``lib``) has its symbol,
    else ``cffi-abi`` if ``abi`` (the dlopened library) has it, else ``ctypes``; a forced one is
    ``ctypes``. A primitive no binding provides raises ``CryptoBackendError`` naming it."""
    choice: dict[str, str] = {}
    unbound = []
    for name, (api_symbol, symbol) in PRIMITIVES.items():
        if name in forced:
            choice[name] = CTYPES
        elif api is not None and api_symbol is not None and hasattr(api, api_symbol):
            choice[name] = API
        elif abi is not None and _abi_has(abi, symbol):
            choice[name] = ABI
        elif hasattr(sodium, symbol):
            choice[name] = CTYPES
        else:
            unbound.append(f"{name} ({symbol})")
    if unbound:
        raise CryptoBackendError(f"no binding provides the primitive(s): {', '.join(unbound)}")
    return choice


def _abi_has(abi: object, symbol: str) -> bool:
    try:
        getattr(abi, symbol)
    except (AttributeError, NotImplementedError):  # cffi raises AttributeError for an absent symbol
        return False
    return True


def _load_cffi() -> tuple[Any, Any, Any, str]:
    """(ffi, api lib, abi lib, why not) for the libsodium the ctypes binding loaded; Nones if none."""
    try:
        module = importlib.import_module("nacl._sodium")
    except ImportError as exc:
        return None, None, None, f"nacl._sodium cannot be imported ({exc})"
    module_file = getattr(module, "__file__", None)
    try:
        same = module_file is not None and os.path.samefile(module_file, sodium.path)
    except OSError:
        same = False
    if not same:  # CORTEX_SAL_LIBSODIUM points elsewhere: nacl's compiled functions are another library
        return None, None, None, f"the ctypes binding loaded {sodium.path}, not nacl._sodium ({module_file})"
    ffi, api = module.ffi, module.lib
    if api.sodium_init() < 0:  # already run by the ctypes binding on this same library: returns 1
        raise CryptoBackendError("sodium_init() failed (nacl._sodium)")
    try:
        cffi: Any = importlib.import_module("cffi")  # PyNaCl's own dependency (no type stubs)
        abi_ffi = cffi.FFI()
        abi_ffi.cdef(ABI_CDEF)
        abi = abi_ffi.dlopen(sodium.path)
    except (ImportError, OSError) as exc:  # ABI mode unavailable: those symbols use ctypes
        return ffi, api, None, f"cffi ABI mode unavailable ({exc})"
    return ffi, api, abi, ""


FFI, _API, _ABI, CFFI_UNAVAILABLE = _load_cffi()
FORCED = forced_ctypes(os.environ.get("CORTEX_SAL_FORCE_CTYPES"))
BINDINGS: dict[str, str] = decide(_API, _ABI, FORCED)

NULL: Any = FFI.NULL if FFI is not None else None


class _Pointers(dict[int, Any]):
    """Cdata ``unsigned char *`` for addresses already checked live (keys, slots): one cast each,
    kept (a pointer value is not a secret; it is only looked up after the liveness check)."""

    def __missing__(self, address: int) -> Any:
        if len(self) >= 4096:
            self.clear()
        p = self[address] = FFI.cast("unsigned char *", address)
        return p


PTR = _Pointers()


def raw(name: str) -> Any:
    """The bare cffi function (API or ABI mode) for a primitive, or None when it uses ctypes."""
    binding = BINDINGS[name]
    if binding == API:
        return getattr(_API, PRIMITIVES[name][0] or "")
    if binding == ABI:
        return getattr(_ABI, PRIMITIVES[name][1])
    return None


def to_cdata(arg: object) -> Any:
    """A pointer argument in the ctypes convention, as a cffi binding takes it."""
    if type(arg) is bytes:
        return arg
    if type(arg) is int:
        return PTR[arg] if arg else NULL
    if arg is None:
        return NULL
    if isinstance(arg, ctypes.c_void_p):
        return PTR[arg.value] if arg.value else NULL
    if isinstance(arg, ctypes.Array):
        return FFI.from_buffer("unsigned char[]", arg)  # a ctypes buffer of public data, in place
    return arg  # a cdata already


def function(name: str) -> Callable[..., Any]:
    """A callable for primitive ``name`` in the ctypes calling convention (pointers as ``int``,
    ``bytes``, ``None``, ``c_void_p`` or ctypes buffers; lengths as ``int``), bound to the binding
    :data:`BINDINGS` chose. For the paths that are not hot; hot paths use :func:`raw`."""
    symbol = PRIMITIVES[name][1]
    fn = raw(name)
    if fn is None:
        bound: Callable[..., Any] = getattr(sodium, symbol)
        return bound
    kinds = _POINTER_ARGS[symbol]

    def call(*args: object) -> Any:
        return fn(*[to_cdata(a) if is_pointer else a for a, is_pointer in zip(args, kinds, strict=True)])

    call.__name__ = f"{symbol} [{BINDINGS[name]}]"
    return call


@dataclass(frozen=True)
class CryptoBackend:
    """What :func:`cortex_sal.crypto.backend_info` reports: the library every primitive calls and
    the binding each primitive uses (``cffi-api``, ``cffi-abi`` or ``ctypes``)."""

    name: str
    version: str
    path: str
    bindings: tuple[tuple[str, str], ...] = ()
    note: str = ""  # why a cffi binding is not used, if it is not


def backend_info() -> CryptoBackend:
    """The loaded crypto library: its name, version, file, and each primitive's binding (the note
    also says when the scrub after each call that reads a secret cannot use its wipe,
    :mod:`cortex_sal.crypto._scrub`)."""
    notes = [CFFI_UNAVAILABLE] if CFFI_UNAVAILABLE else []
    if NO_WIPE:  # the scrub falls back to dummy calls on public data (slower, as sound)
        notes.append(f"scrub by dummy calls: {NO_WIPE}")
    if FORCED:
        notes.append(f"CORTEX_SAL_FORCE_CTYPES: {', '.join(sorted(FORCED))}")
    return CryptoBackend("libsodium", sodium.version, sodium.path, tuple(BINDINGS.items()), "; ".join(notes))
