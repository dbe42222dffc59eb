"""The Noise Protocol Framework (revision 34), suite ``25519_ChaChaPoly_SHA256``, on locked memory.

* :mod:`.patterns` - handshake patterns as data, parsed from the spec's notation;
* :mod:`.state` - ``CipherState``, ``SymmetricState``, ``HandshakeState`` (spec sections 5.1-5.3);
* :mod:`.transport` - a sans-IO transport over the two CipherStates: ordered (implicit nonce)
  or lossy (explicit nonce, replay window), with deterministic rekeying.
"""

from .patterns import PATTERNS, HandshakePattern, MessagePattern, parse_pattern
from .state import (
    MAX_MESSAGE,
    MAX_NONCE,
    MAX_PLAINTEXT,
    TAG_SIZE,
    CipherState,
    HandshakeState,
    SymmetricState,
)
from .transport import NoiseTransport

__all__ = [
    "MAX_MESSAGE",
    "MAX_NONCE",
    "MAX_PLAINTEXT",
    "PATTERNS",
    "TAG_SIZE",
    "CipherState",
    "HandshakePattern",
    "HandshakeState",
    "MessagePattern",
    "NoiseTransport",
    "SymmetricState",
    "parse_pattern",
]
