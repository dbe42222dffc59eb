"""The first residue rows: no copy of a secret outside the arena during a session, none
anywhere after purge - measured by reading a child's memory from the parent."""

from __future__ import annotations

import pytest

from cortex_sal.testing.residue import patterns, run_scenario, verdict
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


def test_x25519_hkdf_hmac_leave_no_residue() -> None:
    scenario = SCENARIOS["x25519_hkdf"]
    reports = run_scenario(scenario.name)
    by_name = {r.checkpoint: r for r in reports}
    assert set(by_name) == {"session", "after_purge", "end"}
    session = by_name["session"]
    # the harness sees the live secrets where they belong: in the arena
    for name in ("sensor_private", "gateway_private", "shared_secret", "session_key"):
        assert session.counts[name]["arena"]["exact"] >= 1, (name, session.table())
    assert session.bytes_scanned > 10 * 2**20
    failures = verdict(scenario, reports)
    assert failures == [], "\n".join(failures + [r.table() for r in reports])


def test_the_harness_finds_a_deliberate_leak() -> None:
    scenario = SCENARIOS["leak_control"]
    reports = run_scenario(scenario.name)
    session = next(r for r in reports if r.checkpoint == "session")
    outside = session.hits(outside_arena=True)
    assert any("/exact=" in hit for hit in outside), session.table()
    assert any("/hex=" in hit for hit in outside), session.table()
    assert verdict(scenario, reports), "a leak must fail the verdict"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_declares_its_checkpoints(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.checkpoints_during and scenario.checkpoints_after
    assert "end" in scenario.checkpoints_after
