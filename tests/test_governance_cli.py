"""``cortex-sal governance``: the round trip of docs/governance.md, refusals, and ``apply_policy``."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from cortex_sal.cli import main
from cortex_sal.errors import GovernanceError
from cortex_sal.governance import DEFAULT_THRESHOLDS, Proposal, enact
from cortex_sal.governance.quorum import EnactedBundle, NodeRegistry
from cortex_sal.sal.results import RefusalReason, Refused, Registered
from cortex_sal.sal.shield import CognitiveShield
from cortex_sal.store.audit import AuditTrail
from cortex_sal.store.governance import load_registry
from service_world import CITATION, NODES, signed_proposal


def gov(*args: str) -> int:
    return main(["governance", *args])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def _setup_proposal(capsys: pytest.CaptureFixture[str]) -> None:
    for name, institution, jurisdiction in NODES:
        assert gov("keygen", "--institution", institution, "--jurisdiction", jurisdiction, "--out", f"keys/{name}") == 0
    assert gov("registry", "add", *[f"keys/{n}/node.json" for n, _, _ in NODES], "--out", "registry.json") == 0
    assert (
        gov(
            "propose",
            "--type",
            "clinical_threshold_change",
            "--set",
            "bridge_max_std=0.45",
            "--cite",
            CITATION,
            "--proposer",
            "keys/charite",
            "--out",
            "proposal.json",
        )
        == 0
    )
    for name, _, _ in NODES:
        assert gov("sign", "proposal.json", "--key", f"keys/{name}", "--out", f"sig-{name}.json") == 0
    capsys.readouterr()


def _entries(path: str) -> list[tuple[str, dict[str, object]]]:
    with AuditTrail(path) as trail:
        return [(e.event, dict(e.details)) for e in trail.entries()]


def test_round_trip_from_the_docs(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _setup_proposal(capsys)
    # the keys: public node.json, secret seed with mode 0600 and exactly 32 bytes
    for name, institution, jurisdiction in NODES:
        node = json.loads((workdir / "keys" / name / "node.json").read_text())
        assert (node["institution"], node["jurisdiction"], node["active"]) == (institution, jurisdiction, True)
        seed = workdir / "keys" / name / "seed.key"
        assert stat.S_IMODE(seed.stat().st_mode) == 0o600
        assert seed.stat().st_size == 32
    registry = load_registry("registry.json")
    assert len(registry) == 5 and {n.jurisdiction for n in registry.active_nodes()} == {"DE", "FR", "SE"}
    proposal = Proposal.from_dict(json.loads(Path("proposal.json").read_text()))
    assert proposal.citations == (CITATION,) and dict(proposal.content) == {"bridge_max_std": 0.45}

    sigs = [f"sig-{n}.json" for n, _, _ in NODES]
    assert (
        gov("enact", "proposal.json", *sigs, "--registry", "registry.json", "--audit", "audit.db", "--out", "b.json")
        == 0
    )
    out = capsys.readouterr().out
    assert f"enacted proposal {proposal.digest().hex()} with 5 signatures" in out

    bundle = EnactedBundle.from_json(Path("b.json").read_text())
    bundle.verify(registry, time.time())  # the bundle stands on its own
    entries = _entries("audit.db")
    assert [e for e, _ in entries] == ["proposal_enacted"]
    assert entries[0][1]["proposal_hash"] == proposal.digest().hex()  # the full digest ([OI-enact-audit-hash])
    assert entries[0][1]["signer_count"] == 5
    raw_ids = {n.node_id for n in registry.active_nodes()}
    assert not raw_ids & {str(v) for _, d in entries for v in d.values()}  # no raw node id in the log

    assert gov("verify-audit", "audit.db") == 0
    assert "intact: 1 entries" in capsys.readouterr().out
    with AuditTrail("audit.db") as trail:
        head = trail.head()
    assert gov("verify-audit", "audit.db", "--expected-count", "1", "--expected-hash", head.last_hash) == 0
    assert gov("verify-audit", "audit.db", "--expected-count", "2", "--expected-hash", head.last_hash) == 2

    assert gov("apply", "b.json", "--registry", "registry.json", "--audit", "audit.db") == 0
    out = capsys.readouterr().out
    assert "bridge_max_std" in out and "0.45" in out and "policy applied" in out
    assert [e for e, _ in _entries("audit.db")] == ["proposal_enacted", "policy_applied"]
    assert gov("verify-audit", "audit.db") == 0

    # enacting the same proposal again is refused and audited
    assert (
        gov("enact", "proposal.json", *sigs, "--registry", "registry.json", "--audit", "audit.db", "--out", "c.json")
        == 2
    )
    assert "already enacted" in capsys.readouterr().out
    assert _entries("audit.db")[-1] == (
        "proposal_refused",
        {"proposal_hash": entries[0][1]["proposal_hash"], "reason": "already enacted"},
    )
    assert not Path("c.json").exists()


def test_four_signatures_are_refused_and_audited(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _setup_proposal(capsys)
    sigs = [f"sig-{n}.json" for n, _, _ in NODES[:4]]
    rc = gov("enact", "proposal.json", *sigs, "--registry", "registry.json", "--audit", "audit.db", "--out", "b.json")
    captured = capsys.readouterr()
    assert rc == 2
    assert "insufficient signatures" in captured.out and "Traceback" not in captured.out + captured.err
    assert not Path("b.json").exists()
    entries = _entries("audit.db")
    assert [e for e, _ in entries] == ["proposal_refused"]
    assert entries[0][1]["reason"] == "insufficient signatures"
    assert gov("verify-audit", "audit.db") == 0


def test_forged_signature_is_audited_as_invalid(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _setup_proposal(capsys)
    doc = json.loads(Path("sig-tum.json").read_text())
    doc["signature"] = ("00" if doc["signature"][:2] != "00" else "01") + doc["signature"][2:]
    Path("sig-tum.json").write_text(json.dumps(doc))
    sigs = [f"sig-{n}.json" for n, _, _ in NODES]
    assert (
        gov("enact", "proposal.json", *sigs, "--registry", "registry.json", "--audit", "audit.db", "--out", "b.json")
        == 2
    )
    assert [e for e, _ in _entries("audit.db")] == ["signature_invalid", "proposal_refused"]


def test_a_tampered_audit_trail_fails_verification(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _setup_proposal(capsys)
    sigs = [f"sig-{n}.json" for n, _, _ in NODES]
    assert (
        gov("enact", "proposal.json", *sigs, "--registry", "registry.json", "--audit", "audit.db", "--out", "b.json")
        == 0
    )
    con = sqlite3.connect("audit.db")
    triggers = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    for name in triggers:
        con.execute(f"DROP TRIGGER {name}")
    cols = [r[1] for r in con.execute("PRAGMA table_info(audit_entries)")]
    column = next(c for c in cols if "detail" in c)
    con.execute(f"UPDATE audit_entries SET {column} = replace({column}, '5', '4')")
    con.commit()
    con.close()
    capsys.readouterr()
    assert gov("verify-audit", "audit.db") == 2
    assert "NOT intact" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["sign", "missing.json", "--key", "keys/tum", "--out", "s.json"],
        ["sign", "proposal.json", "--key", "keys/nobody", "--out", "s.json"],
        [
            "propose",
            "--type",
            "clinical_threshold_change",
            "--set",
            "bridge_max_std=0.4",
            "--proposer",
            "keys/tum",
            "--out",
            "p.json",
        ],
        [
            "propose",
            "--type",
            "clinical_threshold_change",
            "--set",
            "nonsense",
            "--cite",
            "x",
            "--proposer",
            "keys/tum",
            "--out",
            "p.json",
        ],
        [
            "propose",
            "--type",
            "clinical_threshold_change",
            "--set",
            "no_such=1",
            "--cite",
            "x",
            "--proposer",
            "keys/tum",
            "--out",
            "p.json",
        ],
        ["keygen", "--institution", "X", "--jurisdiction", "de", "--out", "keys/x"],
        ["keygen", "--institution", "X", "--jurisdiction", "DE", "--out", "keys/tum"],
        ["registry", "add", "keys/tum/node.json", "--out", "registry.json"],
        ["enact", "proposal.json", "garbage.json", "--registry", "registry.json", "--audit", "a.db", "--out", "b.json"],
        ["enact", "proposal.json", "--registry", "garbage.json", "--audit", "a.db", "--out", "b.json"],
        ["verify-audit", "missing.db"],
        ["verify-audit", "garbage.json"],
        ["apply", "garbage.json", "--registry", "registry.json"],
    ],
)
def test_bad_input_exits_2_without_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    _setup_proposal(capsys)
    Path("garbage.json").write_text("{not json")
    assert gov(*args) == 2
    captured = capsys.readouterr()
    assert "error" in captured.out and "Traceback" not in captured.out + captured.err


def test_a_world_readable_seed_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _setup_proposal(capsys)
    os.chmod("keys/tum/seed.key", 0o644)
    assert gov("sign", "proposal.json", "--key", "keys/tum", "--out", "s.json") == 2
    assert "readable by others" in capsys.readouterr().out


# --- CognitiveShield.apply_policy ------------------------------------------------------------------


def _bundle(content: dict[str, object], *, n: int = 5) -> tuple[EnactedBundle, NodeRegistry, float]:
    proposal, sigs, registry, now = signed_proposal(content)
    if n >= 5:
        return enact(proposal, sigs, registry, now=now, enacted_digests=set()), registry, now  # type: ignore[arg-type]
    return EnactedBundle(proposal, tuple(sigs[:n])), registry, now  # type: ignore[arg-type]


def test_apply_policy_swaps_thresholds_registry_minima_and_drift() -> None:
    bundle, registry, now = _bundle({"bridge_max_std": 0.45, "min_snr_db": 35.0, "min_bits": 14})
    with CognitiveShield() as shield:
        assert isinstance(shield.register_sensor("eeg_fp1_certified_v1/a", 40.0, 16), Registered)
        new = shield.apply_policy(bundle, registry, now=now)
        assert shield.thresholds is new and new.bridge_max_std == 0.45
        assert (shield.registry.min_snr_db, shield.registry.min_bits) == (35.0, 14)
        assert shield._sensors["eeg_fp1_certified_v1/a"].drift.thresholds is new
        below = shield.register_sensor("eeg_fp1_certified_v1/b", 32.0, 16)  # below the new minimum
        assert isinstance(below, Refused) and below.reason is RefusalReason.NOT_CERTIFIED
        with pytest.raises(GovernanceError, match="already enacted"):
            shield.apply_policy(bundle, registry, now=now)  # no replay
        assert shield.thresholds is new


def test_apply_policy_is_all_or_nothing() -> None:
    bundle, registry, now = _bundle({"bridge_max_std": 0.45}, n=4)
    with CognitiveShield() as shield:
        with pytest.raises(GovernanceError, match="insufficient signatures"):
            shield.apply_policy(bundle, registry, now=now)
        assert shield.thresholds is DEFAULT_THRESHOLDS
        assert shield.registry.min_snr_db == DEFAULT_THRESHOLDS.min_snr_db


def test_thresholds_cannot_be_replaced_except_through_apply_policy() -> None:
    with CognitiveShield() as shield:
        with pytest.raises(AttributeError):
            shield.thresholds = DEFAULT_THRESHOLDS  # type: ignore[misc]
        with pytest.raises(AttributeError):
            shield.thresholds.bridge_max_std = 0.1  # type: ignore[misc]
