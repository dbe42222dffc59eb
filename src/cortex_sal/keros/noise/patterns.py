"""Noise handshake patterns as data, parsed from the spec's own notation (revision 34, section 7).

``SPEC_PATTERNS`` below is the text of sections 7.4 (one-way), 7.5 (fundamental interactive)
and 7.6 (deferred) exactly as the spec writes it: a pattern name, then the pre-messages, a
``...`` line, then one message per line (``->`` from the initiator, ``<-`` from the responder).
:func:`parse_pattern` turns one protocol name (``Noise_XXpsk3_25519_ChaChaPoly_SHA256`` or just
``XXpsk3``) into an immutable :class:`HandshakePattern`, applying the ``pskN`` modifiers of
section 9.2: ``psk0`` puts a ``psk`` token at the start of the first message, ``pskN`` (N >= 1)
at the end of the N-th message.

Only the ``25519_ChaChaPoly_SHA256`` suite exists here; any other name is refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ...errors import InvalidArgumentError, WrongTypeError

SUITE = "25519_ChaChaPoly_SHA256"

TOKENS = frozenset({"e", "s", "ee", "es", "se", "ss", "psk"})
DH_TOKENS = frozenset({"ee", "es", "se", "ss"})
DHLEN = 32
TAG_LEN = 16

# The spec's notation, sections 7.4-7.6.
SPEC_PATTERNS = """
N:
  <- s
  ...
  -> e, es

K:
  -> s
  <- s
  ...
  -> e, es, ss

X:
  <- s
  ...
  -> e, es, s, ss

NN:
  -> e
  <- e, ee

NK:
  <- s
  ...
  -> e, es
  <- e, ee

NX:
  -> e
  <- e, ee, s, es

XN:
  -> e
  <- e, ee
  -> s, se

XK:
  <- s
  ...
  -> e, es
  <- e, ee
  -> s, se

XX:
  -> e
  <- e, ee, s, es
  -> s, se

KN:
  -> s
  ...
  -> e
  <- e, ee, se

KK:
  -> s
  <- s
  ...
  -> e, es, ss
  <- e, ee, se

KX:
  -> s
  ...
  -> e
  <- e, ee, se, s, es

IN:
  -> e, s
  <- e, ee, se

IK:
  <- s
  ...
  -> e, es, s, ss
  <- e, ee, se

IX:
  -> e, s
  <- e, ee, se, s, es

NK1:
  <- s
  ...
  -> e
  <- e, ee, es

NX1:
  -> e
  <- e, ee, s
  -> es

X1N:
  -> e
  <- e, ee
  -> s
  <- se

X1K:
  <- s
  ...
  -> e, es
  <- e, ee
  -> s
  <- se

XK1:
  <- s
  ...
  -> e
  <- e, ee, es
  -> s, se

X1K1:
  <- s
  ...
  -> e
  <- e, ee, es
  -> s
  <- se

X1X:
  -> e
  <- e, ee, s, es
  -> s
  <- se

XX1:
  -> e
  <- e, ee, s
  -> es, s, se

X1X1:
  -> e
  <- e, ee, s
  -> es, s
  <- se

K1N:
  -> s
  ...
  -> e
  <- e, ee
  -> se

K1K:
  -> s
  <- s
  ...
  -> e, es
  <- e, ee
  -> se

KK1:
  -> s
  <- s
  ...
  -> e
  <- e, ee, se, es

K1K1:
  -> s
  <- s
  ...
  -> e
  <- e, ee, es
  -> se

K1X:
  -> s
  ...
  -> e
  <- e, ee, s, es
  -> se

KX1:
  -> s
  ...
  -> e
  <- e, ee, se, s
  -> es

K1X1:
  -> s
  ...
  -> e
  <- e, ee, s
  -> se, es

I1N:
  -> e, s
  <- e, ee
  -> se

I1K:
  <- s
  ...
  -> e, es, s
  <- e, ee
  -> se

IK1:
  <- s
  ...
  -> e, s
  <- e, ee, se, es

I1K1:
  <- s
  ...
  -> e, s
  <- e, ee, es
  -> se

I1X:
  -> e, s
  <- e, ee, s, es
  -> se

IX1:
  -> e, s
  <- e, ee, se, s
  -> es

I1X1:
  -> e, s
  <- e, ee, s
  -> se, es
"""


@dataclass(frozen=True)
class MessagePattern:
    """One handshake message: who sends it and its tokens, in order."""

    from_initiator: bool
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class RoleFacts:
    """What one role (initiator or responder) of a pattern needs and does, computed once."""

    static_needed: bool  # this side's static key pair is used (sent, pre-known, or in a DH)
    remote_static_premessage: bool  # the peer's static public key must be known in advance
    remote_static_transmitted: bool  # the peer sends its static public key during the handshake
    remote_ephemeral_premessage: bool
    local_ephemeral_premessage: bool
    sends_e: bool  # this side generates an ephemeral key
    e_uses: int  # DH tokens that use this side's ephemeral private key
    s_uses: int  # DH tokens that use this side's static private key


def _role_facts(initiator_pre: tuple[str, ...], responder_pre: tuple[str, ...], messages: tuple[MessagePattern, ...],
                initiator: bool) -> RoleFacts:  # fmt: skip
    mine_pre, theirs_pre = (initiator_pre, responder_pre) if initiator else (responder_pre, initiator_pre)
    tokens = [t for m in messages for t in m.tokens]
    # es = DH(initiator e, responder s); se = DH(initiator s, responder e)
    mine_e = {"ee", "es"} if initiator else {"ee", "se"}
    mine_s = {"se", "ss"} if initiator else {"es", "ss"}
    sends_s = any(m.from_initiator == initiator and "s" in m.tokens for m in messages)
    s_uses = sum(t in mine_s for t in tokens)
    return RoleFacts(
        static_needed="s" in mine_pre or sends_s or s_uses > 0,
        remote_static_premessage="s" in theirs_pre,
        remote_static_transmitted=any(m.from_initiator != initiator and "s" in m.tokens for m in messages),
        remote_ephemeral_premessage="e" in theirs_pre,
        local_ephemeral_premessage="e" in mine_pre,
        sends_e=any(m.from_initiator == initiator and "e" in m.tokens for m in messages),
        e_uses=sum(t in mine_e for t in tokens),
        s_uses=s_uses,
    )


@dataclass(frozen=True)
class HandshakePattern:
    """A handshake pattern with its modifiers applied.

    ``initiator_pre``/``responder_pre`` are the pre-message tokens (public keys known in
    advance); ``messages`` alternate direction, starting with the initiator. The derived
    fields (``psk_count``, ``layouts``, the per-role facts) are computed once, here.
    """

    name: str  # with modifiers, e.g. "XXpsk3"
    base: str  # e.g. "XX"
    initiator_pre: tuple[str, ...]
    responder_pre: tuple[str, ...]
    messages: tuple[MessagePattern, ...]
    psk_count: int = field(init=False, compare=False)
    # per message: (bytes before the payload, tag bytes after it) - the cipher has a key from
    # the first DH or psk token (or, in a psk pattern, the first e token) on
    layouts: tuple[tuple[int, int], ...] = field(init=False, compare=False, repr=False)
    initiator_facts: RoleFacts = field(init=False, compare=False, repr=False)
    responder_facts: RoleFacts = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        psk_count = sum(m.tokens.count("psk") for m in self.messages)
        has_key = False
        layouts = []
        for m in self.messages:
            fixed = 0
            for token in m.tokens:
                if token == "e":
                    fixed += DHLEN
                    has_key = has_key or psk_count > 0
                elif token == "s":
                    fixed += DHLEN + (TAG_LEN if has_key else 0)
                else:
                    has_key = True
            layouts.append((fixed, TAG_LEN if has_key else 0))
        pre = (self.initiator_pre, self.responder_pre, self.messages)
        object.__setattr__(self, "psk_count", psk_count)
        object.__setattr__(self, "layouts", tuple(layouts))
        object.__setattr__(self, "initiator_facts", _role_facts(*pre, True))
        object.__setattr__(self, "responder_facts", _role_facts(*pre, False))

    @property
    def one_way(self) -> bool:
        """A one-way pattern (N, K, X and their psk variants): one message, initiator to responder;
        after it only the initiator sends transport messages."""
        return len(self.messages) == 1

    @property
    def is_psk(self) -> bool:
        return self.psk_count > 0

    def protocol_name(self) -> str:
        return f"Noise_{self.name}_{SUITE}"

    def facts(self, initiator: bool) -> RoleFacts:
        return self.initiator_facts if initiator else self.responder_facts

    def local_static_needed(self, initiator: bool) -> bool:
        return self.facts(initiator).static_needed

    def remote_static_premessage(self, initiator: bool) -> bool:
        return self.facts(initiator).remote_static_premessage

    def remote_static_transmitted(self, initiator: bool) -> bool:
        return self.facts(initiator).remote_static_transmitted


def _parse_line(line: str, where: str) -> tuple[bool, tuple[str, ...]]:
    arrow, _, rest = line.strip().partition(" ")
    if arrow not in ("->", "<-"):
        raise InvalidArgumentError(f"{where}: a message line starts with -> or <-, got {line.strip()!r}")
    tokens = tuple(t.strip() for t in rest.split(","))
    unknown = [t for t in tokens if t not in TOKENS]
    if unknown:
        raise InvalidArgumentError(f"{where}: unknown token(s) {unknown}")
    return arrow == "->", tokens


def parse_spec(text: str) -> dict[str, HandshakePattern]:
    """Every pattern written in the spec's notation in ``text``, by name."""
    out: dict[str, HandshakePattern] = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        name = lines[0].strip().rstrip(":")
        body = lines[1:]
        if any(ln.strip() == "..." for ln in body):
            split_at = next(i for i, ln in enumerate(body) if ln.strip() == "...")
            pre_lines, msg_lines = body[:split_at], body[split_at + 1 :]
        else:
            pre_lines, msg_lines = [], body
        initiator_pre: tuple[str, ...] = ()
        responder_pre: tuple[str, ...] = ()
        for ln in pre_lines:
            from_initiator, tokens = _parse_line(ln, f"pattern {name} pre-message")
            if from_initiator:
                initiator_pre = tokens
            else:
                responder_pre = tokens
        messages = tuple(MessagePattern(*_parse_line(ln, f"pattern {name}")) for ln in msg_lines)
        for i, m in enumerate(messages):
            if m.from_initiator != (i % 2 == 0):
                raise InvalidArgumentError(f"pattern {name}: messages must alternate, starting with the initiator")
        out[name] = HandshakePattern(name, name, initiator_pre, responder_pre, messages)
    return out


PATTERNS: dict[str, HandshakePattern] = parse_spec(SPEC_PATTERNS)

_NAME = re.compile(r"(?P<base>[NKXI]1?(?:[NKX]1?)?)(?P<mods>(?:psk\d+)(?:\+psk\d+)*)?")


def _apply_psk(pattern: HandshakePattern, mods: str) -> HandshakePattern:
    messages = [list(m.tokens) for m in pattern.messages]
    for mod in mods.split("+"):
        n = int(mod[3:])
        if n == 0:
            messages[0].insert(0, "psk")
        elif n <= len(messages):
            messages[n - 1].append("psk")
        else:
            raise InvalidArgumentError(f"modifier {mod} refers to message {n}, but {pattern.base} has {len(messages)}")
    return HandshakePattern(
        pattern.base + mods,
        pattern.base,
        pattern.initiator_pre,
        pattern.responder_pre,
        tuple(MessagePattern(m.from_initiator, tuple(t)) for m, t in zip(pattern.messages, messages, strict=True)),
    )


def parse_pattern(name: str | bytes) -> HandshakePattern:
    """The pattern of a full protocol name (``Noise_XX_25519_ChaChaPoly_SHA256``) or of a bare
    pattern name with modifiers (``XX``, ``NNpsk0``, ``IKpsk1+psk2``)."""
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidArgumentError("a Noise protocol name is ASCII") from None
    if not isinstance(name, str):
        raise WrongTypeError(f"protocol name must be str or bytes, got {type(name).__name__}")
    return _parse(name)


@functools.lru_cache(maxsize=256)
def _parse(name: str) -> HandshakePattern:
    pattern_name = name
    if name.startswith("Noise_"):
        parts = name.split("_")
        if len(parts) != 5:
            raise InvalidArgumentError(f"{name!r} is not Noise_<pattern>_<DH>_<cipher>_<hash>")
        pattern_name = parts[1]
        suite = "_".join(parts[2:])
        if suite != SUITE:
            raise InvalidArgumentError(f"only the {SUITE} suite is implemented, not {suite}")
    m = _NAME.fullmatch(pattern_name)
    if m is None or m.group("base") not in PATTERNS:
        raise InvalidArgumentError(f"unknown or unsupported handshake pattern {pattern_name!r}")
    base = PATTERNS[m.group("base")]
    mods = m.group("mods")
    return _apply_psk(base, mods) if mods else base


__all__ = [
    "DH_TOKENS",
    "PATTERNS",
    "SPEC_PATTERNS",
    "SUITE",
    "TOKENS",
    "HandshakePattern",
    "MessagePattern",
    "RoleFacts",
    "parse_pattern",
    "parse_spec",
]
