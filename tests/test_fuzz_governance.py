"""Fuzzing governance (issue #6, item 8): bundles, node registries, the CLI's node, proposal
and signature files, the exported audit trail (JSONL) and the audit trail's SQLite file.

Each property feeds 10,000 hypothesis plans to a target of ``fuzz/fuzzlib/governance.py``: byte-level
mutations of the canonical JSON (even ``base``) and JSON-level ones (odd ``base``: values
replaced by huge or non-finite numbers, lone surrogates, deep nesting; members dropped or
added; values swapped or wrapped). The oracle accepts only the documented refusals
(``BundleError`` from a bundle, a ``GovernanceError`` from a registry, the CLI's
``CliInputError`` and the model's own error from its loaders, ``AuditError`` from a trail
file) and never lets a changed document pass: a bundle that verifies carries the original
proposal and signatures; an export or a trail that verifies holds the original entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fuzzlib
import pytest
from fuzzlib import Mutation, Plan
from hypothesis import event, example, given, settings

from cortex_sal.cli import main
from cortex_sal.clock import ManualClock
from cortex_sal.errors import BundleError, GovernanceError, ProposalError
from cortex_sal.governance.audit import AuditError, truncated_hash
from cortex_sal.governance.quorum import (
    DecisionType,
    EnactedBundle,
    GovernanceNode,
    NodeRegistry,
    Proposal,
    canonical_json,
)
from cortex_sal.store.audit import AuditTrail, verify_jsonl
from hypothesis_profiles import examples

FUZZ = settings(max_examples=examples(10_000), deadline=None)

target = fuzzlib.TargetCache()


@pytest.fixture(scope="module", autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    target.close()


# -- bundles and registries -----------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 1, (Mutation("flip", 9, 10),)))  # an integer of 401 digits
@example(plan=Plan("mutate", 1, (Mutation("flip", 9, 23, b"\x03\x00"),)))  # a value nested 818 deep
# found by atheris: "\ud800" (a JSON escape) as a signature's node id
@example(plan=Plan("mutate", 3, (Mutation("truncate", 0, 769), Mutation("alt_field"), Mutation("flip", 56576, 63487))))
def test_fuzz_enacted_bundle_from_json(plan: Plan) -> None:
    event(target("bundle")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 1, (Mutation("flip", 4, 19),)))  # a lone surrogate in a value
def test_fuzz_node_registry_from_json(plan: Plan) -> None:
    event(target("node_registry")(plan))


# -- the CLI's loaders ---------------------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_cli_node_file(plan: Plan) -> None:
    event(target("cli_node")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 1, (Mutation("flip", 0, 25),)))  # a file nested 100,000 deep
def test_fuzz_cli_proposal_file(plan: Plan) -> None:
    event(target("cli_proposal")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_cli_signature_file(plan: Plan) -> None:
    event(target("cli_signature")(plan))


# -- the audit trail ----------------------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 1, (Mutation("flip", 3, 25),)))  # a line nested 100,000 deep
def test_fuzz_verify_jsonl_export(plan: Plan) -> None:
    event(target("audit_jsonl")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_audit_trail_sqlite_file(plan: Plan) -> None:
    event(target("audit_db")(plan))


# -- regressions: what the fuzzers found ------------------------------------------------------------------

NODE_ID = "0123456789abcdef"


def _proposal_doc(content: object, created: object = 1_800_000_000.0) -> dict[str, object]:
    return {"type": "standard_change", "content": content, "citations": [], "proposer": NODE_ID,
            "created": created, "expires": 1_800_000_000.0 + 30 * 24 * 3600}  # fmt: skip


def _nested(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [66, 200, 700])
def test_proposal_content_nested_deeply_is_refused(levels: int) -> None:
    """Found by fuzzing: content nested a few hundred deep raised RecursionError (in the
    freezing copy and in canonical JSON). Content nesting is now capped at 32, canonical JSON at 64."""
    with pytest.raises(ProposalError):
        Proposal(DecisionType.STANDARD_CHANGE, {"a": _nested(levels)}, (), NODE_ID, 1_800_000_000.0)
    with pytest.raises(ProposalError):
        Proposal.from_dict(_proposal_doc({"a": _nested(levels)}))
    with pytest.raises(ProposalError):
        canonical_json(_nested(levels))
    content = "[" * levels + "0" + "]" * levels
    bundle = (
        '{"format":"cortex-governance-bundle-v1","signatures":[],"proposal":{"type":"standard_change",'
        f'"content":{{"a":{content}}},"citations":[],"proposer":"{NODE_ID}","created":1800000000.0,'
        '"expires":1802592000.0}}'
    )
    with pytest.raises(BundleError):
        EnactedBundle.from_json(bundle)


def test_proposal_content_at_the_depth_limit_is_accepted() -> None:
    p = Proposal(DecisionType.STANDARD_CHANGE, {"a": _nested(31)}, (), NODE_ID, 1_800_000_000.0)
    assert Proposal.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("digits", [309, 401, 4000])
def test_bundle_and_registry_refuse_integers_beyond_double_range(digits: int) -> None:
    """Found by fuzzing: an integer literal beyond 1.8e308 raised OverflowError in the JSON hook."""
    big = "9" * digits
    with pytest.raises(BundleError):
        EnactedBundle.from_json('{"format": "cortex-governance-bundle-v1", "proposal": ' + big + ', "signatures": []}')
    with pytest.raises(GovernanceError):
        NodeRegistry.from_json('{"format": "cortex-governance-registry-v1", "nodes": [], "x": ' + big + "}")


def test_proposal_refuses_a_creation_time_beyond_double_range() -> None:
    """Found by fuzzing: ``float(10**400)`` raised OverflowError for ``created``, and for a
    threshold's new value (the CLI's plain ``json.loads`` keeps such an int)."""
    with pytest.raises(ProposalError):
        Proposal.from_dict(_proposal_doc({}, created=10**400))
    with pytest.raises(ProposalError):
        Proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, {"bridge_max_std": 10**400}, ("c",), NODE_ID, 1.0)


def test_node_with_a_lone_surrogate_in_its_institution_is_refused() -> None:
    """Found by fuzzing: the node id hashes the institution's UTF-8, which raised UnicodeEncodeError."""
    with pytest.raises(GovernanceError):
        GovernanceNode.from_dict({"public_key": "00" * 32, "institution": "\ud800", "jurisdiction": "DE",
                                  "active": True})  # fmt: skip
    with pytest.raises(AuditError):
        truncated_hash("\udfff")


def test_lone_surrogates_in_a_bundle_are_refused_when_parsed() -> None:
    """Found by atheris: a bundle with "\\ud800" (legal JSON) in a citation or a signature's
    node id parsed, but had no canonical form: ``to_json()`` and ``digest()`` raised later.
    A proposal now checks its canonical form when built; a signature checks its node id."""
    with pytest.raises(ProposalError):
        Proposal(DecisionType.STANDARD_CHANGE, {}, ("\ud800",), NODE_ID, 1_800_000_000.0)
    with pytest.raises(ProposalError):
        Proposal(DecisionType.STANDARD_CHANGE, {"k": "\udfff"}, (), NODE_ID, 1_800_000_000.0)
    head = '{"format":"cortex-governance-bundle-v1","proposal":{"type":"standard_change","content":{},'
    tail = f'"proposer":"{NODE_ID}","created":1800000000.0,"expires":1802592000.0}}'
    with pytest.raises(BundleError):
        EnactedBundle.from_json(head + '"citations":["\\ud800"],' + tail + ',"signatures":[]}')
    sig = '{"node_id":"\\ud800","signature":"' + "00" * 64 + '"}'
    with pytest.raises(BundleError):
        EnactedBundle.from_json(head + '"citations":[],' + tail + ',"signatures":[' + sig + "]}")
    assert EnactedBundle.from_json(head + '"citations":[],' + tail + ',"signatures":[]}').to_json()


def test_jsonl_line_nested_deeply_is_a_failed_verification(tmp_path: Path) -> None:
    """Found by fuzzing: a line nested past the parser's limit raised RecursionError."""
    path = tmp_path / "export.jsonl"
    path.write_text("[" * 100_000 + "\n")
    result = verify_jsonl(path)
    assert not result.ok and result.first_bad_index == 0


def test_trail_with_a_non_utf8_text_column_is_refused(tmp_path: Path) -> None:
    """Found by fuzzing: a TEXT column that is not UTF-8 raised UnicodeDecodeError."""
    import sqlite3

    db = tmp_path / "trail.db"
    with AuditTrail(db, clock=ManualClock()) as trail:
        trail.append("proposal_submitted", proposal_hash="ab" * 32)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_head_no_shrink")
    conn.execute("UPDATE audit_head SET format = CAST(X'ff00' AS TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(AuditError):
        AuditTrail(db)


def test_cli_exits_2_on_a_proposal_nested_deeply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by fuzzing: the CLI's JSON reader let RecursionError through (a traceback, not exit 2)."""
    proposal = tmp_path / "proposal.json"
    proposal.write_text("[" * 100_000)
    node = tmp_path / "key"
    assert main(["governance", "keygen", "--institution", "Fuzz", "--jurisdiction", "DE", "--out", str(node)]) == 0
    code = main(["governance", "sign", str(proposal), "--key", str(node), "--out", str(tmp_path / "sig.json")])
    assert code == 2
    captured = capsys.readouterr()
    assert "error" in captured.out and "Traceback" not in captured.out + captured.err
