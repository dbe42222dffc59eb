"""N-of-M Ed25519 quorum: governance nodes, proposals, signatures, enactment and bundles.

A change of policy is a :class:`Proposal`. Its canonical encoding (the RFC 8785 subset
described at :func:`canonical_json`) is hashed with SHA-256; each node signs
``PROPOSAL_DOMAIN || digest`` with its Ed25519 key. :func:`enact` accepts the signatures
only if *every* one of them is from a distinct, registered, active node and verifies, there
are at least as many as the decision type requires, and (for a clinical threshold change)
the signers sit in at least three jurisdictions. The result is an :class:`EnactedBundle`
(proposal + signatures) that the shield re-verifies itself (:meth:`EnactedBundle.verify`)
before :func:`apply_bundle` builds the new, immutable :class:`ClinicalThresholds`.

Conventions:

* Time is seconds since the epoch (``float``). A proposal is valid for ``created <= now <
  expires``: at ``now == expires`` it is already expired.
* Distinct signers are counted like python-tuf counts keys for a role's threshold, except
  that here a bundle must be clean: a duplicate signer (same node id, or the same public
  key under another node id) is refused outright rather than silently ignored.
* Every refusal raises a :class:`~cortex_sal.errors.GovernanceError` subclass whose
  ``reason`` attribute is a :class:`Refusal` naming the failure.
"""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring as _encode_basestring  # the C speedup when built
from types import MappingProxyType

from .. import strict_json
from ..crypto.ed25519 import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, Ed25519SigningKey, ed25519_verify
from ..errors import (
    BundleError,
    GovernanceError,
    InvalidArgumentError,
    InvalidSignatureError,
    ProposalError,
    QuorumError,
    WrongLengthError,
    WrongTypeError,
)
from .thresholds import ClinicalThresholds

__all__ = [
    "ANTI_CAPTURE_MINIMUM",
    "MIN_CLINICAL_JURISDICTIONS",
    "PROPOSAL_DOMAIN",
    "PROPOSAL_LIFETIME_S",
    "DecisionType",
    "EnactedBundle",
    "GovernanceNode",
    "NodeRegistry",
    "Proposal",
    "Refusal",
    "Signature",
    "apply_bundle",
    "canonical_json",
    "enact",
    "required_signatures",
    "sign_proposal",
]

PROPOSAL_DOMAIN = b"cortex-governance-proposal-v1\0"
PROPOSAL_LIFETIME_S = 30 * 24 * 3600.0
MIN_CLINICAL_JURISDICTIONS = 3
ANTI_CAPTURE_MINIMUM = 9
"""M of the design: an anti-capture change needs every active node, and never fewer than 9."""

_BUNDLE_FORMAT = "cortex-governance-bundle-v1"
_REGISTRY_FORMAT = "cortex-governance-registry-v1"
_NODE_ID_RE = re.compile(r"[0-9a-f]{16}")
_JURISDICTION_RE = re.compile(r"[A-Z]{2}")
_MAX_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 32  # nesting of arrays and objects in a proposal's content (deeper is refused, not recursed into)
_MAX_JSON_DEPTH = 64  # the same for canonical JSON (a bundle wraps the content in two more objects)


class Refusal(StrEnum):
    """Why a proposal or a set of signatures was refused (the ``reason`` of the exception)."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    ALREADY_ENACTED = "already enacted"
    UNKNOWN_NODE = "unknown node"
    DEACTIVATED_NODE = "deactivated node"
    DUPLICATE_SIGNER = "duplicate signer"
    INVALID_SIGNATURE = "invalid signature"
    INSUFFICIENT_SIGNATURES = "insufficient signatures"
    INSUFFICIENT_JURISDICTIONS = "insufficient jurisdictions"
    WRONG_DECISION_TYPE = "wrong decision type"


def _refuse(cls: type[GovernanceError], reason: Refusal, detail: str) -> GovernanceError:
    exc = cls(f"{reason.value}: {detail}")
    exc.reason = reason  # type: ignore[attr-defined]  # the Refusal travels on the exception for enact's callers
    return exc


# --- RFC 8785 canonical JSON (the subset we need) ---------------------------------


def canonical_json(value: object) -> bytes:
    """RFC 8785 (JCS) canonical JSON of ``value``, UTF-8 encoded.

    Supported: ``None``/``True``/``False``; ``str`` (escapes exactly as JCS/ECMAScript
    ``JSON.stringify``: ``\\"``, ``\\\\``, ``\\b \\t \\n \\f \\r`` and ``\\u00xx`` lowercase for
    the other controls below U+0020, everything else literal UTF-8; lone surrogates refused);
    ``int`` within the IEEE-754 exact range ``|n| <= 2**53 - 1`` as a plain integer; finite
    ``float`` by the ECMAScript Number-to-String rules (shortest round-trip digits, which
    Python's ``repr`` yields, laid out as ECMAScript does: ``1e+21``, ``1e-7``, ``0.000001``,
    ``-0`` -> ``0``, integral floats without a fraction); ``list``/``tuple`` as arrays;
    mappings with ``str`` keys as objects, members sorted by the UTF-16 code units of their
    keys, no whitespace anywhere. Refused (``ProposalError``): NaN, infinities, larger ints,
    non-``str`` keys, nesting deeper than 64 arrays/objects, any other type.
    """
    out: list[str] = []
    _encode(value, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as e:
        raise ProposalError("canonical JSON: a string holds a lone surrogate") from e


def _encode(value: object, out: list[str], depth: int = 0) -> None:
    if depth > _MAX_JSON_DEPTH:
        raise ProposalError(f"canonical JSON: nested deeper than {_MAX_JSON_DEPTH} arrays or objects")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_jcs_string(value))
    elif isinstance(value, int):
        out.append(_jcs_int(value))
    elif isinstance(value, float):
        out.append(_jcs_float(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ProposalError(f"canonical JSON: object keys must be str, got {type(key).__name__}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_jcs_string(key))
            out.append(":")
            _encode(value[key], out, depth + 1)
        out.append("}")
    else:
        raise ProposalError(f"canonical JSON: cannot encode a {type(value).__name__}")


def _jcs_string(s: str) -> str:
    """RFC 8785 3.2.2.2: ``"`` and ``\\`` escaped, the short escapes for \\b \\t \\n \\f \\r, other
    controls below U+0020 as ``\\u00xx`` (lowercase hex), everything else as is. The standard
    library's C encoder (``ensure_ascii=False``) writes exactly that; a lone surrogate passes through
    here and is refused where the text is encoded to UTF-8."""
    return _encode_basestring(s)


def _jcs_int(n: int) -> str:
    if abs(n) > _MAX_SAFE_INTEGER:
        raise ProposalError(f"canonical JSON: integer {n} is outside the exact IEEE-754 range (|n| <= 2**53 - 1)")
    return str(n)


def _jcs_float(x: float) -> str:
    if not math.isfinite(x):
        raise ProposalError("canonical JSON: NaN and infinities have no JSON form")
    if x == 0:
        return "0"  # also -0.0
    sign = "-" if x < 0 else ""
    t = decimal.Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, t.digits))
    exponent = int(t.exponent)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = k + exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _freeze(value: object, where: str, depth: int = 0) -> object:
    """A deep, read-only copy of a JSON value (dicts -> mappingproxy, lists -> tuple)."""
    if depth > _MAX_DEPTH:
        raise ProposalError(f"{where}: nested deeper than {_MAX_DEPTH} arrays or objects")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        _jcs_int(value)
        return value
    if isinstance(value, float):
        _jcs_float(value)
        return value
    if isinstance(value, list | tuple):
        return tuple(_freeze(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ProposalError(f"{where}: object keys must be str, got {type(k).__name__}")
            out[k] = _freeze(v, f"{where}.{k}", depth + 1)
        return MappingProxyType(out)
    raise ProposalError(f"{where}: {type(value).__name__} is not a JSON value")


def _thaw(value: object) -> object:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _parse_int(digits: str) -> int | float:
    """JSON numbers are IEEE-754 doubles (RFC 8785): an integral literal beyond 2**53 - 1 is a float."""
    n = int(digits)
    if abs(n) <= _MAX_SAFE_INTEGER:
        return n
    try:
        return float(n)
    except OverflowError:
        raise BundleError(f"integer literal of {len(digits)} digits is beyond the IEEE-754 double range") from None


def _strict_loads(text: str | bytes) -> object:
    return strict_json.loads(text, BundleError, "", parse_int=_parse_int)


def _timestamp(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongTypeError(f"{what} must be a number of seconds since the epoch, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the double range
        value = math.inf
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{what} must be a finite, non-negative epoch time")
    return value


# --- decision types ------------------------------------------------------------------


class DecisionType(StrEnum):
    """The kinds of governance decision; :attr:`threshold` is N (``None``: all active nodes)."""

    CLINICAL_THRESHOLD_CHANGE = "clinical_threshold_change"
    CAPABILITY_MODULE = "capability_module"
    STANDARD_CHANGE = "standard_change"
    NODE_REGISTRY_CHANGE = "node_registry_change"
    ANTI_CAPTURE_CHANGE = "anti_capture_change"

    @property
    def threshold(self) -> int | None:
        return _THRESHOLDS[self]


_THRESHOLDS: dict[DecisionType, int | None] = {
    DecisionType.CLINICAL_THRESHOLD_CHANGE: 5,
    DecisionType.CAPABILITY_MODULE: 3,
    DecisionType.STANDARD_CHANGE: 7,
    DecisionType.NODE_REGISTRY_CHANGE: 5,
    DecisionType.ANTI_CAPTURE_CHANGE: None,
}


def required_signatures(decision: DecisionType, registry: NodeRegistry) -> int:
    """N for ``decision`` under ``registry``.

    An anti-capture change needs every active node and never fewer than
    :data:`ANTI_CAPTURE_MINIMUM` (so deactivating nodes cannot lower its bar).
    """
    if not isinstance(decision, DecisionType):
        raise WrongTypeError(f"decision must be a DecisionType, got {type(decision).__name__}")
    fixed = decision.threshold
    if fixed is not None:
        return fixed
    return max(ANTI_CAPTURE_MINIMUM, len(registry.active_nodes()))


# --- nodes and the registry ---------------------------------------------------------------


@dataclass(frozen=True)
class GovernanceNode:
    """A registered governance node: Ed25519 public key, institution, jurisdiction, active flag."""

    public_key: bytes
    institution: str
    jurisdiction: str
    active: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes):
            raise WrongTypeError(f"public_key must be bytes, got {type(self.public_key).__name__}")
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise WrongLengthError(f"public_key must be {PUBLIC_KEY_SIZE} bytes, got {len(self.public_key)}")
        if not isinstance(self.institution, str) or not self.institution.strip():
            raise InvalidArgumentError("institution must be a non-empty string")
        try:
            self.institution.encode("utf-8")  # the node id hashes it
        except UnicodeEncodeError:
            raise InvalidArgumentError("institution must be valid Unicode text (it holds a lone surrogate)") from None
        if not isinstance(self.jurisdiction, str) or not _JURISDICTION_RE.fullmatch(self.jurisdiction):
            raise InvalidArgumentError(
                f"jurisdiction must be an ISO 3166-1 alpha-2 code (two uppercase letters) or 'EU', "
                f"got {self.jurisdiction!r}"
            )
        if not isinstance(self.active, bool):
            raise WrongTypeError("active must be a bool")

    @property
    def node_id(self) -> str:
        """SHA-256(public_key || institution UTF-8), first 16 hex digits."""
        return hashlib.sha256(self.public_key + self.institution.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "public_key": self.public_key.hex(),
            "institution": self.institution,
            "jurisdiction": self.jurisdiction,
            "active": self.active,
        }

    @classmethod
    def from_dict(cls, d: object) -> GovernanceNode:
        if not isinstance(d, Mapping):
            raise GovernanceError("a node must be a JSON object")
        try:
            node = cls(
                public_key=bytes.fromhex(d["public_key"]),
                institution=d["institution"],
                jurisdiction=d["jurisdiction"],
                active=d["active"],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise GovernanceError(f"malformed node: {e}") from e
        if d.get("node_id", node.node_id) != node.node_id:
            raise GovernanceError("node_id does not match the public key and institution")
        return node


class NodeRegistry:
    """The registered governance nodes, by node id. A public key may be registered only once."""

    def __init__(self, nodes: Iterable[GovernanceNode] = ()) -> None:
        self._nodes: dict[str, GovernanceNode] = {}
        for node in nodes:
            self.add(node)

    def add(self, node: GovernanceNode) -> str:
        if not isinstance(node, GovernanceNode):
            raise WrongTypeError(f"expected a GovernanceNode, got {type(node).__name__}")
        if node.node_id in self._nodes:
            raise GovernanceError(f"node {node.node_id} is already registered")
        if any(n.public_key == node.public_key for n in self._nodes.values()):
            raise GovernanceError("this public key is already registered under another node")
        self._nodes[node.node_id] = node
        return node.node_id

    def deactivate(self, node_id: str) -> None:
        node = self._nodes.get(node_id)
        if node is None:
            raise _refuse(GovernanceError, Refusal.UNKNOWN_NODE, f"no node {node_id!r} in the registry")
        self._nodes[node_id] = dataclasses.replace(node, active=False)

    def get(self, node_id: str) -> GovernanceNode | None:
        return self._nodes.get(node_id)

    def active_nodes(self) -> tuple[GovernanceNode, ...]:
        return tuple(n for _, n in sorted(self._nodes.items()) if n.active)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def to_json(self) -> str:
        doc = {"format": _REGISTRY_FORMAT, "nodes": [n.to_dict() for _, n in sorted(self._nodes.items())]}
        return canonical_json(doc).decode("utf-8")

    @classmethod
    def from_json(cls, text: str | bytes) -> NodeRegistry:
        doc = _strict_loads(text)
        if not isinstance(doc, dict) or doc.get("format") != _REGISTRY_FORMAT or not isinstance(doc.get("nodes"), list):
            raise GovernanceError(f"not a {_REGISTRY_FORMAT} document")
        return cls(GovernanceNode.from_dict(d) for d in doc["nodes"])


# --- proposals ----------------------------------------------------------------------------------

_THRESHOLD_FIELDS: dict[str, type] = {
    f.name: (int if f.type in ("int", int) else float) for f in dataclasses.fields(ClinicalThresholds)
}


def _check_threshold_content(content: object) -> dict[str, object]:
    if not isinstance(content, Mapping) or not content:
        raise ProposalError("a clinical threshold change must map at least one threshold name to its new value")
    out: dict[str, object] = {}
    for name, value in content.items():
        kind = _THRESHOLD_FIELDS.get(name) if isinstance(name, str) else None
        if kind is None:
            raise ProposalError(f"{name!r} is not a clinical threshold")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProposalError(f"{name} must be a number, got {type(value).__name__}")
        if kind is int:
            if not isinstance(value, int):
                raise ProposalError(f"{name} must be an integer, got {value!r}")
            _jcs_int(value)
            out[name] = value
        else:
            try:
                value = float(value)
            except OverflowError:  # an int beyond the double range
                value = math.inf
            if not math.isfinite(value):
                raise ProposalError(f"{name} must be finite")
            out[name] = value
    return out


@dataclass(frozen=True, eq=False)
class Proposal:
    """A governance proposal; ``expires`` is always ``created + 30 days``. Deeply read-only."""

    type: DecisionType
    content: Mapping[str, object]
    citations: tuple[str, ...]
    proposer: str
    created: float
    expires: float = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.type, DecisionType):
            raise WrongTypeError(f"type must be a DecisionType, got {type(self.type).__name__}")
        if not isinstance(self.content, Mapping):
            raise ProposalError("content must be a JSON object")
        content = self.content
        if self.type is DecisionType.CLINICAL_THRESHOLD_CHANGE:
            content = _check_threshold_content(content)
        frozen = _freeze(content, "content")
        if isinstance(self.citations, str) or not isinstance(self.citations, Iterable):
            raise ProposalError("citations must be a list of strings")
        citations = tuple(self.citations)
        if not all(isinstance(c, str) and c.strip() for c in citations):
            raise ProposalError("every citation must be a non-empty string")
        if self.type is DecisionType.CLINICAL_THRESHOLD_CHANGE and not citations:
            raise ProposalError("a clinical threshold change needs at least one citation")
        if not isinstance(self.proposer, str) or not _NODE_ID_RE.fullmatch(self.proposer):
            raise ProposalError("proposer must be a node id (16 lowercase hex digits)")
        created = _timestamp(self.created, "created")
        object.__setattr__(self, "content", frozen)
        object.__setattr__(self, "citations", citations)
        object.__setattr__(self, "created", created)
        object.__setattr__(self, "expires", created + PROPOSAL_LIFETIME_S)
        self.canonical_bytes()  # what nodes sign must exist (a lone surrogate has no UTF-8): ProposalError

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type.value,
            "content": _thaw(self.content),
            "citations": list(self.citations),
            "proposer": self.proposer,
            "created": self.created,
            "expires": self.expires,
        }

    @classmethod
    def from_dict(cls, d: object) -> Proposal:
        if not isinstance(d, Mapping):
            raise ProposalError("a proposal must be a JSON object")
        extra = set(d) - {"type", "content", "citations", "proposer", "created", "expires"}
        if extra:
            raise ProposalError(f"unknown proposal fields: {sorted(extra)}")
        try:
            p = cls(
                type=DecisionType(d["type"]),
                content=d["content"],
                citations=d["citations"],
                proposer=d["proposer"],
                created=d["created"],
            )
        except (KeyError, ValueError, TypeError) as e:
            raise ProposalError(f"malformed proposal: {e}") from e
        if d.get("expires") != p.expires:
            raise ProposalError("expires must be created + 30 days")
        return p

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of the six fields (see :func:`canonical_json`)."""
        return canonical_json(self.to_dict())

    def digest(self) -> bytes:
        """SHA-256 of :meth:`canonical_bytes`: what nodes sign (after :data:`PROPOSAL_DOMAIN`)."""
        return hashlib.sha256(self.canonical_bytes()).digest()

    def signing_message(self) -> bytes:
        return PROPOSAL_DOMAIN + self.digest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Proposal):
            return NotImplemented
        return self.canonical_bytes() == other.canonical_bytes()

    def __hash__(self) -> int:
        return hash(self.digest())


@dataclass(frozen=True)
class Signature:
    """One node's Ed25519 signature over ``PROPOSAL_DOMAIN || proposal.digest()``."""

    node_id: str
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str):
            raise WrongTypeError("node_id must be a str")
        if not _NODE_ID_RE.fullmatch(self.node_id):
            raise InvalidArgumentError("node_id must be a node id (16 lowercase hex digits)")
        if not isinstance(self.signature, bytes):
            raise WrongTypeError(f"signature must be bytes, got {type(self.signature).__name__}")
        if len(self.signature) != SIGNATURE_SIZE:
            raise WrongLengthError(f"signature must be {SIGNATURE_SIZE} bytes, got {len(self.signature)}")

    def to_dict(self) -> dict[str, str]:
        return {"node_id": self.node_id, "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, d: object) -> Signature:
        if not isinstance(d, Mapping) or set(d) != {"node_id", "signature"}:
            raise BundleError("a signature must be an object with node_id and signature")
        try:
            return cls(node_id=d["node_id"], signature=bytes.fromhex(d["signature"]))
        except (TypeError, ValueError) as e:
            raise BundleError(f"malformed signature: {e}") from e


def sign_proposal(proposal: Proposal, signing_key: Ed25519SigningKey, node: GovernanceNode) -> Signature:
    """Sign ``proposal`` as ``node``; refuses a key that is not the node's registered key."""
    if not isinstance(proposal, Proposal):
        raise WrongTypeError(f"expected a Proposal, got {type(proposal).__name__}")
    if not isinstance(signing_key, Ed25519SigningKey):
        raise WrongTypeError(f"expected an Ed25519SigningKey, got {type(signing_key).__name__}")
    if not isinstance(node, GovernanceNode):
        raise WrongTypeError(f"expected a GovernanceNode, got {type(node).__name__}")
    if signing_key.public_key() != node.public_key:
        raise InvalidArgumentError("this signing key does not belong to this node")
    return Signature(node.node_id, signing_key.sign(proposal.signing_message()))


# --- enactment ----------------------------------------------------------------------------------

AuditHook = Callable[[str, Mapping[str, object]], None]


def _digest_seen(digest: bytes, enacted: object) -> bool:
    if enacted is None:
        return False
    return digest in enacted or digest.hex() in enacted  # type: ignore[operator]  # the caller's container of digests, bytes or hex


def _check_quorum(
    proposal: Proposal,
    signatures: Iterable[Signature],
    registry: NodeRegistry,
    now: object,
    enacted_digests: object,
) -> tuple[Signature, ...]:
    if not isinstance(proposal, Proposal):
        raise WrongTypeError(f"expected a Proposal, got {type(proposal).__name__}")
    if not isinstance(registry, NodeRegistry):
        raise WrongTypeError(f"expected a NodeRegistry, got {type(registry).__name__}")
    now = _timestamp(now, "now")
    digest = proposal.digest()
    short = digest.hex()[:16]
    if _digest_seen(digest, enacted_digests):
        raise _refuse(ProposalError, Refusal.ALREADY_ENACTED, f"proposal {short} was already enacted")
    if now >= proposal.expires:
        raise _refuse(ProposalError, Refusal.EXPIRED, f"proposal {short} expired at {proposal.expires!r}")
    if now < proposal.created:
        raise _refuse(ProposalError, Refusal.NOT_YET_VALID, f"proposal {short} is dated after now")
    message = PROPOSAL_DOMAIN + digest
    sigs = tuple(signatures)
    seen_nodes: set[str] = set()
    seen_keys: set[bytes] = set()
    jurisdictions: set[str] = set()
    for sig in sigs:
        if not isinstance(sig, Signature):
            raise WrongTypeError(f"expected a Signature, got {type(sig).__name__}")
        node = registry.get(sig.node_id)
        if node is None:
            raise _refuse(QuorumError, Refusal.UNKNOWN_NODE, f"node {sig.node_id!r} is not registered")
        if not node.active:
            raise _refuse(QuorumError, Refusal.DEACTIVATED_NODE, f"node {sig.node_id} is deactivated")
        if sig.node_id in seen_nodes or node.public_key in seen_keys:
            raise _refuse(QuorumError, Refusal.DUPLICATE_SIGNER, f"node {sig.node_id} signed more than once")
        try:
            ed25519_verify(node.public_key, message, sig.signature)
        except InvalidSignatureError as e:
            raise _refuse(
                QuorumError, Refusal.INVALID_SIGNATURE, f"signature of node {sig.node_id} does not verify"
            ) from e
        seen_nodes.add(sig.node_id)
        seen_keys.add(node.public_key)
        jurisdictions.add(node.jurisdiction)
    required = required_signatures(proposal.type, registry)
    if len(seen_nodes) < required:
        raise _refuse(
            QuorumError,
            Refusal.INSUFFICIENT_SIGNATURES,
            f"{proposal.type.value} needs {required} distinct signers, got {len(seen_nodes)}",
        )
    if proposal.type is DecisionType.CLINICAL_THRESHOLD_CHANGE and len(jurisdictions) < MIN_CLINICAL_JURISDICTIONS:
        raise _refuse(
            QuorumError,
            Refusal.INSUFFICIENT_JURISDICTIONS,
            f"a clinical threshold change needs signers in {MIN_CLINICAL_JURISDICTIONS} jurisdictions, "
            f"got {len(jurisdictions)}",
        )
    return sigs


@dataclass(frozen=True)
class EnactedBundle:
    """An enacted decision: the proposal and the signatures that made its quorum."""

    proposal: Proposal
    signatures: tuple[Signature, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.proposal, Proposal):
            raise WrongTypeError(f"expected a Proposal, got {type(self.proposal).__name__}")
        object.__setattr__(self, "signatures", tuple(self.signatures))

    def verify(self, registry: NodeRegistry, now: float, *, enacted_digests: object = None) -> None:
        """Re-check everything against ``registry`` at ``now``; raise on any failure.

        The proposal must still be within its validity window: a bundle is applied before its
        proposal expires. Pass ``enacted_digests`` to refuse a bundle already applied.
        """
        _check_quorum(self.proposal, self.signatures, registry, now, enacted_digests)

    def to_json(self) -> str:
        doc = {
            "format": _BUNDLE_FORMAT,
            "proposal": self.proposal.to_dict(),
            "signatures": [s.to_dict() for s in self.signatures],
        }
        return canonical_json(doc).decode("utf-8")

    @classmethod
    def from_json(cls, text: str | bytes) -> EnactedBundle:
        doc = _strict_loads(text)
        if not isinstance(doc, dict) or set(doc) != {"format", "proposal", "signatures"}:
            raise BundleError("a bundle is an object with format, proposal and signatures")
        if doc["format"] != _BUNDLE_FORMAT:
            raise BundleError(f"unknown bundle format {doc['format']!r}")
        if not isinstance(doc["signatures"], list):
            raise BundleError("signatures must be a list")
        try:
            proposal = Proposal.from_dict(doc["proposal"])
        except (ProposalError, WrongTypeError, InvalidArgumentError) as e:
            raise BundleError(f"bundle proposal is malformed: {e}") from e
        return cls(proposal, tuple(Signature.from_dict(s) for s in doc["signatures"]))


def enact(
    proposal: Proposal,
    signatures: Iterable[Signature],
    registry: NodeRegistry,
    *,
    now: float,
    enacted_digests: set,
    audit: AuditHook | None = None,
) -> EnactedBundle:
    """Enact ``proposal`` if ``signatures`` make its quorum; add its digest to ``enacted_digests``.

    Refusals raise :class:`ProposalError` (expired, not yet valid, already enacted) or
    :class:`QuorumError` (unknown, deactivated or duplicate signer, invalid signature, too
    few signers or jurisdictions), each with a ``reason``. ``audit``, if given, is called
    with ``("governance.enacted" | "governance.refused", details)``; ``proposal`` is the full
    64-hex digest of the proposal (a content digest, not an identifier); signers are node ids.
    """
    if not isinstance(enacted_digests, set):
        raise WrongTypeError("enacted_digests must be a set of proposal digests")
    try:
        sigs = _check_quorum(proposal, signatures, registry, now, enacted_digests)
    except GovernanceError as e:
        if audit is not None:
            audit(
                "governance.refused",
                {"proposal": proposal.digest().hex(), "reason": getattr(e, "reason", Refusal.INVALID_SIGNATURE)},
            )
        raise
    digest = proposal.digest()
    enacted_digests.add(digest)
    if audit is not None:
        audit("governance.enacted", {"proposal": digest.hex(), "signers": sorted(s.node_id for s in sigs)})
    return EnactedBundle(proposal, sigs)


def apply_bundle(
    current: ClinicalThresholds,
    bundle: EnactedBundle,
    registry: NodeRegistry,
    now: float,
    *,
    enacted_digests: object = None,
) -> ClinicalThresholds:
    """Verify ``bundle`` and return NEW thresholds with its change; ``current`` is never touched.

    All-or-nothing: the new policy is fully built before it is returned; any failure raises.
    """
    if not isinstance(current, ClinicalThresholds):
        raise WrongTypeError(f"expected ClinicalThresholds, got {type(current).__name__}")
    if not isinstance(bundle, EnactedBundle):
        raise WrongTypeError(f"expected an EnactedBundle, got {type(bundle).__name__}")
    if bundle.proposal.type is not DecisionType.CLINICAL_THRESHOLD_CHANGE:
        raise _refuse(
            BundleError, Refusal.WRONG_DECISION_TYPE, f"a {bundle.proposal.type.value} bundle cannot change thresholds"
        )
    bundle.verify(registry, now, enacted_digests=enacted_digests)
    change = _check_threshold_content(bundle.proposal.content)
    values = {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
    values.update(change)
    return ClinicalThresholds(**values)
