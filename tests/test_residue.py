"""Residue rows: no copy of a secret outside the arena during a session, none anywhere
after it - measured by reading a child's memory from the parent."""

from __future__ import annotations

import pytest

from cortex_sal.cli.residue_scenarios import SCENARIOS as CLI_SCENARIOS
from cortex_sal.testing.residue import SHA256_IV, hmac_midstates, patterns, run_scenario, sha256_compress, verdict
from cortex_sal.testing.scenarios import SCENARIOS


def test_patterns_cover_the_documented_encodings() -> None:
    secret = bytes(range(32))
    pats = patterns(secret)
    assert pats["exact"] == [secret]
    assert pats["frag8"] == [secret[0:8], secret[8:16], secret[16:24], secret[24:32]]
    assert pats["ipad"] == [bytes(b ^ 0x36 for b in secret)]
    assert pats["opad"] == [bytes(b ^ 0x5C for b in secret)]
    assert pats["hex"] == [secret.hex().encode(), secret.hex().upper().encode()]
    assert pats["b64"][0] == b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="[:40]
    assert pats["bcast"] == [secret[i : i + 4] * 2 for i in range(0, 32, 4)]  # a key word in 32-bit SIMD lanes
    assert patterns(bytes(range(64)))["bcast"] == []
    assert len(pats["midstate"]) == 16 and len(set(pats["midstate"])) == 16  # 2 pads x 2 word orders x 4
    assert patterns(bytes(65))["midstate"] == []  # a longer HMAC key is hashed first: its hash is the secret


def _words(state: tuple[int, ...]) -> bytes:
    return b"".join(word.to_bytes(4, "big") for word in state)


def test_the_sha256_compression_matches_fips_180_and_the_midstates_finish_hmacs() -> None:
    """The ``midstate`` patterns are only as good as the compression that computes them: FIPS 180-2's
    one-block example ("abc", Appendix B.1), and HMACs finished from the midstates against hmac."""
    import hashlib
    import hmac
    import os

    abc = b"abc" + b"\x80" + bytes(52) + (24).to_bytes(8, "big")
    assert _words(sha256_compress(SHA256_IV, abc)).hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    for size in (1, 32, 64):
        key, message = os.urandom(size), os.urandom(40)
        inner, outer = hmac_midstates(key)
        inner_hash = _words(sha256_compress(inner, message + b"\x80" + bytes(15) + (8 * 104).to_bytes(8, "big")))
        tag = _words(sha256_compress(outer, inner_hash + b"\x80" + bytes(23) + (8 * 96).to_bytes(8, "big")))
        assert tag == hmac.digest(key, message, "sha256")
        assert inner_hash == hashlib.sha256(bytes(b ^ 0x36 for b in key.ljust(64, b"\0")) + message).digest()


def _reports_text(reports: list) -> str:
    return "\n".join(r.table() for r, _ in reports)


@pytest.mark.parametrize(
    ("scenario", "live_secrets"),
    [
        ("x25519_hkdf", ("sensor_private", "gateway_private", "shared_secret", "session_key")),
        ("keros_v1_gateway", ("session_key", "frame_key_s2g", "frame_key_g2s")),
        ("shield_raw_samples", ("samples_0",)),
        ("ed25519_signing", ("ed25519_seed",)),
        ("keros_v1_bad_ack", ()),
        ("keros_v1_tampered_frame", ()),
        ("aead", ("aead_key", "plaintext_out", "plaintext_in")),
        ("hmac", ("hmac_key32", "hmac_key64", "hmac_key100", "mac_into_32", "mac_into_64", "mac_into_100")),
        ("limes_master", ("limes_master",)),
        ("clinical_channel", ("sender_channel_key", "receiver_channel_key")),
        ("governance_node_key", ("node_seed",)),
        ("ca_keys", ("ca_seed", "sensor_static")),
        ("noise_transport", ("ordered_key", "lossy_key", "samples_8")),
        ("store_receipts", ("receipt_seed",)),
        ("keros_v2_gateway", ("child_static_private", "transport_i2r", "transport_r2i")),
        ("keros_v2_sensor", ("child_static_private", "transport_i2r", "transport_r2i")),
        ("shield_v2_channel", ("child_static_private", "transport_i2r", "transport_r2i")),
        # the gateway process over TCP: at the first checkpoint (message 2 sent) it holds its own keys
        # and the handshake's ck and k; the transport keys are checked in the arena by the row itself
        ("gateway_tcp", ("gateway_static", "gateway_ephemeral", "ck_2", "k_2")),
        ("gateway_tcp_cut", ("gateway_static", "gateway_ephemeral", "ck_2", "k_2")),
        ("gateway_tcp_revoked", ("gateway_static", "gateway_ephemeral", "ck_2", "k_2")),
        # the applications' API: the store's pairwise-id key, the app's key (client), the clinical stream's key
        ("api_subscriptions", ("pairwise_key", "app_seed", "clinical_key")),
    ],
)
def test_no_residue(scenario: str, live_secrets: tuple[str, ...]) -> None:
    reports = run_scenario({**SCENARIOS, **CLI_SCENARIOS}[scenario])
    live_reports = [r for r, live in reports if live]
    assert live_reports or not live_secrets
    # the harness sees the live secrets where they belong: in the arena
    for name in live_secrets:
        assert live_reports[0].counts[name]["arena"]["exact"] >= 1, (name, live_reports[0].table())
    first = reports[0][0]
    assert first.bytes_scanned > 10 * 2**20
    assert any(not live for _, live in reports), "a scenario must end with an after-close checkpoint"
    failures = verdict(reports)
    assert failures == [], "\n".join(failures) + "\n" + _reports_text(reports)


def test_the_harness_finds_a_deliberate_leak() -> None:
    reports = run_scenario("leak_control")
    session = next(r for r, live in reports if r.checkpoint == "session")
    outside = session.hits(outside_arena=True)
    assert any("/exact=" in hit for hit in outside), session.table()
    assert any("/hex=" in hit for hit in outside), session.table()
    assert verdict(reports), "a leak must fail the verdict"


def test_the_noise_oracle_agrees_with_an_independent_implementation() -> None:
    """The v2 rows trust the parent's Noise peer for every ck, k and DH output they look for:
    it must interoperate with the `noiseprotocol` package, both roles, hash included."""
    import os

    from noise.connection import Keypair, NoiseConnection

    from cortex_sal.testing.noise_oracle import IndependentNoiseXX

    prologue = b"cortex-sensor-noise-v1"
    for oracle_initiates in (True, False):
        oracle = IndependentNoiseXX(oracle_initiates, os.urandom(32), os.urandom(32), prologue)
        other = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
        other.set_as_responder() if oracle_initiates else other.set_as_initiator()
        other.set_prologue(prologue)
        other.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
        other.start_handshake()
        if oracle_initiates:
            assert other.read_message(oracle.write_1()) == b""
            assert oracle.read_2(other.write_message(b"two")) == b"two"
            assert other.read_message(oracle.write_3(b"three")) == b"three"
        else:
            assert oracle.read_1(other.write_message(b"")) == b""
            assert other.read_message(oracle.write_2(b"two")) == b"two"
            assert oracle.read_3(other.write_message(b"three")) == b"three"
        assert other.handshake_finished and oracle.h == other.get_handshake_hash()
        assert other.decrypt(oracle.encrypt(b"up")) == b"up"
        assert oracle.decrypt(other.encrypt(b"down")) == b"down"
        assert {"ck_1", "ck_2", "ck_3", "k_3", "dh_ee", "dh_es", "dh_se", "transport_i2r"} <= set(oracle.secrets())


_SCRUB_SETTINGS = {
    "fallback": {"CORTEX_SAL_NO_WIPE": "1"},
    "ctypes-wipe": {"CORTEX_SAL_FORCE_CTYPES": "all"},
    "ctypes-fallback": {"CORTEX_SAL_FORCE_CTYPES": "all", "CORTEX_SAL_NO_WIPE": "1"},
}


@pytest.mark.parametrize("setting", sorted(_SCRUB_SETTINGS))
@pytest.mark.parametrize("scenario", ["aead", "noise_transport", "keros_v1_gateway"])
def test_the_scrubs_fallback_leaves_no_residue_either(scenario: str, setting: str) -> None:
    """Where the register-and-stack wipe cannot run (``crypto._scrub.UNAVAILABLE``), the scrub is
    the same call made again on a public dummy, through the same binding: the ChaCha20 rows stay
    clean with it, and with the wipe and its fallback behind the ctypes binding (which calls from
    deeper down the C stack)."""
    reports = run_scenario(SCENARIOS[scenario], extra_env=_SCRUB_SETTINGS[setting])
    failures = verdict(reports)
    assert failures == [], "\n".join(failures) + "\n" + _reports_text(reports)


def test_the_wipe_is_in_use_here_or_says_why_not() -> None:
    from cortex_sal.crypto import _scrub, backend_info

    if _scrub.WIPE is None:
        assert _scrub.UNAVAILABLE and _scrub.UNAVAILABLE in backend_info().note
    else:
        assert _scrub.UNAVAILABLE == ""
    code = _scrub.machine_code(64)
    assert code.startswith(b"\xc5\xfc\x77") and code.endswith(b"\xc3")  # vzeroall ... ret
    for bad in (0, 33, -32, 2**31):
        with pytest.raises(ValueError, match="multiple of 32"):
            _scrub.machine_code(bad)
