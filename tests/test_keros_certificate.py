"""Certified static keys (``keros.certificate``): format, issuing, every verification reason,
the check order, revocation lists and the trust store.

The oracle is ``cryptography``'s Ed25519 and a byte layout written out by hand in this file from
``docs/certificates.md``: certificates built by the oracle are accepted by the code under test,
and certificates it builds are read back field by field at the documented offsets.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519 as c_ed25519
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.errors import (
    CertificateError,
    CertificateReason,
    CortexError,
    InvalidArgumentError,
    PurgedBufferError,
    SensorNotCertifiedError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.keros import SensorModel, SensorRegistry
from cortex_sal.keros import certificate as certmod
from cortex_sal.keros.certificate import (
    CAKind,
    CertificateAuthority,
    CertificateKind,
    RootCA,
    TrustStore,
    issue_certificate,
    parse_certificate,
    parse_revocation_list,
    verify_certificate,
)
from hypothesis_profiles import examples

R = CertificateReason
NOW = 1_800_000_000
NB, NA = NOW - 3600, NOW + 86_400
MODEL = "eeg_fp1_certified_v1"
SERIAL = "SN-0001"
CERT_CONTEXT = b"cortex-sal certificate v1\x00"  # from the docs, not from the module
CRL_CONTEXT = b"cortex-sal revocation list v1\x00"

# small-order X25519 points (libsodium's blacklist; the DH result with any scalar is all zeros)
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
]


# -- the oracle ---------------------------------------------------------------------------------


def raw_public(key: c_ed25519.Ed25519PrivateKey | c_x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def oracle_tbs(
    *,
    subject: bytes,
    issuer_id: bytes,
    kind: int = 1,
    nb: int = NB,
    na: int = NA,
    serial: bytes = SERIAL.encode(),
    name: bytes = MODEL.encode(),
    magic: bytes = b"CXCT",
    version: int = 1,
) -> bytes:
    """The to-be-signed bytes, laid out by hand as docs/certificates.md says."""
    return (
        magic
        + bytes([version, kind])
        + subject
        + nb.to_bytes(8, "big")
        + na.to_bytes(8, "big")
        + issuer_id
        + bytes([len(serial)])
        + serial
        + bytes([len(name)])
        + name
    )


def oracle_cert(signer: c_ed25519.Ed25519PrivateKey, *, issuer_id: bytes | None = None, **fields: object) -> bytes:
    issuer_id = issuer_id if issuer_id is not None else hashlib.sha256(raw_public(signer)).digest()
    tbs = oracle_tbs(issuer_id=issuer_id, **fields)  # type: ignore[arg-type]
    return tbs + signer.sign(CERT_CONTEXT + tbs)


def oracle_crl(signer: c_ed25519.Ed25519PrivateKey, serials: list[bytes], issued_at: int = NOW) -> bytes:
    tbs = (
        b"CXRL" + bytes([1]) + hashlib.sha256(raw_public(signer)).digest() + struct.pack(">QI", issued_at, len(serials))
    )
    tbs += b"".join(bytes([len(s)]) + s for s in serials)
    return tbs + signer.sign(CRL_CONTEXT + tbs)


# -- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    maker: CertificateAuthority
    site: CertificateAuthority
    sensor_key: X25519PrivateKey
    gateway_key: X25519PrivateKey
    sensor_cert: bytes
    gateway_cert: bytes
    trust: TrustStore

    @property
    def sensor_pub(self) -> bytes:
        return self.sensor_key.public_bytes()

    @property
    def gateway_pub(self) -> bytes:
        return self.gateway_key.public_bytes()

    def verify_sensor(self, cert: bytes | None = None, **kw: object) -> certmod.VerifiedCertificate:
        args: dict[str, object] = {"remote_static": self.sensor_pub, "kind": "sensor", "trust": self.trust, "now": NOW}
        args.update(kw)
        return verify_certificate(self.sensor_cert if cert is None else cert, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world() -> World:
    maker = CertificateAuthority.generate(CAKind.MANUFACTURER, "NeuroStandard GmbH")
    site = CertificateAuthority.generate("site", "Charite Ward 3")
    sensor_key, gateway_key = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sensor_cert = maker.issue_sensor(
        sensor_key.public_bytes(), model_id=MODEL, serial=SERIAL, not_before=NB, not_after=NA
    )
    gateway_cert = site.issue_gateway(
        gateway_key.public_bytes(), gateway_name="gw-ward3", serial="GW-1", not_before=NB, not_after=NA
    )
    trust = TrustStore([maker.root, site.root])
    trust.add_revocation_list(maker.revocation_list([], issued_at=NOW - 10))
    trust.add_revocation_list(site.revocation_list([], issued_at=NOW - 10))
    return World(maker, site, sensor_key, gateway_key, sensor_cert, gateway_cert, trust)


def reason_of(call: Callable[[], object]) -> CertificateReason:
    with pytest.raises(CertificateError) as info:
        call()
    return info.value.reason


# -- format and round trip ------------------------------------------------------------------------


def test_round_trip_issue_parse_verify(world: World) -> None:
    v = world.verify_sensor()
    assert v.kind is CertificateKind.SENSOR
    assert (v.serial, v.model_id, v.gateway_name, v.sensor_id) == (SERIAL, MODEL, None, f"{MODEL}/{SERIAL}")
    assert v.subject_key == world.sensor_pub
    assert (v.not_before, v.not_after) == (NB, NA)
    assert v.issuer_key_id == hashlib.sha256(world.maker.root.public_key).digest()
    assert v.issuer_name == "NeuroStandard GmbH"
    assert v.model == SensorModel(  # the packaged registry's entry
        MODEL, "NeuroStandard", 35.0, 16, labels=("Fp1",), source=v.model.source
    )

    g = verify_certificate(
        world.gateway_cert, remote_static=world.gateway_pub, kind=CertificateKind.GATEWAY, trust=world.trust, now=NOW
    )
    assert (g.kind, g.gateway_name, g.model_id, g.sensor_id, g.model) == (
        CertificateKind.GATEWAY,
        "gw-ward3",
        None,
        None,
        None,
    )
    with pytest.raises(AttributeError):
        v.serial = "other"  # type: ignore[misc]


def test_layout_matches_the_documented_offsets(world: World) -> None:
    cert = world.sensor_cert
    s, n = len(SERIAL), len(MODEL)
    assert len(cert) == 152 + s + n
    assert cert[0:4] == b"CXCT" and cert[4] == 1 and cert[5] == 1
    assert cert[6:38] == world.sensor_pub
    assert int.from_bytes(cert[38:46], "big") == NB and int.from_bytes(cert[46:54], "big") == NA
    assert cert[54:86] == hashlib.sha256(world.maker.root.public_key).digest()
    assert cert[86] == s and cert[87 : 87 + s] == SERIAL.encode()
    assert cert[87 + s] == n and cert[88 + s : 88 + s + n] == MODEL.encode()
    # the signature verifies with an independent Ed25519 over CONTEXT || tbs
    pub = c_ed25519.Ed25519PublicKey.from_public_bytes(world.maker.root.public_key)
    pub.verify(cert[-64:], CERT_CONTEXT + cert[:-64])
    parsed = parse_certificate(cert)
    assert parsed.tbs == cert[:-64] and parsed.signature == cert[-64:]


def test_a_certificate_built_by_the_oracle_verifies() -> None:
    signer = c_ed25519.Ed25519PrivateKey.generate()
    subject_key = c_x25519.X25519PrivateKey.generate()
    subject = raw_public(subject_key)
    trust = TrustStore([RootCA("manufacturer", "Oracle CA", raw_public(signer))])
    cert = oracle_cert(signer, subject=subject, serial=b"A.b_c-9", name=MODEL.encode())
    v = verify_certificate(cert, remote_static=subject, kind="sensor", trust=trust, now=NOW)
    assert (v.serial, v.name, v.subject_key) == ("A.b_c-9", MODEL, subject)
    # a UTF-8 gateway name with non-ASCII letters is fine
    gw_trust = TrustStore([RootCA("site", "Oracle site", raw_public(signer))])
    cert = oracle_cert(signer, subject=subject, kind=2, serial=b"g1", name="Passerelle Hôpital Nord".encode())
    v = verify_certificate(cert, remote_static=subject, kind="gateway", trust=gw_trust, now=NOW)
    assert v.gateway_name == "Passerelle Hôpital Nord"


def test_sizes_and_bounds(world: World) -> None:
    key = world.sensor_pub
    longest = world.site.issue_gateway(key, gateway_name="g" * 64, serial="S" * 64, not_before=0, not_after=2**64 - 1)
    shortest = world.site.issue_gateway(key, gateway_name="g", serial="1", not_before=0, not_after=1)
    assert (len(shortest), len(longest)) == (certmod.CERT_MIN_SIZE, certmod.CERT_MAX_SIZE) == (154, 280)
    p = parse_certificate(longest)
    assert (p.not_before, p.not_after, p.name, p.serial) == (0, 2**64 - 1, "g" * 64, "S" * 64)
    with pytest.raises(InvalidArgumentError):
        world.site.issue_gateway(key, gateway_name="g" * 65, serial="1", not_before=0, not_after=1)
    with pytest.raises(InvalidArgumentError):
        world.site.issue_gateway(key, gateway_name="g", serial="1" * 65, not_before=0, not_after=1)
    with pytest.raises(InvalidArgumentError):
        world.site.issue_gateway(key, gateway_name="é" * 33, serial="1", not_before=0, not_after=1)  # 66 bytes


# -- every reason ------------------------------------------------------------------------------------


MALFORMED_CASES: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda c: b"",
    "truncated by one": lambda c: c[:-1],
    "one trailing byte": lambda c: c + b"\x00",
    "way too long": lambda c: c + bytes(200),
    "bad magic": lambda c: b"CXCU" + c[4:],
    "a revocation list's magic": lambda c: b"CXRL" + c[4:],
    "version 2": lambda c: c[:4] + b"\x02" + c[5:],
    "version 0": lambda c: c[:4] + b"\x00" + c[5:],
    "kind 0": lambda c: c[:5] + b"\x00" + c[6:],
    "kind 3": lambda c: c[:5] + b"\x03" + c[6:],
    "empty window": lambda c: c[:38] + c[46:54] + c[46:54] + c[54:],
    "inverted window": lambda c: c[:38] + c[46:54] + c[38:46] + c[54:],
    "serial length 0": lambda c: c[:86] + b"\x00" + c[87:],
    "serial length too large": lambda c: c[:86] + b"\x41" + c[87:],
    "serial length past the end": lambda c: c[:86] + b"\xff" + c[87:],
    "serial with a space": lambda c: c[:87] + b" " + c[88:],
    "serial with a slash": lambda c: c[:88] + b"/" + c[89:],
    "serial starting with a dot": lambda c: c[:87] + b"." + c[88:],
    "name length off by one": lambda c: c[:94] + bytes([c[94] + 1]) + c[95:],
    "name length 0": lambda c: c[:94] + b"\x00" + c[95:],
    "name with a NUL": lambda c: c[:95] + b"\x00" + c[96:],
    "name with a newline": lambda c: c[:95] + b"\n" + c[96:],
    "name with DEL": lambda c: c[:95] + b"\x7f" + c[96:],
    "name that is not UTF-8": lambda c: c[:95] + b"\xff" + c[96:],
    "name with a leading space": lambda c: c[:95] + b" " + c[96:],
    "model id with a slash": lambda c: c[:96] + b"/" + c[97:],
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CASES))
def test_malformed_is_refused_before_any_crypto(world: World, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_crypto(*args: object) -> None:
        raise AssertionError("signature checked on a malformed certificate")

    monkeypatch.setattr(certmod, "ed25519_verify", no_crypto)
    assert world.sensor_cert[86] == len(SERIAL) == 7 and world.sensor_cert[94] == len(MODEL)  # offsets used above
    bad = MALFORMED_CASES[case](world.sensor_cert)
    assert reason_of(lambda: world.verify_sensor(bad)) is R.MALFORMED
    assert reason_of(lambda: parse_certificate(bad)) is R.MALFORMED


@pytest.mark.parametrize(
    "name",
    [
        "gw\u200bhidden",  # zero-width space (format)
        "gw\u202egnp.exe",  # right-to-left override (format)
        "gw\u2028x",  # line separator
        "gw\u0085x",  # C1 control
        "gw ",  # trailing space
    ],
)
def test_names_with_invisible_or_control_characters_are_malformed_even_when_signed(name: str) -> None:
    signer = c_ed25519.Ed25519PrivateKey.generate()
    subject = raw_public(c_x25519.X25519PrivateKey.generate())
    trust = TrustStore([RootCA("site", "Oracle site", raw_public(signer))])
    cert = oracle_cert(signer, subject=subject, kind=2, name=name.encode("utf-8"))
    assert reason_of(lambda: verify_certificate(cert, remote_static=subject, kind="gateway", trust=trust, now=NOW)) is (
        R.MALFORMED
    )
    with pytest.raises(InvalidArgumentError):
        CertificateAuthority.generate("site", "x").issue_gateway(
            subject, gateway_name=name, serial="1", not_before=0, not_after=1
        )


def test_unknown_issuer(world: World) -> None:
    only_site = TrustStore([world.site.root])
    assert reason_of(lambda: world.verify_sensor(trust=only_site)) is R.UNKNOWN_ISSUER
    assert reason_of(lambda: world.verify_sensor(trust=TrustStore())) is R.UNKNOWN_ISSUER


def test_bad_signature(world: World) -> None:
    for i in (-64, -33, -1):  # R, S, last byte
        bad = bytearray(world.sensor_cert)
        bad[i] ^= 0x01
        assert reason_of(lambda b=bytes(bad): world.verify_sensor(b)) is R.BAD_SIGNATURE
    # a forger signs with its own key but names the trusted CA as issuer
    forger = c_ed25519.Ed25519PrivateKey.generate()
    forged = oracle_cert(forger, issuer_id=world.maker.root.key_id, subject=world.sensor_pub)
    assert reason_of(lambda: world.verify_sensor(forged)) is R.BAD_SIGNATURE
    # a signature over the tbs without the context string does not verify either
    signer = c_ed25519.Ed25519PrivateKey.generate()
    trust = TrustStore([RootCA("manufacturer", "Oracle", raw_public(signer))])
    tbs = oracle_tbs(issuer_id=hashlib.sha256(raw_public(signer)).digest(), subject=world.sensor_pub)
    no_context = tbs + signer.sign(tbs)
    assert reason_of(lambda: world.verify_sensor(no_context, trust=trust)) is R.BAD_SIGNATURE


def test_tampering_any_field_breaks_the_signature(world: World) -> None:
    # a second trusted manufacturer root, so that swapping the issuer id still finds a (wrong) root
    other = CertificateAuthority.generate("manufacturer", "Other maker")
    trust = TrustStore([world.maker.root, other.root])
    cert = world.sensor_cert
    s = len(SERIAL)
    other_id = hashlib.sha256(other.root.public_key).digest()
    tampered = {
        "kind": cert[:5] + b"\x02" + cert[6:],
        "subject key": cert[:6] + bytes([cert[6] ^ 1]) + cert[7:],
        "not_before": cert[:38] + (NB - 1).to_bytes(8, "big") + cert[46:],
        "not_after": cert[:46] + (NA + 1).to_bytes(8, "big") + cert[54:],
        "issuer key id": cert[:54] + other_id + cert[86:],
        "serial": cert[:87] + b"T" + cert[88:],
        "model id": cert[: 88 + s] + b"E" + cert[89 + s :],
    }
    for field, bad in tampered.items():
        assert len(bad) == len(cert) and bad != cert, field
        got = reason_of(lambda b=bad: world.verify_sensor(b, trust=trust))
        assert got is R.BAD_SIGNATURE, field


def test_wrong_kind(world: World) -> None:
    # a gateway certificate offered as a sensor's, and the other way round
    assert reason_of(lambda: world.verify_sensor(world.gateway_cert, remote_static=world.gateway_pub)) is R.WRONG_KIND
    assert reason_of(lambda: world.verify_sensor(kind="gateway")) is R.WRONG_KIND
    # a sensor certificate signed by a site CA (the raw primitive does not check roles)
    rogue = issue_certificate(
        world.site._key,
        kind="sensor",
        subject_key=world.sensor_pub,
        serial="X1",
        name=MODEL,
        not_before=NB,
        not_after=NA,
    )
    with pytest.raises(CertificateError) as info:
        world.verify_sensor(rogue)
    assert info.value.reason is R.WRONG_KIND and "site CA" in str(info.value)


def test_validity_window_boundaries(world: World) -> None:
    assert world.verify_sensor(now=NB).serial == SERIAL
    assert world.verify_sensor(now=NA).serial == SERIAL
    assert world.verify_sensor(now=float(NA)).serial == SERIAL
    assert reason_of(lambda: world.verify_sensor(now=NB - 0.5)) is R.NOT_YET_VALID
    assert reason_of(lambda: world.verify_sensor(now=0)) is R.NOT_YET_VALID
    assert reason_of(lambda: world.verify_sensor(now=NA + 0.5)) is R.EXPIRED
    assert reason_of(lambda: world.verify_sensor(now=NA + 10 * 365 * 86_400)) is R.EXPIRED


def test_now_defaults_to_the_clock(world: World) -> None:
    # issued for 2027..2077, so "now" (no argument) is inside the window whatever the machine's date
    cert = world.maker.issue_sensor(
        world.sensor_pub, model_id=MODEL, serial="clock", not_before=0, not_after=3_400_000_000
    )
    assert world.verify_sensor(cert, now=None).serial == "clock"
    future = world.maker.issue_sensor(
        world.sensor_pub, model_id=MODEL, serial="future", not_before=2**63, not_after=2**64 - 1
    )
    assert reason_of(lambda: world.verify_sensor(future, now=None)) is R.NOT_YET_VALID


def test_wrong_key_is_the_essential_check(world: World) -> None:
    # a valid certificate, but the Noise peer's static key is someone else's (a MITM relaying with its own keys)
    attacker = X25519PrivateKey.generate()
    assert reason_of(lambda: world.verify_sensor(remote_static=attacker.public_bytes())) is R.WRONG_KEY
    # a valid certificate for a different key, presented by the holder of another key
    other = world.maker.issue_sensor(
        attacker.public_bytes(), model_id=MODEL, serial="SN-0002", not_before=NB, not_after=NA
    )
    assert reason_of(lambda: world.verify_sensor(other)) is R.WRONG_KEY
    # one bit off
    near = bytes([world.sensor_pub[0] ^ 0x80]) + world.sensor_pub[1:]
    assert reason_of(lambda: world.verify_sensor(remote_static=near)) is R.WRONG_KEY


def test_revoked_serial(world: World) -> None:
    trust = TrustStore([world.maker.root, world.site.root])
    trust.add_revocation_list(world.maker.revocation_list([SERIAL, "SN-9"], issued_at=NOW))
    assert reason_of(lambda: world.verify_sensor(trust=trust)) is R.REVOKED
    assert trust.is_revoked(world.maker.root.key_id, SERIAL)
    # the same serial revoked by another CA does not touch this CA's certificate
    trust2 = TrustStore([world.maker.root, world.site.root])
    trust2.add_revocation_list(world.site.revocation_list([SERIAL], issued_at=NOW))
    assert world.verify_sensor(trust=trust2).serial == SERIAL
    # another serial of the same CA is still fine
    sn3 = world.maker.issue_sensor(world.sensor_pub, model_id=MODEL, serial="SN-3", not_before=NB, not_after=NA)
    assert world.verify_sensor(sn3, trust=trust).serial == "SN-3"


def _raw_sensor_cert(world: World, model_id: str, serial: str = SERIAL) -> bytes:
    return issue_certificate(
        world.maker._key,
        kind="sensor",
        subject_key=world.sensor_pub,
        serial=serial,
        name=model_id,
        not_before=NB,
        not_after=NA,
    )


def test_registry_reasons(world: World) -> None:
    weak = SensorModel("eeg_cheap_v1", "Budget", snr_db=20.0, bits=16)
    coarse = SensorModel("eeg_8bit_v1", "Budget", snr_db=40.0, bits=8)
    registry = SensorRegistry([*SensorRegistry.default().models(), weak, coarse])

    unknown = _raw_sensor_cert(world, "eeg_unknown_v9")
    assert reason_of(lambda: world.verify_sensor(unknown, registry=registry)) is R.MODEL_UNKNOWN
    assert reason_of(lambda: world.verify_sensor(unknown)) is R.MODEL_UNKNOWN  # the packaged registry by default
    for model in (weak, coarse):
        cert = _raw_sensor_cert(world, model.model_id)
        assert reason_of(lambda c=cert: world.verify_sensor(c, registry=registry)) is R.MODEL_BELOW_MINIMUM

    one_revoked = SensorRegistry.default()
    one_revoked.revoke(f"{MODEL}/{SERIAL}")
    assert reason_of(lambda: world.verify_sensor(registry=one_revoked)) is R.MODEL_REVOKED
    sn2 = _raw_sensor_cert(world, MODEL, "SN-0002")
    assert world.verify_sensor(sn2, registry=one_revoked).serial == "SN-0002"
    model_revoked = SensorRegistry.default()
    model_revoked.revoke(MODEL)
    assert reason_of(lambda: world.verify_sensor(sn2, registry=model_revoked)) is R.MODEL_REVOKED
    # gateways never meet the registry
    g = verify_certificate(
        world.gateway_cert,
        remote_static=world.gateway_pub,
        kind="gateway",
        trust=world.trust,
        now=NOW,
        registry=model_revoked,
    )
    assert g.model is None


def test_check_order(world: World) -> None:
    """parse -> issuer -> signature -> kind -> window -> key -> revocation -> registry."""
    attacker = X25519PrivateKey.generate().public_bytes()
    revoking = TrustStore([world.maker.root, world.site.root])
    revoking.add_revocation_list(world.maker.revocation_list([SERIAL], issued_at=NOW))
    unknown_model = SensorRegistry([])
    bad_sig = world.sensor_cert[:-1] + bytes([world.sensor_cert[-1] ^ 1])
    every_fault = {"remote_static": attacker, "now": NA + 1, "trust": revoking, "registry": unknown_model}
    rows = [
        (world.sensor_cert[:-1], {}, R.MALFORMED),
        (world.sensor_cert, {**every_fault, "trust": TrustStore([world.site.root])}, R.UNKNOWN_ISSUER),
        (bad_sig, every_fault, R.BAD_SIGNATURE),
        (world.sensor_cert, {**every_fault, "kind": "gateway"}, R.WRONG_KIND),
        (world.sensor_cert, every_fault, R.EXPIRED),
        (world.sensor_cert, {**every_fault, "now": NB - 1}, R.NOT_YET_VALID),
        (world.sensor_cert, {**every_fault, "now": NOW}, R.WRONG_KEY),
        (world.sensor_cert, {**every_fault, "now": NOW, "remote_static": world.sensor_pub}, R.REVOKED),
        (world.sensor_cert, {"registry": unknown_model, "trust": world.trust}, R.MODEL_UNKNOWN),
    ]
    for cert, kw, expected in rows:
        assert reason_of(lambda c=cert, k=kw: world.verify_sensor(c, **k)) is expected, expected


def test_argument_refusals(world: World) -> None:
    with pytest.raises(WrongTypeError):
        world.verify_sensor("not bytes")  # type: ignore[arg-type]
    with pytest.raises(WrongLengthError):
        world.verify_sensor(remote_static=world.sensor_pub[:31])
    with pytest.raises(WrongTypeError):
        world.verify_sensor(remote_static=world.sensor_key.key_buffer)
    with pytest.raises(WrongTypeError):
        world.verify_sensor(trust=[world.maker.root])
    for kind in ("router", "SENSOR", "\u017fensor"):  # exact names only (the long s upper-cases to S)
        with pytest.raises(InvalidArgumentError):
            world.verify_sensor(kind=kind)
    with pytest.raises(WrongTypeError):
        world.verify_sensor(kind=1.0)
    with pytest.raises(InvalidArgumentError):
        world.verify_sensor(now=float("nan"))
    with pytest.raises(WrongTypeError):
        world.verify_sensor(now=True)
    with pytest.raises(WrongTypeError):
        world.verify_sensor(registry="default")
    # bytearray and memoryview are accepted as certificate bytes
    assert world.verify_sensor(bytearray(world.sensor_cert)).serial == SERIAL
    assert world.verify_sensor(memoryview(world.sensor_cert)).serial == SERIAL


def test_certificate_error_carries_its_reason() -> None:
    exc = CertificateError(R.EXPIRED, "certificate SN-1 expired at 5")
    assert isinstance(exc, SensorNotCertifiedError) and isinstance(exc, CortexError)
    again = pickle.loads(pickle.dumps(exc))
    assert (type(again), again.reason, again.message) == (CertificateError, R.EXPIRED, "certificate SN-1 expired at 5")
    assert str(again) == str(exc) == "certificate SN-1 expired at 5 (reason: expired)"
    assert CertificateError("revoked", "x").reason is R.REVOKED  # type: ignore[arg-type]
    assert R.WRONG_KEY == "wrong_key"


# -- issuing -------------------------------------------------------------------------------------------


def test_issuing_refusals(world: World) -> None:
    key = world.sensor_pub
    for point in LOW_ORDER_POINTS:
        with pytest.raises(InvalidArgumentError, match="low-order"):
            world.maker.issue_sensor(point, model_id=MODEL, serial="L1", not_before=NB, not_after=NA)
    with pytest.raises(InvalidArgumentError, match="site CA"):
        world.site.issue_sensor(key, model_id=MODEL, serial="S1", not_before=NB, not_after=NA)
    with pytest.raises(InvalidArgumentError, match="manufacturer CA"):
        world.maker.issue_gateway(key, gateway_name="gw", serial="S1", not_before=NB, not_after=NA)
    with pytest.raises(SensorNotCertifiedError, match="not in the certified registry"):
        world.maker.issue_sensor(key, model_id="eeg_unknown_v9", serial="S1", not_before=NB, not_after=NA)
    for serial in ("", "a b", "-lead", ".hidden", "x/y", "é", "a" * 65):
        with pytest.raises(InvalidArgumentError):
            world.maker.issue_sensor(key, model_id=MODEL, serial=serial, not_before=NB, not_after=NA)
    with pytest.raises(InvalidArgumentError, match="earlier"):
        world.maker.issue_sensor(key, model_id=MODEL, serial="S1", not_before=NA, not_after=NA)
    with pytest.raises(InvalidArgumentError):
        world.maker.issue_sensor(key, model_id=MODEL, serial="S1", not_before=-1, not_after=NA)
    with pytest.raises(InvalidArgumentError):
        world.maker.issue_sensor(key, model_id=MODEL, serial="S1", not_before=0, not_after=2**64)
    with pytest.raises(WrongTypeError):
        world.maker.issue_sensor(key, model_id=MODEL, serial="S1", not_before=float(NB), not_after=NA)  # type: ignore[arg-type]
    with pytest.raises(WrongLengthError):
        world.maker.issue_sensor(key[:31], model_id=MODEL, serial="S1", not_before=NB, not_after=NA)
    with pytest.raises(InvalidArgumentError, match="'/'"):
        issue_certificate(
            world.maker._key, kind="sensor", subject_key=key, serial="S1", name="a/b", not_before=NB, not_after=NA
        )
    with pytest.raises(WrongTypeError):
        issue_certificate(b"key", kind="sensor", subject_key=key, serial="S1", name="m", not_before=0, not_after=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        CertificateAuthority.generate("hospital", "x")
    with pytest.raises(InvalidArgumentError):
        CertificateAuthority.generate("site", "")


def test_a_purged_ca_refuses_to_sign() -> None:
    with CertificateAuthority.generate("site", "Temp") as ca:
        ca.issue_gateway(bytes(31) + b"\x09", gateway_name="gw", serial="1", not_before=0, not_after=1)
    with pytest.raises(PurgedBufferError):
        ca.issue_gateway(bytes(31) + b"\x09", gateway_name="gw", serial="2", not_before=0, not_after=1)


# -- roots, revocation lists, the trust store -----------------------------------------------------------


def test_root_json_round_trip_and_strictness(world: World) -> None:
    root = world.maker.root
    assert RootCA.from_json(root.to_json()) == root
    assert root.key_id == hashlib.sha256(root.public_key).digest()
    good = {"format": "cortex-sal ca root v1", "kind": "manufacturer", "name": "X", "public_key": "ab" * 32}
    assert RootCA.from_json(json.dumps(good)).kind is CAKind.MANUFACTURER
    bad_docs = [
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "name"},
        {**good, "format": "cortex-sal ca root v2"},
        {**good, "kind": "hospital"},
        {**good, "public_key": "AB" * 32},
        {**good, "public_key": "ab" * 31},
        {**good, "name": ""},
        {**good, "name": 7},
        {**good, "kind": None},
    ]
    for doc in bad_docs:
        with pytest.raises(InvalidArgumentError):
            RootCA.from_json(json.dumps(doc))
    for text in ("[]", "not json", '{"a": NaN}', ""):
        with pytest.raises(InvalidArgumentError):
            RootCA.from_json(text)


def test_revocation_list_layout_and_oracle(world: World) -> None:
    crl = world.maker.revocation_list(["b2", "a1", "B0", "a1"], issued_at=NOW)
    assert crl[:4] == b"CXRL" and crl[4] == 1 and crl[5:37] == world.maker.root.key_id
    assert struct.unpack(">QI", crl[37:49]) == (NOW, 3)
    assert crl[49:-64] == b"\x02B0\x02a1\x02b2"  # sorted bytewise, duplicates dropped
    c_ed25519.Ed25519PublicKey.from_public_bytes(world.maker.root.public_key).verify(crl[-64:], CRL_CONTEXT + crl[:-64])
    parsed = parse_revocation_list(crl)
    assert (parsed.issued_at, parsed.serials) == (NOW, frozenset({"a1", "b2", "B0"}))
    # an oracle-built list is accepted
    signer = c_ed25519.Ed25519PrivateKey.generate()
    trust = TrustStore([RootCA("site", "Oracle", raw_public(signer))])
    got = trust.add_revocation_list(oracle_crl(signer, [b"x1", b"x2"]))
    assert got.serials == frozenset({"x1", "x2"})


def test_revocation_list_refusals(world: World) -> None:
    signer = c_ed25519.Ed25519PrivateKey.generate()
    root = RootCA("manufacturer", "Oracle", raw_public(signer))
    trust = TrustStore([root])
    good = oracle_crl(signer, [b"a", b"b"])
    # forged: another key signs a list naming this CA as issuer
    forger = c_ed25519.Ed25519PrivateKey.generate()
    forged = oracle_crl(forger, [b"a"])
    forged = forged[:5] + root.key_id + forged[37:]
    assert reason_of(lambda: trust.add_revocation_list(forged)) is R.BAD_SIGNATURE
    # unsigned: zero signature, or no signature at all
    assert reason_of(lambda: trust.add_revocation_list(good[:-64] + bytes(64))) is R.BAD_SIGNATURE
    assert reason_of(lambda: trust.add_revocation_list(good[:-64])) is R.MALFORMED
    # tampered: a serial dropped from a signed list
    dropped = good[:45] + struct.pack(">I", 1) + b"\x01a" + good[-64:]
    assert reason_of(lambda: trust.add_revocation_list(dropped)) is R.BAD_SIGNATURE
    # unknown issuer
    other = oracle_crl(forger, [])
    assert reason_of(lambda: trust.add_revocation_list(other)) is R.UNKNOWN_ISSUER
    # non-canonical lists are malformed even when properly signed
    for serials in ([b"b", b"a"], [b"a", b"a"], [b"a b"], [b""]):
        assert reason_of(lambda s=serials: trust.add_revocation_list(oracle_crl(signer, s))) is R.MALFORMED
    wrong_count = oracle_crl(signer, [b"a"])
    wrong_count = wrong_count[:45] + struct.pack(">I", 2) + wrong_count[49:]
    assert reason_of(lambda: trust.add_revocation_list(wrong_count)) is R.MALFORMED
    assert reason_of(lambda: trust.add_revocation_list(good + b"\x00")) is R.MALFORMED
    assert reason_of(lambda: trust.add_revocation_list(b"CXCT" + good[4:])) is R.MALFORMED
    assert trust.revocation_list(root.key_id) is None  # nothing above was kept

    # newer lists replace older ones; an older (or a different same-dated) one is STALE
    assert trust.add_revocation_list(good).serials == {"a", "b"}
    assert trust.add_revocation_list(good).serials == {"a", "b"}  # the same list again is fine
    newer = oracle_crl(signer, [b"a", b"b", b"c"], issued_at=NOW + 1)
    assert trust.add_revocation_list(newer).serials == {"a", "b", "c"}
    assert reason_of(lambda: trust.add_revocation_list(good)) is R.STALE
    assert reason_of(lambda: trust.add_revocation_list(oracle_crl(signer, [], issued_at=NOW + 1))) is R.STALE
    assert trust.is_revoked(root.key_id, "c")


def test_trust_store_roots(world: World) -> None:
    trust = TrustStore([world.maker.root])
    trust.add_root(world.maker.root)  # the same root twice is harmless
    assert len(trust) == 1 and trust.root(world.maker.root.key_id) == world.maker.root
    with pytest.raises(InvalidArgumentError):  # the same key under another name or role
        trust.add_root(RootCA("site", "Other", world.maker.root.public_key))
    with pytest.raises(WrongTypeError):
        trust.add_root(world.maker.root.public_key)  # type: ignore[arg-type]
    assert "1 roots" in repr(trust)


# -- fuzzing: only CertificateError ever comes out ----------------------------------------------------------


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=320))
def test_random_bytes_only_raise_certificate_error(data: bytes) -> None:
    w = _FUZZ
    with pytest.raises(CertificateError):
        verify_certificate(data, remote_static=w["pub"], kind="sensor", trust=w["trust"], now=NOW)
    with pytest.raises(CertificateError):
        w["trust"].add_revocation_list(data)


@settings(max_examples=examples(2500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 300)),
    tail=st.binary(max_size=4),
)
def test_mutated_certificates_never_verify(edits: list[tuple[int, int]], cut: int | None, tail: bytes) -> None:
    w = _FUZZ
    cert = bytearray(w["cert"])
    for pos, value in edits:
        cert[pos % len(cert)] = value
    if cut is not None:
        del cert[cut % (len(cert) + 1) :]
    cert += tail
    mutated = bytes(cert)
    if mutated == w["cert"]:
        assert verify_certificate(mutated, remote_static=w["pub"], kind="sensor", trust=w["trust"], now=NOW)
    else:
        with pytest.raises(CertificateError):
            verify_certificate(mutated, remote_static=w["pub"], kind="sensor", trust=w["trust"], now=NOW)


def _fuzz_world() -> dict[str, object]:
    signer = c_ed25519.Ed25519PrivateKey.generate()
    subject = raw_public(c_x25519.X25519PrivateKey.generate())
    trust = TrustStore([RootCA("manufacturer", "Fuzz CA", raw_public(signer))])
    return {"cert": oracle_cert(signer, subject=subject), "pub": subject, "trust": trust}


_FUZZ: dict[str, Any] = _fuzz_world()


# -- the signature cache ----------------------------------------------------------------------------


def test_a_remembered_signature_skips_only_the_ed25519_step(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = certmod.ed25519_verify

    def counting(public_key: bytes, message: bytes, signature: bytes) -> None:
        if bytes(message).startswith(CERT_CONTEXT):  # not the revocation lists' signatures
            calls.append(public_key)
        real(public_key, message, signature)

    monkeypatch.setattr(certmod, "ed25519_verify", counting)
    certmod.clear_signature_cache()
    world.verify_sensor()
    world.verify_sensor()
    assert len(calls) == 1  # the same bytes under the same root: verified once
    # every other check still runs on a remembered certificate
    assert reason_of(lambda: world.verify_sensor(now=NA + 1)) is CertificateReason.EXPIRED
    assert reason_of(lambda: world.verify_sensor(remote_static=world.gateway_pub)) is CertificateReason.WRONG_KEY
    assert reason_of(lambda: world.verify_sensor(trust=TrustStore([world.site.root]))) is (
        CertificateReason.UNKNOWN_ISSUER
    )
    revoked = TrustStore([world.maker.root])
    revoked.add_revocation_list(world.maker.revocation_list([SERIAL], issued_at=NOW))
    assert reason_of(lambda: world.verify_sensor(trust=revoked)) is CertificateReason.REVOKED
    # a byte changed is other bytes: verified (and refused) again
    tampered = bytearray(world.sensor_cert)
    tampered[-1] ^= 1
    assert reason_of(lambda: world.verify_sensor(bytes(tampered))) is CertificateReason.BAD_SIGNATURE
    assert len(calls) == 2
    certmod.clear_signature_cache()
    world.verify_sensor()
    assert len(calls) == 3


def test_a_failed_signature_is_never_remembered(world: World) -> None:
    certmod.clear_signature_cache()
    tampered = bytearray(world.sensor_cert)
    tampered[-2] ^= 0x10
    for _ in range(2):
        assert reason_of(lambda: world.verify_sensor(bytes(tampered))) is CertificateReason.BAD_SIGNATURE
    assert not certmod._verified_signatures


def test_the_signature_cache_is_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    certmod.clear_signature_cache()
    monkeypatch.setattr(certmod, "SIGNATURE_CACHE_SIZE", 3)
    for i in range(5):
        key = X25519PrivateKey.generate()
        cert = world.maker.issue_sensor(key.public_bytes(), model_id=MODEL, serial=f"SN-C{i}", not_before=NB,
                                        not_after=NA)  # fmt: skip
        world.verify_sensor(cert, remote_static=key.public_bytes())
        key.purge()
    assert len(certmod._verified_signatures) == 3
    certmod.clear_signature_cache()
