"""The oracle's tools shared by every target: :class:`OracleViolation`, :func:`require`,
:func:`refusal` (only documented ``CortexError`` subclasses), the secure arena's slot count
(:func:`live_slots`, under :func:`paused_gc`), an independent X25519 (``cryptography``) for
public keys and low-order points, the :class:`Target` base class and a scratch directory for
targets that read files.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as COracleX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as COraclePublic

from cortex_sal.errors import CortexError
from fuzzlib.plan import Plan

# --- the oracle's tools ------------------------------------------------------------------------


class OracleViolation(AssertionError):
    """An input made the code break its contract."""


def require(condition: object, what: str) -> None:
    if not condition:
        raise OracleViolation(what)


def refusal(allowed: Sequence[type[BaseException]], fn: Callable[[], Any]) -> tuple[Any, CortexError | None]:
    """``(result, None)``, or ``(None, exc)`` for a documented refusal.

    A ``CortexError`` of a type not in ``allowed`` is a violation; any other exception
    propagates as it is (it is a crash). The traceback of a refusal is dropped at once: its
    frames hold the secure buffers of the failed call.
    """
    try:
        return fn(), None
    except CortexError as exc:
        exc.__traceback__ = None
        if type(exc) not in allowed:
            raise OracleViolation(
                f"undocumented {type(exc).__name__} (allowed: {', '.join(t.__name__ for t in allowed)}): {exc}"
            ) from None
        if not str(exc).strip():
            raise OracleViolation(f"{type(exc).__name__} without a message") from None
        return None, exc


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Keep the cyclic garbage collector off for a window whose slot counts are compared.

    A secure buffer of some unrelated, earlier object freed by a collection in the middle of
    the window would change the count by chance; reference counting still frees at once.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_warm = False


def live_slots() -> tuple[int, int]:
    """Live (slots, bytes) of the secure arena, after allocating the per-thread HMAC state
    (a locked scratch buffer the crypto layer keeps for the thread's life)."""
    global _warm
    from cortex_sal.securemem.arena import arena

    if not _warm:
        from cortex_sal.crypto import hmac_sha256_into
        from cortex_sal.securemem import SecureKeyBuffer

        with SecureKeyBuffer() as key, SecureKeyBuffer() as out:
            hmac_sha256_into(key, out, b"warm up")
        _warm = True
    return arena().live_slots()


def is_bytes_like(data: object) -> bool:
    return isinstance(data, bytes | bytearray | memoryview)


def as_bytes(data: object) -> bytes:
    return bytes(data) if is_bytes_like(data) else b""  # type: ignore[arg-type]


def c_public(private: bytes) -> bytes:
    return COracleX25519.from_private_bytes(private).public_key().public_bytes_raw()


_PROBE = COracleX25519.from_private_bytes(bytes(range(7, 39)))


def low_order(public: bytes) -> bool:
    """True if X25519 with this public key gives the all-zero secret (``cryptography`` decides)."""
    try:
        _PROBE.exchange(COraclePublic.from_public_bytes(public))
    except ValueError:
        return True
    return False


# The eight points of small order on Curve25519, and non-canonical encodings of them
# (RFC 7748 section 6.1 refuses all-zero outputs; libsodium's has_small_order blocklist).
LOW_ORDER_POINTS: tuple[bytes, ...] = (
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880"),
    bytes.fromhex("4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7"),
    bytes.fromhex("d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    bytes.fromhex("daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    bytes.fromhex("dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
)


class Target:
    """A parser or state machine under fuzz. Calling it feeds one plan and checks the oracle
    (:meth:`run`); it returns a short outcome label (hypothesis records them as events)."""

    name = "target"

    def __call__(self, plan: Plan) -> str:
        with paused_gc():
            return self.run(plan)

    def run(self, plan: Plan) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Release what the target holds (sessions, shields, channels, keys, scratch files)."""
        for attr in ("session", "shield", "channel", "scratch"):
            thing = getattr(self, attr, None)
            if thing is not None:
                thing.close()
        gov = getattr(self, "gov", None)
        if gov is not None:
            for key in gov.keys:
                key.purge()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Scratch:
    """A private temporary directory for targets that read files, named after the process.

    libFuzzer ends an atheris run with C's ``exit()``, so neither ``close()`` nor ``atexit``
    runs there: each new scratch directory removes those left by processes that are gone.
    """

    def __init__(self) -> None:
        shm = Path("/dev/shm")  # memory-backed where there is one: a disk write per input is slow
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
        for stale in base.glob("cortex-fuzz-*-*"):
            pid = stale.name.split("-")[2]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"cortex-fuzz-{os.getpid()}-", dir=base))
        atexit.register(self.close)

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
