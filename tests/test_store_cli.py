"""``cortex-sal consent`` / ``store`` / ``governance apply --data-dir``: the acceptance of the store
issue, run as a user would (real processes, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cortex_sal.cli import main
from cortex_sal.sal.receipts import verify_receipt
from cortex_sal.store.base import subject_of
from cortex_sal.store.sqlite import SqliteStore
from service_world import CITATION, NODES

SENSOR = "eeg_fp1_certified_v1/SN1"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command in a fresh process (the console script's module)."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "cortex_sal.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_consent_round_trip_from_a_shell(tmp_path: Path) -> None:
    grant = cli(
        "consent", "grant", "--data-dir", "D", "--sensor", SENSOR, "--app", "demo-app", "--scopes", "biometric",
        "--ttl", "3600", "--purpose", "focus feedback", "--receipt", "grant.jwt", cwd=tmp_path,
    )  # fmt: skip
    assert grant.returncode == 0, grant.stderr + grant.stdout
    receipt_id = grant.stdout.split()[1]
    listed = cli("consent", "list", "--data-dir", "D", "--json", cwd=tmp_path)
    (row,) = json.loads(listed.stdout)
    assert row["state"] == "active" and row["app"] == "demo-app" and row["receipt_id"] == receipt_id
    assert row["subject"] == subject_of(SENSOR) and SENSOR not in listed.stdout
    revoke = cli(
        "consent", "revoke", "--data-dir", "D", "--sensor", SENSOR, "--app", "demo-app", "--reason", "withdrawn",
        "--receipt", "withdrawal.jwt", cwd=tmp_path,
    )  # fmt: skip
    assert revoke.returncode == 0, revoke.stderr + revoke.stdout
    (row,) = json.loads(cli("consent", "list", "--data-dir", "D", "--json", cwd=tmp_path).stdout)
    assert row["state"] == "revoked" and row["revocation_reason"] == "withdrawn"
    for name in ("grant.jwt", "withdrawal.jwt"):
        ok = cli("consent", "verify", name, "--data-dir", "D", cwd=tmp_path)
        assert ok.returncode == 0 and "verifies under the store's key" in ok.stdout, ok.stdout + ok.stderr
        text = (tmp_path / name).read_text()
        middle = len(text) // 2
        flipped = text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :]
        (tmp_path / f"bad-{name}").write_text(flipped)
        bad = cli("consent", "verify", f"bad-{name}", cwd=tmp_path)
        assert bad.returncode == 2 and "does NOT verify" in bad.stdout, bad.stdout + bad.stderr
    check = cli("store", "check", "--data-dir", "D", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "audit chain verified: 2 entries" in check.stdout and "integrity_check: ok" in check.stdout
    export = json.loads(cli("store", "export", "--data-dir", "D", "--subject", SENSOR, cwd=tmp_path).stdout)
    assert len(export["receipts"]) == 2 and [e["event"] for e in export["audit"]] == [
        "consent_granted",
        "consent_revoked",
    ]


def test_bad_input_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "D")
    base = ["consent", "grant", "--data-dir", d, "--app", "demo-app", "--ttl", "60", "--purpose", "p"]
    cases = [
        ([*base, "--sensor", "unknown_model/SN1", "--scopes", "biometric"], "not in the registry"),
        ([*base, "--sensor", "eeg_fp1_certified_v1", "--scopes", "biometric"], "MODEL/SERIAL"),
        ([*base, "--sensor", SENSOR, "--scopes", "telepathy"], "unknown consent scope"),
        ([*base[:-4], "--ttl", "-5", "--purpose", "p", "--sensor", SENSOR, "--scopes", "biometric"], "ttl_s"),
        (
            ["consent", "revoke", "--data-dir", d, "--sensor", SENSOR, "--app", "demo-app", "--reason", "x"],
            "no consent",
        ),
        (["consent", "revoke", "--data-dir", d, "--sensor", SENSOR, "--reason", "x"], "--app APP or --all-apps"),
        (["consent", "verify", str(tmp_path / "missing.jwt")], "receipt"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        out = capsys.readouterr().out
        assert message in out and "Traceback" not in out, (argv, out)
    with SqliteStore(d) as store:
        assert store.consent_records() == [] and store.audit_head().count == 0  # nothing half-done


def _governance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys, registry, proposal, five signatures and the bundle, made in this process (the steps
    under test, apply and the restart, run in processes of their own)."""
    monkeypatch.chdir(tmp_path)

    def gov(*args: str) -> None:
        assert main(["governance", *args]) == 0, args

    for name, institution, jurisdiction in NODES:
        gov("keygen", "--institution", institution, "--jurisdiction", jurisdiction, "--out", f"keys/{name}")
    gov("registry", "add", *[f"keys/{n}/node.json" for n, _, _ in NODES], "--out", "registry.json")
    gov("propose", "--type", "clinical_threshold_change", "--set", "bridge_max_std=0.45", "--cite", CITATION,
        "--proposer", "keys/charite", "--out", "proposal.json")  # fmt: skip
    for name, _, _ in NODES:
        gov("sign", "proposal.json", "--key", f"keys/{name}", "--out", f"sig-{name}.json")
    sigs = [f"sig-{n}.json" for n, _, _ in NODES]
    gov("enact", "proposal.json", *sigs, "--registry", "registry.json", "--data-dir", "D", "--out", "bundle.json")
    assert main(["governance", "enact", "proposal.json", *sigs, "--registry", "registry.json", "--out", "b2.json"]) == 2


def test_a_restarted_shield_runs_under_the_applied_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _governance(tmp_path, monkeypatch)
    before = cli("governance", "policy", "--data-dir", "D", cwd=tmp_path)
    assert before.returncode == 0 and "default thresholds" in before.stdout
    applied = cli("governance", "apply", "bundle.json", "--registry", "registry.json", "--data-dir", "D", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    shown = cli("governance", "policy", "--data-dir", "D", cwd=tmp_path)  # a new process reads the store
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "bridge_max_std" in shown.stdout and "0.45" in shown.stdout
    with SqliteStore(tmp_path / "D") as store:  # the enactment and the application in the store's one chain
        assert [e.event for e in store.audit_entries()] == ["proposal_enacted", "policy_applied"]
        assert store.verify_audit().ok
        (entry,) = [e for e in store.audit_entries() if e.event == "policy_applied"]
        full = entry.details["proposal_hash"]
        assert isinstance(full, str) and len(full) == 64  # the full digest, not a 16-hex prefix
    assert f"proposal {full}" in shown.stdout
    again = cli("governance", "apply", "bundle.json", "--registry", "registry.json", "--data-dir", "D", cwd=tmp_path)
    assert again.returncode == 2 and "already enacted" in again.stdout, again.stdout
    check = cli("store", "check", "--data-dir", "D", cwd=tmp_path)
    assert check.returncode == 0 and f"proposal {full}" in check.stdout, check.stdout


def test_receipts_verify_independently_of_the_store_object(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "D") as store:
        key = store.receipt_public_key()
    r = cli("consent", "grant", "--data-dir", "D", "--sensor", SENSOR, "--app", "a", "--scopes", "biometric,audio",
            "--ttl", "60", "--purpose", "p", cwd=tmp_path)  # fmt: skip
    receipt_id = r.stdout.split()[1]
    out = cli("consent", "receipt", receipt_id, "--data-dir", "D", cwd=tmp_path).stdout.strip()
    assert verify_receipt(out, public_key=key).scopes == ("biometric", "audio")


def test_the_demo_runs_through_a_store_and_leaves_verifiable_receipts(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from cortex_sal.cli.demo import DEMO_APP, run_demo

    out = io.StringIO()
    assert run_demo(Console(file=out, width=160), frames=4, delay_s=0.0, use_edf=False, data_dir=tmp_path / "D") == 0
    text = out.getvalue()
    assert "the design's default thresholds" in text and "audit chain verified" in text
    with SqliteStore(tmp_path / "D") as store:
        key = store.receipt_public_key()
        (record,) = store.consent_records()
        receipts = store.receipts()
    assert record.app == DEMO_APP and f"receipt {record.receipt_id}" in text
    assert [verify_receipt(r.document, public_key=key).app for r in receipts] == [DEMO_APP] * len(receipts)
