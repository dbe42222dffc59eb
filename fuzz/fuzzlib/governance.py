"""Targets of the governance domain layer (``cortex_sal.governance``): enacted bundles, the
node registry, the CLI's JSON loaders and the audit trail (JSONL export, SQLite file).
Imports only ``governance`` and the layers below.
"""

from __future__ import annotations

import hashlib
import json

from fuzzlib.keros import T0
from fuzzlib.oracle import Target, _Scratch, as_bytes, is_bytes_like, refusal, require
from fuzzlib.plan import Plan, Spec, dump_json, json_message, message, mutate_json

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


class CliLoaderTarget(Target):
    """The governance CLI's file loaders (node, proposal, signature, registry, bundle): a
    value or a ``GovernanceError`` subclass the CLI turns into exit code 2."""

    def __init__(self, which: str) -> None:
        from cortex_sal.store import governance as files

        self.name = f"cli_{which}"
        self.gov = _Governance()
        self.scratch = _Scratch()
        docs = {
            "node": self.gov.nodes[1].to_dict(),
            "proposal": self.gov.proposal.to_dict(),
            "signature": {**self.gov.signatures[2].to_dict(), "proposal_hash": self.gov.proposal.digest().hex()},
        }
        self.doc = docs[which]
        self.text = dump_json(self.doc)
        self.load = {"node": files.load_node, "proposal": files.load_proposal, "signature": files.load_signature}[which]

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import BundleError, CliInputError, GovernanceError, ProposalError

        data = json_message(plan, self.doc, self.text)
        path = self.scratch.write("input.json", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        allowed = {
            "cli_node": (CliInputError, GovernanceError),
            "cli_proposal": (CliInputError, ProposalError),
            "cli_signature": (CliInputError, BundleError),
        }[self.name]
        value, exc = refusal(allowed, lambda: self.load(path))
        if exc is not None:
            return "refused"
        require(value.to_dict() is not None, "loaded value cannot be written back")
        return "loaded"


class AuditJsonlTarget(Target):
    """``verify_jsonl`` on mutated exports: a ``VerifyResult``, never an exception; ``ok`` only
    for the original entries (or a prefix of them, when no retained head is given)."""

    name = "audit_jsonl"

    def __init__(self) -> None:
        from cortex_sal.clock import ManualClock
        from cortex_sal.store.audit import AuditTrail

        self.scratch = _Scratch()
        clock = ManualClock(T0)
        with AuditTrail(self.scratch.dir / "trail.db", clock=clock) as trail:
            trail.append("proposal_submitted", proposal_hash="ab" * 32, signers=5)
            clock.advance(1.5)
            trail.append("signature_added", node_hash="0123456789abcdef", valid=True)
            clock.advance(0.25)
            trail.append("proposal_enacted", proposal_hash="ab" * 32, jurisdictions=3, weight=0.5)
            self.head = trail.export_jsonl(self.scratch.dir / "export.jsonl")
            self.records = [e.to_record() for e in trail.entries()]
        self.text = (self.scratch.dir / "export.jsonl").read_bytes()
        lines = self.text.split(b"\n")
        at, fields = 0, []
        for line in lines:
            fields.append((at, at + len(line) + 1))
            at += len(line) + 1
        self.spec = Spec(fields=tuple(fields))

    def run(self, plan: Plan) -> str:
        from cortex_sal.store.audit import verify_jsonl

        if plan.kind == "mutate" and plan.base % 2:
            doc = mutate_json(self.records, plan.mutations)
            if isinstance(doc, list):
                data = b"".join(dump_json(r) + b"\n" for r in doc)
            else:
                data = dump_json(doc)
        else:
            data = message(plan, self.text, self.spec)
        path = self.scratch.write("export.jsonl", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        head = self.head if plan.base % 4 >= 2 else None
        result = verify_jsonl(path, expected_head=head)
        if not result.ok:
            require(result.first_bad_index is not None and result.reason, "a failed verification says nothing")
            return "not ok"
        got = [json.loads(line) for line in path.read_bytes().decode("ascii").splitlines() if line.strip()]
        require(got == self.records[: len(got)], "a changed export verified")
        require(head is None or len(got) == len(self.records), "a truncated export verified against the head")
        return "ok"


class AuditDbTarget(Target):
    """``AuditTrail`` opened on a mutated SQLite file: ``AuditError`` or a trail whose
    ``verify()`` answers; ``ok`` only for the original entries."""

    name = "audit_db"

    def __init__(self) -> None:
        from cortex_sal.clock import ManualClock
        from cortex_sal.store.audit import AuditTrail

        self.scratch = _Scratch()
        clock = ManualClock(T0)
        db = self.scratch.dir / "base.db"
        with AuditTrail(db, clock=clock) as trail:
            trail.append("proposal_submitted", proposal_hash="cd" * 32)
            trail.append("node_registered", node_hash="0123456789abcdef", active=True)
            self.records = [e.to_record() for e in trail.entries()]
        self.data = db.read_bytes()
        pages = len(self.data) // 4096
        self.spec = Spec(fields=tuple((4096 * i, 4096 * (i + 1)) for i in range(pages)) or ((0, 100),))

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import AuditError
        from cortex_sal.store.audit import AuditTrail

        data = message(plan, self.data, self.spec)
        path = self.scratch.write("trail.db", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        for extra in ("trail.db-journal", "trail.db-wal"):
            (self.scratch.dir / extra).unlink(missing_ok=True)
        trail, exc = refusal((AuditError,), lambda: AuditTrail(path))
        if exc is not None:
            return "refused"
        try:
            result, _ = refusal((AuditError,), trail.verify)
            entries, bad = refusal((AuditError,), lambda: [e.to_record() for e in trail.entries()])
            if result is not None and result.ok:
                require(bad is None and entries in (self.records, []), "a changed trail verified")
                return "ok" if entries else "ok (empty file: a new trail)"
            return "not ok"
        finally:
            trail.close()
