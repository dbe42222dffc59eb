"""Targets of the store layer (``cortex_sal.store``): files read from disk - the sensor registry,
the governance CLI's node, proposal and signature files, the audit trail's JSONL export and its
SQLite database."""

from __future__ import annotations

import json
import math

from fuzzlib.governance import _Governance
from fuzzlib.keros import T0
from fuzzlib.oracle import Target, _Scratch, as_bytes, is_bytes_like, refusal, require
from fuzzlib.plan import Plan, Spec, dump_json, json_message, message, mutate_json


class RegistryFileTarget(Target):
    """``store.keros.load_sensor_registry``: a registry or ``InvalidArgumentError``; ``extend`` untouched."""

    name = "sensor_registry"

    def __init__(self) -> None:
        from importlib import resources

        from cortex_sal.keros import SensorRegistry

        self.scratch = _Scratch()
        packaged = resources.files("cortex_sal.keros").joinpath("data/sensor_models.json").read_text("utf-8")
        user = {
            "minimums": {"snr_db": 20.0, "bits": 8},
            "models": [{"model_id": "eeg_user_v1", "manufacturer": "Lab", "snr_db": 33.5, "bits": 14}],
        }
        self.docs = [json.loads(packaged), user]
        self.texts = [packaged.encode(), dump_json(user)]
        self.extend = SensorRegistry.default()
        self.extend.revoke("eeg_fp1_certified_v1/0001")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import InvalidArgumentError
        from cortex_sal.keros import SensorRegistry
        from cortex_sal.store.keros import load_sensor_registry

        i = (plan.base // 2) % len(self.docs)
        data = json_message(plan, self.docs[i], self.texts[i])
        path = self.scratch.write("registry.json", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        before = (self.extend.models(), set(self.extend._revoked), self.extend.min_snr_db, self.extend.min_bits)
        extend = self.extend if plan.base % 4 >= 2 else None
        registry, exc = refusal((InvalidArgumentError,), lambda: load_sensor_registry(path, extend=extend))
        after = (self.extend.models(), set(self.extend._revoked), self.extend.min_snr_db, self.extend.min_bits)
        require(before == after, "loading a registry file changed the registry it extends")
        if exc is not None:
            return "refused"
        require(isinstance(registry, SensorRegistry), "load_sensor_registry returned something else")
        for model in registry.models():
            require(model.model_id and "/" not in model.model_id, f"accepted model id {model.model_id!r}")
            require(math.isfinite(model.snr_db) and isinstance(model.bits, int), "accepted a non-finite model")
        require(math.isfinite(registry.min_snr_db) and isinstance(registry.min_bits, int), "bad minima accepted")
        return "loaded"


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
