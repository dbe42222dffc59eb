"""``cortex-sal ca``: the shell round trip of docs/certificates.md, the loaders, and every refusal.

Keys are checked with ``cryptography`` as the oracle: the X25519 key file's public key is the one
the certificate certifies, the CA key file's Ed25519 public key is the root's, and the
signatures verify under an independent Ed25519.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519 as c_ed25519
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cortex_sal.cli import main
from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.errors import CAFileError, CertificateError, CertificateReason, InvalidArgumentError
from cortex_sal.keros.certificate import CertificateKind, parse_certificate, parse_revocation_list, verify_certificate
from cortex_sal.store.keros import load_ca, load_identity, load_root, load_trust

R = CertificateReason
MODEL = "eeg_fp1_certified_v1"
NOW = 1_800_000_000
CERT_CONTEXT = b"cortex-sal certificate v1\x00"
CRL_CONTEXT = b"cortex-sal revocation list v1\x00"


def ca(*args: str) -> int:
    return main(["ca", *args])


def raw(key: c_x25519.X25519PublicKey | c_ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its contents (None for directories)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def cas(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A manufacturer CA, a site CA, one sensor and one gateway identity."""
    assert (
        ca("init", "--kind", "manufacturer", "--name", "NeuroStandard GmbH", "--out", "maker", "--now", str(NOW)) == 0
    )
    assert ca("init", "--kind", "site", "--name", "Charite Ward 3", "--out", "site", "--now", str(NOW)) == 0
    assert (
        ca("issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "SN-0001", "--days", "365", "--out",
           "sensor", "--now", str(NOW))
        == 0
    )  # fmt: skip
    assert (
        ca("issue-gateway", "--ca", "site", "--name", "gw-ward3", "--serial", "GW-1", "--days", "90", "--out", "gw",
           "--now", str(NOW))
        == 0
    )  # fmt: skip
    capsys.readouterr()
    return workdir


def test_round_trip_files_modes_and_oracle(cas: Path) -> None:
    # the CA directories
    for d, kind, name in (("maker", "manufacturer", "NeuroStandard GmbH"), ("site", "site", "Charite Ward 3")):
        key_file = cas / d / "ca.key"
        assert mode(key_file) == 0o600 and key_file.stat().st_size == 32
        assert mode(cas / d) == 0o700
        doc = json.loads((cas / d / "root.json").read_text())
        assert (doc["kind"], doc["name"], doc["format"]) == (kind, name, "cortex-sal ca root v1")
        oracle_pub = raw(c_ed25519.Ed25519PrivateKey.from_private_bytes(key_file.read_bytes()).public_key())
        assert bytes.fromhex(doc["public_key"]) == oracle_pub
        crl = (cas / d / "revoked.crl").read_bytes()
        c_ed25519.Ed25519PublicKey.from_public_bytes(oracle_pub).verify(crl[-64:], CRL_CONTEXT + crl[:-64])
        assert parse_revocation_list(crl).serials == frozenset()
    # the identities: key 0600, the certificate certifies exactly the key in the file
    for d, ca_dir in (("sensor", "maker"), ("gw", "site")):
        key_file, cert_file = cas / d / "static.key", cas / d / "static.cert"
        assert mode(key_file) == 0o600 and key_file.stat().st_size == 32
        cert = cert_file.read_bytes()
        oracle_pub = raw(c_x25519.X25519PrivateKey.from_private_bytes(key_file.read_bytes()).public_key())
        assert parse_certificate(cert).subject_key == oracle_pub
        ca_pub = bytes.fromhex(json.loads((cas / ca_dir / "root.json").read_text())["public_key"])
        c_ed25519.Ed25519PublicKey.from_public_bytes(ca_pub).verify(cert[-64:], CERT_CONTEXT + cert[:-64])
        assert (cas / ca_dir / "issued").is_dir() and len(list((cas / ca_dir / "issued").iterdir())) == 1
        key, loaded = load_identity(cas / d)
        with key:
            assert isinstance(key, X25519PrivateKey) and loaded == cert
            assert key.public_bytes() == oracle_pub

    # validity: --days from --now, not_before backdated 5 minutes for clock skew
    sensor = parse_certificate((cas / "sensor" / "static.cert").read_bytes())
    assert (sensor.not_before, sensor.not_after) == (NOW - 300, NOW + 365 * 86_400)
    assert (sensor.serial, sensor.name, sensor.kind) == ("SN-0001", MODEL, CertificateKind.SENSOR)


def test_each_side_verifies_the_other(cas: Path) -> None:
    gateway_trust = load_trust("maker")  # the gateway trusts the sensor maker
    sensor_trust = load_trust("site/root.json", "site/revoked.crl")  # the sensor trusts its site
    s_key, s_cert = load_identity("sensor")
    g_key, g_cert = load_identity("gw")
    with s_key, g_key:
        v = verify_certificate(
            s_cert, remote_static=s_key.public_bytes(), kind="sensor", trust=gateway_trust, now=NOW + 60
        )
        assert v.sensor_id == f"{MODEL}/SN-0001" and v.issuer_name == "NeuroStandard GmbH"
        g = verify_certificate(
            g_cert, remote_static=g_key.public_bytes(), kind="gateway", trust=sensor_trust, now=NOW + 60
        )
        assert g.gateway_name == "gw-ward3" and g.issuer_name == "Charite Ward 3"
        # the two static keys agree on a DH (checked against the oracle's exchange)
        with s_key.exchange(g_key.public_bytes()) as ours, g_key.exchange(s_key.public_bytes()) as theirs:
            assert ours.constant_time_compare(theirs)
            oracle = c_x25519.X25519PrivateKey.from_private_bytes((cas / "sensor" / "static.key").read_bytes())
            assert ours.constant_time_compare(
                oracle.exchange(c_x25519.X25519PublicKey.from_public_bytes(g_key.public_bytes()))
            )
        # each trust store knows only its own side
        with pytest.raises(CertificateError) as info:
            verify_certificate(g_cert, remote_static=g_key.public_bytes(), kind="gateway", trust=gateway_trust, now=NOW)
        assert info.value.reason is R.UNKNOWN_ISSUER


def test_public_key_option_writes_only_the_certificate(cas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    external = c_x25519.X25519PrivateKey.generate()
    pub = raw(external.public_key())
    assert (
        ca("issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "SN-ext", "--days", "30", "--out", "ext",
           "--public-key", pub.hex().upper(), "--now", str(NOW))
        == 0
    )  # fmt: skip
    assert sorted(p.name for p in (cas / "ext").iterdir()) == ["static.cert"]
    assert parse_certificate((cas / "ext" / "static.cert").read_bytes()).subject_key == pub
    assert pub.hex() in capsys.readouterr().out


def test_revoke_round_trip(cas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s_key, s_cert = load_identity("sensor")
    with s_key:
        pub = s_key.public_bytes()
    before = parse_revocation_list((cas / "maker" / "revoked.crl").read_bytes())
    assert ca("revoke", "--ca", "maker", "--serial", "SN-0001", "--now", str(NOW - 1000)) == 0
    assert "SN-0001" in capsys.readouterr().out
    crl = (cas / "maker" / "revoked.crl").read_bytes()
    after = parse_revocation_list(crl)
    assert after.serials == {"SN-0001"} and after.issued_at == before.issued_at + 1  # always dated later
    maker_pub = load_root("maker").public_key
    c_ed25519.Ed25519PublicKey.from_public_bytes(maker_pub).verify(crl[-64:], CRL_CONTEXT + crl[:-64])
    with pytest.raises(CertificateError) as info:
        verify_certificate(s_cert, remote_static=pub, kind="sensor", trust=load_trust("maker"), now=NOW)
    assert info.value.reason is R.REVOKED
    # revoking it again, or a serial never issued, is refused and leaves the list alone
    assert ca("revoke", "--ca", "maker", "--serial", "SN-0001") == 2
    assert ca("revoke", "--ca", "maker", "--serial", "SN-9999") == 2
    assert ca("revoke", "--ca", "maker", "--serial", "bad serial") == 2
    assert (cas / "maker" / "revoked.crl").read_bytes() == crl
    out = capsys.readouterr().out
    assert "already revoked" in out and "never issued" in out
    # show, verifying against the CA: the revocation is reported with exit 2
    assert ca("show", "sensor", "--trust", "maker", "--now", str(NOW)) == 2
    assert "revoked" in capsys.readouterr().out


def test_stale_list_is_refused_by_load_trust(cas: Path) -> None:
    first = (cas / "maker" / "revoked.crl").read_bytes()
    assert ca("revoke", "--ca", "maker", "--serial", "SN-0001") == 0
    old = cas / "first.crl"
    old.write_bytes(first)
    with pytest.raises(CertificateError) as info:
        load_trust("maker", old)
    assert info.value.reason is R.STALE


def test_show(cas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        ca(
            "show",
            "sensor",
            "gw/static.cert",
            "maker",
            "maker/revoked.crl",
            "--trust",
            "maker",
            "--trust",
            "site",
            "--now",
            str(NOW),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "sensor certificate" in out and "serial SN-0001" in out and MODEL in out
    assert "gateway certificate" in out and "gw-ward3" in out
    assert "manufacturer CA 'NeuroStandard GmbH'" in out and "0 revoked" in out and "signature verified" in out
    (cas / "junk").write_bytes(b"CXCT garbage")
    assert ca("show", "junk") == 2
    assert "MALFORMED" in capsys.readouterr().out.upper()


# -- refusals: exit 2, a message, nothing written ------------------------------------------------------


REFUSALS: list[tuple[list[str], str]] = [
    (["issue-sensor", "--ca", "maker", "--model", "eeg_unknown_v9", "--serial", "S2", "--days", "1", "--out", "n"],
     "not in the certified registry"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "bad serial", "--days", "1", "--out", "n"],
     "serial"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "../x", "--days", "1", "--out", "n"], "serial"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "S2", "--days", "0", "--out", "n"], "--days"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "S2", "--days", "-5", "--out", "n"], "--days"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "S2", "--days", "36501", "--out", "n"], "--days"),
    (["issue-sensor", "--ca", "site", "--model", MODEL, "--serial", "S2", "--days", "1", "--out", "n"],
     "site CA"),
    (["issue-gateway", "--ca", "maker", "--name", "gw2", "--days", "1", "--out", "n"], "manufacturer CA"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "SN-0001", "--days", "1", "--out", "n"],
     "already issued"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "S2", "--days", "1", "--out", "sensor"],
     "already exists"),
    (["issue-gateway", "--ca", "site", "--name", "gw2", "--days", "1", "--out", "gw"], "already exists"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "S2", "--days", "1", "--out", "n",
      "--public-key", "00" * 32], "low-order"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "S2", "--days", "1", "--out", "n",
      "--public-key", "zz" * 32], "64 hex digits"),
    (["issue-sensor", "--ca", "maker", "--model", MODEL, "--serial", "S2", "--days", "1", "--out", "n",
      "--public-key", "ab" * 31], "64 hex digits"),
    (["issue-gateway", "--ca", "site", "--name", "gw\ttab", "--days", "1", "--out", "n"], "control"),
    (["issue-gateway", "--ca", "nowhere", "--name", "gw2", "--days", "1", "--out", "n"], "not a CA directory"),
    (["init", "--kind", "site", "--name", "Again", "--out", "maker"], "already exists"),
    (["init", "--kind", "site", "--name", "", "--out", "n"], "CA name"),
    (["revoke", "--ca", "maker", "--serial", "SN-7"], "never issued"),
]  # fmt: skip


@pytest.mark.parametrize("argv,message", REFUSALS, ids=[" ".join(a[:1] + a[-3:]) for a, _ in REFUSALS])
def test_refusals_exit_2_and_leave_nothing_behind(
    cas: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = tree(cas)
    assert ca(*argv) == 2
    out = capsys.readouterr().out
    assert "error:" in out and message in out, out
    assert "Traceback" not in out
    assert tree(cas) == before


def test_garbled_or_exposed_key_files_are_refused(cas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["issue-gateway", "--ca", "site", "--name", "gw2", "--days", "1", "--out", "n"]
    key_file = cas / "site" / "ca.key"
    good = key_file.read_bytes()
    cases = {
        "readable by others": (lambda: key_file.chmod(0o644), "readable by others"),
        "too short": (lambda: key_file.write_bytes(good[:31]), "exactly 32 bytes"),
        "too long": (lambda: key_file.write_bytes(good + b"\n"), "exactly 32 bytes"),
        "another key": (lambda: key_file.write_bytes(bytes(32)), "does not belong"),
        "missing": (lambda: key_file.unlink(), "does not exist"),
        "a symlink": (lambda: (key_file.unlink(), key_file.symlink_to(cas / "maker" / "ca.key")), "cannot open"),
        "a directory": (lambda: (key_file.unlink(), key_file.mkdir()), "ca.key"),
    }
    for name, (damage, message) in cases.items():
        damage()
        before = tree(cas)
        assert ca(*args) == 2, name
        out = capsys.readouterr().out
        assert message in out, (name, out)
        assert tree(cas) == before, name
        # restore
        if key_file.is_dir() and not key_file.is_symlink():
            key_file.rmdir()
        else:
            key_file.unlink(missing_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, good)
        os.close(fd)
    assert ca(*args) == 0  # and the restored key works
    (cas / "site" / "root.json").write_text("{not json")
    assert ca("issue-gateway", "--ca", "site", "--name", "gw3", "--days", "1", "--out", "m") == 2
    assert "not valid JSON" in capsys.readouterr().out


def test_load_identity_refusals(cas: Path) -> None:
    # a certificate for another key beside this key
    (cas / "sensor" / "static.cert").unlink()
    (cas / "sensor" / "static.cert").write_bytes((cas / "gw" / "static.cert").read_bytes())
    with pytest.raises(CAFileError, match="different key"):
        load_identity("sensor")
    (cas / "gw" / "static.key").chmod(0o640)
    with pytest.raises(CAFileError, match="readable by others"):
        load_identity("gw")
    (cas / "gw" / "static.key").chmod(0o600)
    (cas / "gw" / "static.cert").write_bytes(b"CXCT" + bytes(10))
    with pytest.raises(CertificateError) as info:
        load_identity("gw")
    assert info.value.reason is R.MALFORMED
    with pytest.raises(CAFileError, match="does not exist"):
        load_identity("nowhere")


def test_load_trust_refusals(cas: Path) -> None:
    with pytest.raises(CAFileError, match="no trust roots"):
        load_trust()
    crl_path = cas / "maker" / "revoked.crl"
    good = crl_path.read_bytes()
    # forged: one signature bit flipped
    crl_path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(CertificateError) as info:
        load_trust("maker")
    assert info.value.reason is R.BAD_SIGNATURE
    # unsigned: the signature stripped
    crl_path.write_bytes(good[:-64])
    with pytest.raises(CertificateError) as info:
        load_trust("maker")
    assert info.value.reason is R.MALFORMED
    # another CA's list in this CA's place
    crl_path.write_bytes((cas / "site" / "revoked.crl").read_bytes())
    with pytest.raises(CertificateError) as info:
        load_trust("maker")
    assert info.value.reason is R.UNKNOWN_ISSUER
    assert load_trust("maker", "site")  # with the site root trusted too, that list is fine
    # a CA directory must carry its list; a root file alone is allowed on purpose
    crl_path.unlink()
    with pytest.raises(CAFileError, match="revocation list"):
        load_trust("maker")
    assert len(load_trust("maker/root.json")) == 1
    with pytest.raises(CAFileError):
        load_trust("maker/ca.key")  # not a root, not a list
    with pytest.raises(InvalidArgumentError):
        load_root(cas / "sensor" / "static.cert")


def test_load_ca_gives_a_working_ca(cas: Path) -> None:
    with load_ca("site") as authority:
        assert authority.root == load_root("site")
        cert = authority.issue_gateway(
            raw(c_x25519.X25519PrivateKey.generate().public_key()),
            gateway_name="lib",
            serial="L1",
            not_before=0,
            not_after=1,
        )
    assert parse_certificate(cert).name == "lib"


def test_through_a_real_subprocess(tmp_path: Path) -> None:
    env = dict(os.environ, COLUMNS="200")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-W", "error", "-m", "cortex_sal", "ca", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    steps = [
        ("init", "--kind", "manufacturer", "--name", "Acme", "--out", "acme"),
        ("init", "--kind", "site", "--name", "Ward", "--out", "ward"),
        ("issue-sensor", "--ca", "acme", "--model", MODEL, "--serial", "SN-1", "--days", "30", "--out", "s1"),
        ("issue-gateway", "--ca", "ward", "--name", "gw", "--days", "30", "--out", "g1"),
        ("show", "s1", "g1", "--trust", "acme", "--trust", "ward"),
    ]
    for step in steps:
        result = run(*step)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
        assert result.stderr == ""
    assert mode(tmp_path / "acme" / "ca.key") == mode(tmp_path / "s1" / "static.key") == 0o600
    assert mode(tmp_path / "g1" / "static.key") == 0o600
    key, cert = load_identity(tmp_path / "s1")
    with key:
        v = verify_certificate(
            cert, remote_static=key.public_bytes(), kind="sensor", trust=load_trust(tmp_path / "acme")
        )
    assert v.serial == "SN-1"
    refused = run("issue-sensor", "--ca", "ward", "--model", MODEL, "--serial", "SN-2", "--days", "30", "--out", "s2")
    assert refused.returncode == 2 and "site CA" in refused.stdout and not (tmp_path / "s2").exists()


def test_the_shell_session_of_the_docs_runs(tmp_path: Path) -> None:
    """docs/certificates.md section 4, run as written by bash (``cortex-sal`` is this interpreter's)."""
    doc = (Path(__file__).parent.parent / "docs" / "certificates.md").read_text()
    section = doc.split("## 4.", 1)[1]
    session = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert session.count("cortex-sal ca ") == 8
    script = f'set -euo pipefail\ncortex-sal() {{ "{sys.executable}" -W error -m cortex_sal "$@"; }}\n{session}'
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, COLUMNS="200"),
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "1 revoked: SN-0002" in result.stdout and "signature verified" in result.stdout
    trust = load_trust(tmp_path / "ca" / "neurostandard")
    for serial, revoked in (("SN-0001", False), ("SN-0002", True)):
        cert = (tmp_path / "sensors" / serial.lower() / "static.cert").read_bytes()
        subject = parse_certificate(cert).subject_key
        if revoked:
            with pytest.raises(CertificateError) as info:
                verify_certificate(cert, remote_static=subject, kind="sensor", trust=trust)
            assert info.value.reason is R.REVOKED
        else:
            assert verify_certificate(cert, remote_static=subject, kind="sensor", trust=trust).serial == serial
    assert mode(tmp_path / "sensors" / "sn-0001" / "static.key") == 0o600
    assert not (tmp_path / "sensors" / "sn-0002" / "static.key").exists()
