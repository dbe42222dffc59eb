"""Targets of the governance domain layer (``cortex_sal.governance``): enacted bundles, the
node registry, the CLI's JSON loaders and the audit trail (JSONL export, SQLite file).
Imports only ``governance`` and the layers below.
"""

from __future__ import annotations

import hashlib
import json

from fuzzlib.oracle import Target, as_bytes, refusal, require
from fuzzlib.plan import Plan, json_message

NOW = 1_800_000_100.0


class _Governance:
    """A registry of six nodes in four jurisdictions and a clinical bundle signed by five."""

    def __init__(self) -> None:
        from cortex_sal.crypto import Ed25519SigningKey
        from cortex_sal.governance.quorum import (
            DecisionType,
            GovernanceNode,
            NodeRegistry,
            Proposal,
            Signature,
            enact,
        )
        from cortex_sal.securemem import SecureKeyBuffer

        places = ("DE", "FR", "US", "JP", "EU", "DE")
        self.keys = [Ed25519SigningKey(SecureKeyBuffer(hashlib.sha256(b"node %d" % i).digest())) for i in range(6)]
        self.nodes = [GovernanceNode(k.public_key(), f"Institute {i}", places[i]) for i, k in enumerate(self.keys)]
        self.registry = NodeRegistry(self.nodes)
        self.proposal = Proposal(
            DecisionType.CLINICAL_THRESHOLD_CHANGE,
            {"bridge_max_std": 0.45, "min_bits": 14},
            ("doi:10.0000/fuzz",),
            self.nodes[0].node_id,
            NOW - 100.0,
        )
        message = self.proposal.signing_message()
        sigs = [Signature(n.node_id, k.sign(message)) for n, k in zip(self.nodes, self.keys, strict=True)]
        self.bundle = enact(self.proposal, sigs[:5], self.registry, now=NOW, enacted_digests=set())
        self.signatures = sigs


class BundleTarget(Target):
    """``EnactedBundle.from_json`` then ``verify``: ``BundleError`` on parsing; a bundle that
    verifies is the original one (same proposal, same signatures)."""

    name = "bundle"

    def __init__(self) -> None:
        self.gov = _Governance()
        self.text = self.gov.bundle.to_json().encode()
        self.doc = json.loads(self.text)
        signatures = {s.to_dict()["signature"] for s in self.gov.bundle.signatures}
        self.original = (self.gov.proposal.canonical_bytes(), signatures)

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import BundleError, ProposalError, QuorumError
        from cortex_sal.governance.quorum import EnactedBundle

        data = json_message(plan, self.doc, self.text)
        text = data if isinstance(data, str | bytes) else as_bytes(data)
        bundle, exc = refusal((BundleError,), lambda: EnactedBundle.from_json(text))
        if exc is not None:
            return "refused"
        again = EnactedBundle.from_json(bundle.to_json())
        require(again.to_json() == bundle.to_json(), "a parsed bundle does not round-trip")
        _, bad = refusal((ProposalError, QuorumError), lambda: bundle.verify(self.gov.registry, NOW))
        if bad is not None:
            return "parsed, not verified"
        got = (bundle.proposal.canonical_bytes(), {s.to_dict()["signature"] for s in bundle.signatures})
        require(got == self.original and len(bundle.signatures) == 5, "a changed bundle verified")
        return "verified"


class NodeRegistryTarget(Target):
    """``NodeRegistry.from_json``: a registry that round-trips, or a ``GovernanceError``."""

    name = "node_registry"

    def __init__(self) -> None:
        self.gov = _Governance()
        self.text = self.gov.registry.to_json().encode()
        self.doc = json.loads(self.text)

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import BundleError, GovernanceError
        from cortex_sal.governance.quorum import NodeRegistry

        data = json_message(plan, self.doc, self.text)
        text = data if isinstance(data, str | bytes) else as_bytes(data)
        registry, exc = refusal((GovernanceError, BundleError), lambda: NodeRegistry.from_json(text))
        if exc is not None:
            return "refused"
        require(NodeRegistry.from_json(registry.to_json()).to_json() == registry.to_json(), "no round trip")
        return "parsed"
