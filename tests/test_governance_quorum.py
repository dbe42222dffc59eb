"""N-of-M Ed25519 quorum: nodes, proposals, canonical encoding, enactment, bundles, apply."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from cortex_sal.crypto.ed25519 import Ed25519SigningKey
from cortex_sal.errors import (
    BundleError,
    GovernanceError,
    InvalidArgumentError,
    InvalidSignatureError,
    ProposalError,
    QuorumError,
    WrongLengthError,
)
from cortex_sal.governance.quorum import (
    PROPOSAL_DOMAIN,
    PROPOSAL_LIFETIME_S,
    DecisionType,
    EnactedBundle,
    GovernanceNode,
    NodeRegistry,
    Proposal,
    Refusal,
    Signature,
    apply_bundle,
    canonical_json,
    enact,
    required_signatures,
    sign_proposal,
)
from cortex_sal.governance.thresholds import DEFAULT_THRESHOLDS, ClinicalThresholds
from cortex_sal.store.governance import load_registry, save_registry

T0 = 1_700_000_000.0
JURISDICTIONS = ["DE", "DE", "DE", "FR", "FR", "US", "US", "EU", "EU"]  # 9 nodes, 4 jurisdictions


@pytest.fixture(scope="module")
def keys():
    ks = [Ed25519SigningKey.generate() for _ in JURISDICTIONS]
    yield ks
    for k in ks:
        k.purge()


@pytest.fixture(scope="module")
def nodes(keys):
    return [
        GovernanceNode(k.public_key(), f"Institution {i}", j)
        for i, (k, j) in enumerate(zip(keys, JURISDICTIONS, strict=True))
    ]


@pytest.fixture
def registry(nodes):
    return NodeRegistry(nodes)


def ctc(nodes, content=None, created=T0, citations=("Doe et al. 2024, doi:10.0000/x",)):
    return Proposal(
        type=DecisionType.CLINICAL_THRESHOLD_CHANGE,
        content={"min_snr_db": 28.5} if content is None else content,
        citations=citations,
        proposer=nodes[0].node_id,
        created=created,
    )


def sign_by(proposal, keys, nodes, indices):
    return [sign_proposal(proposal, keys[i], nodes[i]) for i in indices]


# indices 0 (DE), 1 (DE), 3 (FR), 5 (US), 7 (EU): 5 signers in 4 jurisdictions
GOOD = [0, 1, 3, 5, 7]


def refused(excinfo, reason):
    assert excinfo.value.reason is reason
    assert reason.value in str(excinfo.value)


# --- nodes and registry ---------------------------------------------------------------


def test_node_id_is_truncated_sha256_of_key_and_institution(nodes):
    n = nodes[0]
    assert n.node_id == hashlib.sha256(n.public_key + b"Institution 0").hexdigest()[:16]
    assert len({x.node_id for x in nodes}) == 9


@pytest.mark.parametrize("bad", ["de", "DEU", "D", "E1", "", " DE", "eu"])
def test_node_jurisdiction_format_refused(keys, bad):
    with pytest.raises(InvalidArgumentError):
        GovernanceNode(keys[0].public_key(), "X", bad)


def test_node_eu_accepted_and_key_length_checked(keys):
    assert GovernanceNode(keys[0].public_key(), "X", "EU").jurisdiction == "EU"
    with pytest.raises(WrongLengthError):
        GovernanceNode(b"\x01" * 31, "X", "DE")
    with pytest.raises(InvalidArgumentError):
        GovernanceNode(keys[0].public_key(), "  ", "DE")


def test_node_is_frozen(nodes):
    with pytest.raises(dataclasses.FrozenInstanceError):
        nodes[0].active = False  # type: ignore[misc]


def test_registry_add_get_deactivate(registry, nodes):
    assert len(registry) == 9 and len(registry.active_nodes()) == 9
    assert registry.get(nodes[2].node_id) == nodes[2]
    assert registry.get("0" * 16) is None
    registry.deactivate(nodes[2].node_id)
    assert not registry.get(nodes[2].node_id).active
    assert nodes[2] not in registry.active_nodes() and len(registry.active_nodes()) == 8
    with pytest.raises(GovernanceError):
        registry.deactivate("0" * 16)


def test_registry_refuses_duplicate_node_and_reused_key(registry, nodes):
    with pytest.raises(GovernanceError):
        registry.add(nodes[0])
    # one key holder registering as a second "institution" would count twice: refused
    with pytest.raises(GovernanceError, match="public key"):
        registry.add(GovernanceNode(nodes[0].public_key, "Sock Puppet Inc", "JP"))


def test_registry_json_round_trip(registry, nodes, tmp_path):
    registry.deactivate(nodes[4].node_id)
    path = tmp_path / "registry.json"
    save_registry(registry, path)
    loaded = load_registry(path)
    assert [n.to_dict() for n in loaded.active_nodes()] == [n.to_dict() for n in registry.active_nodes()]
    assert not loaded.get(nodes[4].node_id).active
    assert len(loaded) == 9


def test_registry_json_refuses_forged_node_id(registry):
    doc = json.loads(registry.to_json())
    doc["nodes"][0]["node_id"] = "f" * 16
    with pytest.raises(GovernanceError, match="node_id"):
        NodeRegistry.from_json(json.dumps(doc))


# --- decision types ------------------------------------------------------------------------


def test_required_signatures(registry, nodes, keys):
    assert required_signatures(DecisionType.CLINICAL_THRESHOLD_CHANGE, registry) == 5
    assert required_signatures(DecisionType.CAPABILITY_MODULE, registry) == 3
    assert required_signatures(DecisionType.STANDARD_CHANGE, registry) == 7
    assert required_signatures(DecisionType.NODE_REGISTRY_CHANGE, registry) == 5
    assert required_signatures(DecisionType.ANTI_CAPTURE_CHANGE, registry) == 9
    # deactivating nodes cannot lower the anti-capture bar below M = 9
    registry.deactivate(nodes[8].node_id)
    assert required_signatures(DecisionType.ANTI_CAPTURE_CHANGE, registry) == 9
    # a tenth active node raises it: all active nodes
    extra = Ed25519SigningKey.generate()
    registry.add(GovernanceNode(extra.public_key(), "Tenth", "JP"))
    extra.purge()
    assert required_signatures(DecisionType.ANTI_CAPTURE_CHANGE, registry) == 9
    registry2 = NodeRegistry([*nodes, GovernanceNode(b"\x07" * 32, "Tenth", "JP")])
    assert required_signatures(DecisionType.ANTI_CAPTURE_CHANGE, registry2) == 10


def test_anti_capture_needs_all_nine(registry, keys, nodes):
    p = Proposal(DecisionType.ANTI_CAPTURE_CHANGE, {"rule": "x"}, (), nodes[0].node_id, T0)
    with pytest.raises(QuorumError) as e:
        enact(p, sign_by(p, keys, nodes, range(8)), registry, now=T0, enacted_digests=set())
    refused(e, Refusal.INSUFFICIENT_SIGNATURES)
    bundle = enact(p, sign_by(p, keys, nodes, range(9)), registry, now=T0, enacted_digests=set())
    assert len(bundle.signatures) == 9


# --- proposals and citations -----------------------------------------------------------------


def test_clinical_change_without_citation_refused(nodes):
    with pytest.raises(ProposalError, match="citation"):
        ctc(nodes, citations=())
    with pytest.raises(ProposalError, match="citation"):
        ctc(nodes, citations=("  ",))
    with pytest.raises(ProposalError):
        ctc(nodes, citations="a bare string is not a list")


def test_other_types_need_no_citation(nodes):
    p = Proposal(DecisionType.CAPABILITY_MODULE, {"module": "x"}, [], nodes[0].node_id, T0)
    assert p.citations == ()


@pytest.mark.parametrize(
    "content",
    [
        {"no_such_threshold": 1.0},
        {"min_snr_db": "30"},
        {"min_snr_db": True},
        {"min_snr_db": None},
        {"min_snr_db": math.nan},
        {"min_snr_db": math.inf},
        {"min_bits": 12.5},
        {"min_bits": 12.0},
        {"min_bits": False},
        {},
    ],
)
def test_clinical_content_validated(nodes, content):
    with pytest.raises(ProposalError):
        ctc(nodes, content=content)


def test_clinical_content_int_for_float_field_normalised(nodes):
    a = ctc(nodes, content={"min_snr_db": 31})
    b = ctc(nodes, content={"min_snr_db": 31.0})
    assert a.content["min_snr_db"] == 31.0 and isinstance(a.content["min_snr_db"], float)
    assert a.digest() == b.digest()


def test_proposal_expiry_and_immutability(nodes):
    p = ctc(nodes, content={"min_snr_db": 28.5, "min_bits": 14})
    assert p.expires == T0 + 30 * 24 * 3600 == T0 + PROPOSAL_LIFETIME_S
    with pytest.raises(TypeError):
        p.content["min_snr_db"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.created = 0.0  # type: ignore[misc]
    with pytest.raises(ProposalError):
        Proposal(DecisionType.CAPABILITY_MODULE, {"x": 1}, (), "not-a-node-id", T0)


def test_mutating_the_source_dict_does_not_change_the_proposal(nodes):
    source = {"module": {"name": "m", "tags": ["a"]}}
    p = Proposal(DecisionType.CAPABILITY_MODULE, source, (), nodes[0].node_id, T0)
    before = p.digest()
    source["module"]["tags"].append("b")
    source["module"]["name"] = "other"
    assert p.digest() == before


# --- canonical encoding (RFC 8785) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": "x"}, '{"a":"x","b":1}'),
        ({"z": [1, 2, {"y": None, "x": True}], "a": False}, '{"a":false,"z":[1,2,{"x":true,"y":null}]}'),
        ([], "[]"),
        ({}, "{}"),
        ('a/b"c\\d\n\t\x01\x1f\x7f', '"a/b\\"c\\\\d\\n\\t\\u0001\\u001f\x7f"'),
        ("\u20ac\U0001f600", '"\u20ac\U0001f600"'),
        (-0.0, "0"),
        (1.0, "1"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1e30, "1e+30"),
        (1e-27, "1e-27"),
        (333333333.33333329, "333333333.3333333"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-1.5e-10, "-1.5e-10"),
        (2**53 - 1, "9007199254740991"),
        (-(2**53 - 1), "-9007199254740991"),
    ],
)
def test_jcs_known_answers(value, expected):
    assert canonical_json(value) == expected.encode("utf-8")


def test_jcs_sorts_by_utf16_code_units():
    # RFC 8785 section 3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    # Python's own code point order differs here: that is the point
    assert sorted(obj) != keys


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 2**53, {1: "x"}, {"a": b"x"}, {"a": {1, 2}}, "\ud800"])
def test_jcs_refuses_what_it_cannot_encode(bad):
    with pytest.raises(ProposalError):
        canonical_json(bad)


def test_proposal_canonical_bytes_known_answer(nodes):
    p = Proposal(
        type=DecisionType.CLINICAL_THRESHOLD_CHANGE,
        content={"min_snr_db": 28.5, "min_bits": 14},
        citations=["Doe 2024"],
        proposer="0123456789abcdef",
        created=1700000000.25,
    )
    expected = (
        '{"citations":["Doe 2024"],"content":{"min_bits":14,"min_snr_db":28.5},"created":1700000000.25,'
        '"expires":1702592000.25,"proposer":"0123456789abcdef","type":"clinical_threshold_change"}'
    )
    assert p.canonical_bytes() == expected.encode()
    assert p.digest() == hashlib.sha256(expected.encode()).digest()
    assert p.signing_message() == PROPOSAL_DOMAIN + p.digest()


def test_canonical_encoding_independent_of_key_order(nodes):
    a = ctc(nodes, content={"min_snr_db": 28.5, "min_bits": 14, "drift_window_s": 90})
    b = ctc(nodes, content={"drift_window_s": 90.0, "min_bits": 14, "min_snr_db": 28.5})
    assert a.canonical_bytes() == b.canonical_bytes() and a.digest() == b.digest() and a == b
    c = ctc(nodes, content={"min_snr_db": 28.25, "min_bits": 14, "drift_window_s": 90})
    assert c.digest() != a.digest()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_jcs_parses_back_to_the_same_value_and_is_idempotent(value):
    try:
        encoded = canonical_json(value)
    except ProposalError:
        # only lone surrogates in generated text are refused
        assert "\\ud" in json.dumps(value)
        return
    # JSON numbers are doubles: integral literals beyond 2**53 - 1 come back as floats
    decoded = json.loads(encoded, parse_int=lambda d: int(d) if abs(int(d)) < 2**53 else float(d))
    assert decoded == value
    assert canonical_json(decoded) == encoded


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_jcs_float_round_trips_exactly(x):
    assert float(canonical_json(x)) == x


# --- signing ------------------------------------------------------------------------------------


def test_signature_verifies_independently_with_cryptography(keys, nodes):
    p = ctc(nodes)
    sig = sign_proposal(p, keys[3], nodes[3])
    assert sig.node_id == nodes[3].node_id and len(sig.signature) == 64
    message = PROPOSAL_DOMAIN + hashlib.sha256(p.canonical_bytes()).digest()
    Ed25519PublicKey.from_public_bytes(nodes[3].public_key).verify(sig.signature, message)
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(nodes[3].public_key).verify(sig.signature, p.digest())  # no domain label


def test_sign_with_key_not_of_the_node_refused(keys, nodes):
    with pytest.raises(InvalidArgumentError):
        sign_proposal(ctc(nodes), keys[1], nodes[0])


# --- enactment: every quorum edge -----------------------------------------------------------------


def test_enact_with_quorum(keys, nodes, registry):
    p = ctc(nodes)
    enacted: set = set()
    events = []
    bundle = enact(
        p,
        sign_by(p, keys, nodes, GOOD),
        registry,
        now=T0 + 10,
        enacted_digests=enacted,
        audit=lambda *a: events.append(a),
    )
    assert isinstance(bundle, EnactedBundle) and bundle.proposal == p and len(bundle.signatures) == 5
    assert enacted == {p.digest()}
    assert events == [
        ("governance.enacted", {"proposal": p.digest().hex(), "signers": sorted(nodes[i].node_id for i in GOOD)})
    ]
    bundle.verify(registry, T0 + 20)


def test_n_minus_one_signatures_refused(keys, nodes, registry):
    p = ctc(nodes)
    enacted: set = set()
    with pytest.raises(QuorumError) as e:
        enact(p, sign_by(p, keys, nodes, GOOD[:4]), registry, now=T0, enacted_digests=enacted)
    refused(e, Refusal.INSUFFICIENT_SIGNATURES)
    assert enacted == set()


def test_n_signatures_with_a_duplicate_refused(keys, nodes, registry):
    p = ctc(nodes)
    sigs = sign_by(p, keys, nodes, GOOD[:4])
    sigs.append(sigs[2])
    with pytest.raises(QuorumError) as e:
        enact(p, sigs, registry, now=T0, enacted_digests=set())
    refused(e, Refusal.DUPLICATE_SIGNER)


def test_deactivated_node_refused(keys, nodes, registry):
    p = ctc(nodes)
    registry.deactivate(nodes[5].node_id)
    with pytest.raises(QuorumError) as e:
        enact(p, sign_by(p, keys, nodes, [*GOOD, 6]), registry, now=T0, enacted_digests=set())
    refused(e, Refusal.DEACTIVATED_NODE)
    # without it the remaining five (DE, DE, FR, US, EU) still make the quorum
    enact(p, sign_by(p, keys, nodes, [0, 1, 3, 6, 7]), registry, now=T0, enacted_digests=set())


def test_unknown_node_refused(keys, nodes):
    p = ctc(nodes)
    registry = NodeRegistry(nodes[:8])  # node 8 not registered
    with pytest.raises(QuorumError) as e:
        enact(p, sign_by(p, keys, nodes, [0, 3, 5, 7, 8]), registry, now=T0, enacted_digests=set())
    refused(e, Refusal.UNKNOWN_NODE)


def test_forged_signature_refused(keys, nodes, registry):
    import os

    p = ctc(nodes)
    sigs = [*sign_by(p, keys, nodes, GOOD[:4]), Signature(nodes[8].node_id, os.urandom(64))]
    with pytest.raises(QuorumError) as e:
        enact(p, sigs, registry, now=T0, enacted_digests=set())
    refused(e, Refusal.INVALID_SIGNATURE)
    assert isinstance(e.value.__cause__, InvalidSignatureError)


def test_signature_relabelled_to_another_node_refused(keys, nodes, registry):
    p = ctc(nodes)
    sigs = sign_by(p, keys, nodes, GOOD[:4])
    stolen = sign_proposal(p, keys[2], nodes[2])
    sigs.append(Signature(nodes[8].node_id, stolen.signature))  # node 2's signature claimed as node 8's
    with pytest.raises(QuorumError) as e:
        enact(p, sigs, registry, now=T0, enacted_digests=set())
    refused(e, Refusal.INVALID_SIGNATURE)


def test_signature_over_a_different_proposal_refused(keys, nodes, registry):
    p = ctc(nodes)
    other = ctc(nodes, content={"min_snr_db": 10.0})
    sigs = [*sign_by(p, keys, nodes, GOOD[:4]), sign_proposal(other, keys[8], nodes[8])]
    with pytest.raises(QuorumError) as e:
        enact(p, sigs, registry, now=T0, enacted_digests=set())
    refused(e, Refusal.INVALID_SIGNATURE)


def test_content_changed_after_signing_refused(keys, nodes, registry):
    p = ctc(nodes)
    sigs = sign_by(p, keys, nodes, GOOD)
    for changed in (
        dataclasses.replace(p, content={"min_snr_db": 1.0}),
        dataclasses.replace(p, citations=("another citation",)),
        dataclasses.replace(p, created=T0 + 1),
        dataclasses.replace(p, proposer=nodes[1].node_id),
    ):
        with pytest.raises(QuorumError) as e:
            enact(changed, sigs, registry, now=T0 + 5, enacted_digests=set())
        refused(e, Refusal.INVALID_SIGNATURE)


def test_expiry_convention_valid_strictly_before_expires(keys, nodes, registry):
    """A proposal is valid for created <= now < expires: at now == expires it is expired."""
    p = ctc(nodes)
    sigs = sign_by(p, keys, nodes, GOOD)
    for now in (p.expires + 1, p.expires):
        with pytest.raises(ProposalError) as e:
            enact(p, sigs, registry, now=now, enacted_digests=set())
        refused(e, Refusal.EXPIRED)
    enact(p, sigs, registry, now=p.expires - 1, enacted_digests=set())
    enact(p, sigs, registry, now=p.created, enacted_digests=set())
    with pytest.raises(ProposalError) as e:
        enact(p, sigs, registry, now=p.created - 1, enacted_digests=set())
    refused(e, Refusal.NOT_YET_VALID)


def test_already_enacted_refused(keys, nodes, registry):
    p = ctc(nodes)
    sigs = sign_by(p, keys, nodes, GOOD)
    enacted: set = set()
    enact(p, sigs, registry, now=T0, enacted_digests=enacted)
    events = []
    with pytest.raises(ProposalError) as e:
        enact(p, sigs, registry, now=T0 + 1, enacted_digests=enacted, audit=lambda *a: events.append(a))
    refused(e, Refusal.ALREADY_ENACTED)
    assert events == [("governance.refused", {"proposal": p.digest().hex(), "reason": Refusal.ALREADY_ENACTED})]
    with pytest.raises(ProposalError) as e:
        enact(p, sigs, registry, now=T0 + 1, enacted_digests={p.digest().hex()})
    refused(e, Refusal.ALREADY_ENACTED)


def test_five_signatures_in_two_jurisdictions_refused(keys, nodes, registry):
    p = ctc(nodes)
    with pytest.raises(QuorumError) as e:
        enact(p, sign_by(p, keys, nodes, [0, 1, 2, 3, 4]), registry, now=T0, enacted_digests=set())  # DE x3, FR x2
    refused(e, Refusal.INSUFFICIENT_JURISDICTIONS)
    # exactly three jurisdictions suffice
    enact(p, sign_by(p, keys, nodes, [0, 1, 2, 3, 5]), registry, now=T0, enacted_digests=set())


def test_jurisdiction_rule_only_for_clinical_changes(keys, nodes, registry):
    p = Proposal(DecisionType.CAPABILITY_MODULE, {"module": "m"}, (), nodes[0].node_id, T0)
    enact(p, sign_by(p, keys, nodes, [0, 1, 2]), registry, now=T0, enacted_digests=set())
    s = Proposal(DecisionType.STANDARD_CHANGE, {"standard": "s"}, (), nodes[0].node_id, T0)
    with pytest.raises(QuorumError) as e:
        enact(s, sign_by(s, keys, nodes, range(6)), registry, now=T0, enacted_digests=set())
    refused(e, Refusal.INSUFFICIENT_SIGNATURES)
    enact(s, sign_by(s, keys, nodes, range(7)), registry, now=T0, enacted_digests=set())


# --- bundles --------------------------------------------------------------------------------------


@pytest.fixture
def bundle(keys, nodes, registry):
    p = ctc(nodes, content={"min_snr_db": 28.5, "hard_violations_to_block": 4})
    return enact(p, sign_by(p, keys, nodes, GOOD), registry, now=T0, enacted_digests=set())


def test_bundle_json_round_trip(bundle, registry):
    text = bundle.to_json()
    again = EnactedBundle.from_json(text)
    assert again == bundle and again.to_json() == text
    again.verify(registry, T0 + 100)


def test_bundle_tampered_threshold_fails_verify(bundle, registry):
    doc = json.loads(bundle.to_json())
    doc["proposal"]["content"]["min_snr_db"] = 5.0
    tampered = EnactedBundle.from_json(json.dumps(doc))
    with pytest.raises(QuorumError) as e:
        tampered.verify(registry, T0 + 100)
    refused(e, Refusal.INVALID_SIGNATURE)


def test_bundle_tampered_expiry_or_structure_refused(bundle):
    doc = json.loads(bundle.to_json())
    doc["proposal"]["expires"] += 86400
    with pytest.raises(BundleError):
        EnactedBundle.from_json(json.dumps(doc))
    with pytest.raises(BundleError):
        EnactedBundle.from_json(bundle.to_json().replace('"format"', '"format":"x","format"', 1))  # duplicate key
    with pytest.raises(BundleError):
        EnactedBundle.from_json(bundle.to_json().replace("28.5", "NaN"))
    with pytest.raises(BundleError):
        EnactedBundle.from_json("[]")


def test_bundle_with_a_signature_removed_fails_verify(bundle, registry):
    doc = json.loads(bundle.to_json())
    del doc["signatures"][0]
    with pytest.raises(QuorumError) as e:
        EnactedBundle.from_json(json.dumps(doc)).verify(registry, T0)
    refused(e, Refusal.INSUFFICIENT_SIGNATURES)


def test_bundle_verify_rechecks_registry(bundle, registry, nodes):
    registry.deactivate(nodes[GOOD[0]].node_id)
    with pytest.raises(QuorumError) as e:
        bundle.verify(registry, T0)
    refused(e, Refusal.DEACTIVATED_NODE)


# --- apply_bundle ---------------------------------------------------------------------------------


def test_apply_bundle_returns_new_thresholds(bundle, registry):
    current = ClinicalThresholds()
    new = apply_bundle(current, bundle, registry, T0 + 60)
    assert type(new) is ClinicalThresholds and new is not current
    assert new.min_snr_db == 28.5 and new.hard_violations_to_block == 4
    assert current.min_snr_db == 30.0 and current.hard_violations_to_block == 3
    assert DEFAULT_THRESHOLDS.min_snr_db == 30.0
    for f in dataclasses.fields(current):
        if f.name not in ("min_snr_db", "hard_violations_to_block"):
            assert getattr(new, f.name) == getattr(current, f.name)
    with pytest.raises(AttributeError):
        new.min_snr_db = 1.0  # type: ignore[misc]


def test_apply_bundle_keeps_other_values_of_current(bundle, registry, keys, nodes):
    p = ctc(nodes, content={"min_bits": 16}, created=T0 + 1)
    first = enact(p, sign_by(p, keys, nodes, GOOD), registry, now=T0 + 2, enacted_digests=set())
    step1 = apply_bundle(ClinicalThresholds(), first, registry, T0 + 3)
    step2 = apply_bundle(step1, bundle, registry, T0 + 4)
    assert (step2.min_bits, step2.min_snr_db, step1.min_snr_db) == (16, 28.5, 30.0)


def test_apply_tampered_bundle_raises_and_leaves_current(bundle, registry):
    current = ClinicalThresholds()
    doc = json.loads(bundle.to_json())
    doc["proposal"]["content"]["min_snr_db"] = 5.0
    with pytest.raises(QuorumError):
        apply_bundle(current, EnactedBundle.from_json(json.dumps(doc)), registry, T0)
    assert current.min_snr_db == 30.0


def test_apply_expired_or_already_applied_bundle_refused(bundle, registry):
    with pytest.raises(ProposalError) as e:
        apply_bundle(ClinicalThresholds(), bundle, registry, bundle.proposal.expires)
    refused(e, Refusal.EXPIRED)
    with pytest.raises(ProposalError) as e:
        apply_bundle(ClinicalThresholds(), bundle, registry, T0, enacted_digests={bundle.proposal.digest()})
    refused(e, Refusal.ALREADY_ENACTED)


def test_apply_non_threshold_bundle_refused(keys, nodes, registry):
    p = Proposal(DecisionType.CAPABILITY_MODULE, {"min_snr_db": 1.0}, (), nodes[0].node_id, T0)
    b = enact(p, sign_by(p, keys, nodes, [0, 3, 5]), registry, now=T0, enacted_digests=set())
    with pytest.raises(BundleError) as e:
        apply_bundle(ClinicalThresholds(), b, registry, T0)
    refused(e, Refusal.WRONG_DECISION_TYPE)
