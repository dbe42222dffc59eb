"""The one exception hierarchy of Cortex SAL.

Every public function refuses bad input with a subclass of :class:`CortexError`.
Messages say what was wrong (type, size, state) and never carry secret material.
Where a Python built-in meaning applies, the class also derives from it
(``TypeError``/``ValueError``) so ordinary ``except`` clauses keep working.
"""

from __future__ import annotations


class CortexError(Exception):
    """Base class of every error raised by Cortex SAL."""


# --- bad arguments -------------------------------------------------------


class InvalidArgumentError(CortexError, ValueError):
    """An argument has an acceptable type but an unacceptable value."""


class WrongTypeError(CortexError, TypeError):
    """An argument has the wrong type."""


class WrongLengthError(InvalidArgumentError):
    """A bytes-like argument has the wrong length."""


class NotCopyableError(CortexError, TypeError):
    """A secret-holding object was asked to be pickled or copied."""


# --- secure memory -------------------------------------------------------


class SecureMemoryError(CortexError):
    """Locked memory could not be obtained, protected, or released safely."""


class MemoryLockError(SecureMemoryError):
    """The lock policy is ``strict`` and the kernel refused a protection."""


class CanaryCorruptedError(SecureMemoryError):
    """A slot's canary was overwritten: something wrote past a secret's end.

    The slot has been wiped all the same before this is raised.
    """


class PurgedBufferError(SecureMemoryError):
    """A secure buffer was used after it was purged (it never reads as zeros)."""


class ForkedBufferError(PurgedBufferError):
    """A secure buffer inherited across ``fork()``: the kernel wiped it in the child."""


# --- cryptography --------------------------------------------------------


class CryptoError(CortexError):
    """A cryptographic operation failed."""


class CryptoBackendError(CryptoError):
    """The crypto backend (libsodium) is missing, of the wrong version, or lacks a symbol."""


class LowOrderPointError(CryptoError):
    """An X25519 public key is a low-order point: the shared secret would be all zeros."""


class DecryptionError(CryptoError):
    """An AEAD ciphertext failed authentication (wrong key, nonce, AAD, or tampering)."""


class InvalidSignatureError(CryptoError):
    """An Ed25519 signature does not verify for this key and message."""
