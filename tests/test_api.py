"""The applications' API (docs/api.md): real gateway, real KEROS v2 sensors, real WebSocket clients.

What an app receives, in order and only with consent; a revocation from another process closes
its subscription within a second and nothing released after it arrives; two apps see one wearer
under different ids; no method or stream ever carries a sample; the clinical stream opens only
with the clinician's key (checked with ``cryptography``, an independent implementation); the
client reconnects and resubscribes; the documented shell session runs as written.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from cortex_sal.cli import main
from cortex_sal.client import Client, Features, subscribe_blocking
from cortex_sal.errors import AccessDeniedError, GatewayError, SubscriptionClosedError
from cortex_sal.gateway.api import CODES, STREAMS, ApiLimits, ApiServer, authorization_message
from cortex_sal.gateway.sensor import run_sensor
from cortex_sal.gateway.server import Gateway
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.sources import synthetic_eeg
from cortex_sal.store.base import subject_of
from cortex_sal.store.keros import load_identity
from cortex_sal.store.runtime import durable_ledger
from cortex_sal.store.sqlite import SqliteStore
from service_world import MODEL, make_pki, start_gateway, trust

ROOT = Path(__file__).resolve().parents[1]
SEED = 3  # the synthetic signal every sensor of this file streams


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_pki(tmp_path_factory.mktemp("pki"), ("SN-0001", "SN-0002"))


def _apps(data: Path, out: Path, *names: str) -> None:
    for name in names:
        assert main(["apps", "add", name, "--data-dir", str(data), "--out", str(out)]) == 0


def _grant(data: Path, serial: str, app: str, scopes: list[str], ttl: float = 3600.0) -> None:
    """As ``cortex-sal consent grant`` does: another connection to the store than the gateway's."""
    with SqliteStore(data) as store:
        durable_ledger(store, DEFAULT_THRESHOLDS).grant(subject_of(f"{MODEL}/{serial}"), scopes, ttl, app=app,
                                                        purpose="tests")  # fmt: skip


def _revoke(data: Path, serial: str, app: str) -> None:
    with SqliteStore(data) as store:
        durable_ledger(store, DEFAULT_THRESHOLDS).revoke(subject_of(f"{MODEL}/{serial}"), "test over", app=app)


def _sensor(pki: Path, gw: Gateway, serial: str, frames: int, period_s: float = 0.05) -> asyncio.Task[Any]:
    key, cert = load_identity(pki / f"sensors/{serial.lower()}")

    async def run() -> Any:
        try:
            assert gw.address is not None
            return await run_sensor(*gw.address, static_key=key, certificate=cert, trust=trust(pki),
                                    frames=synthetic_eeg(frames, seed=SEED).frames, total=frames,
                                    rate_hz=256 / period_s)  # fmt: skip
        finally:
            key.purge()

    return asyncio.create_task(run())


async def _world(pki: Path, data: Path, **limits: Any) -> Gateway:
    gw = await start_gateway(pki, data)
    await gw.serve_api(limits=ApiLimits(**limits))
    return gw


async def _stop(gw: Gateway, *tasks: asyncio.Task[Any]) -> None:
    for t in tasks:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a sensor that was done, or cancelled
            await t
    await gw.shutdown()
    gw._test_key.purge()  # type: ignore[attr-defined]


def _url(gw: Gateway) -> str:
    assert gw.api is not None and gw.api.address is not None
    host, port = gw.api.address
    return f"ws://{host}:{port}"


def test_an_app_gets_features_in_order_until_the_wearer_revokes(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    _apps(data, tmp_path, "demo-app")

    async def scenario() -> None:
        gw = await _world(pki, data)
        sensor = _sensor(pki, gw, "SN-0001", 2000)
        try:
            async with Client(_url(gw), tmp_path / "demo-app.key") as app:
                assert await app.request_access(["biometric"], "focus tracking") is False
                with SqliteStore(data) as store:  # the request waits for the wearer
                    (request,) = store.access_requests("demo-app")
                    assert request.status == "pending" and request.scopes == ("biometric",)
                assert await app.list_sensors() == []
                grant = ["consent", "grant", "--data-dir", str(data), "--sensor", f"{MODEL}/SN-0001", "--app"]
                assert main([*grant, "demo-app", "--scopes", "biometric", "--ttl", "3600", "--purpose", "x"]) == 0
                with SqliteStore(data) as store:
                    assert [r.status for r in store.access_requests("demo-app")] == ["approved"]
                assert await app.request_access(["biometric"], "focus tracking") is True
                (entry,) = await app.list_sensors()
                assert entry.connected and entry.model == MODEL and entry.streams == ("features",)
                assert re.fullmatch(r"[0-9a-f]{32}", entry.sensor)
                seqs: list[int] = []
                revoked_wall = None
                with pytest.raises(SubscriptionClosedError) as closed:
                    async for msg in app.subscribe(entry.sensor, ["features", "research"]):
                        assert isinstance(msg, Features)  # research was refused: desci is not granted
                        assert len(msg.tensor) == 1 and len(msg.tensor[0]) == 5
                        assert all(0.0 <= x <= 1.0 for x in msg.tensor[0]) and msg.state in (
                            "ventral_vagal (calm)", "sympathetic (focused)", "dorsal_vagal (rest_needed)")  # fmt: skip
                        if revoked_wall is not None:  # released before the revocation, or never
                            assert msg.time <= revoked_wall, (msg.time, revoked_wall)
                        seqs.append(msg.seq)
                        if len(seqs) == 15:
                            await asyncio.to_thread(_revoke, data, "SN-0001", "demo-app")
                            revoked_wall, revoked_at = time.time(), time.monotonic()
                closed_after = time.monotonic() - revoked_at
                assert app.last_failures[0]["name"] == "scope_not_granted"
                assert closed.value.code == CODES["consent_revoked"] == -33020
                assert closed.value.name == "consent_revoked"
                assert (closed.value.sensor, closed.value.stream) == (entry.sensor, "features")  # which one ended
                assert closed_after < 1.0, closed_after
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # in order, no gap
            assert gw.api is not None and gw.api.subscriptions == 0
        finally:
            await _stop(gw, sensor)

    asyncio.run(scenario())
    with SqliteStore(data) as store:
        events = [e.event for e in store.audit_entries()]
        for event in ("app_added", "access_requested", "access_approved", "app_authorized", "subscribed",
                      "subscription_ended"):  # fmt: skip
            assert event in events, event
        assert store.verify_audit().ok
        text = json.dumps([dict(e.details) for e in store.audit_entries()])
        assert "SN-0001" not in text


def test_two_apps_see_one_wearer_under_different_stable_ids(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    _apps(data, tmp_path, "app-a", "app-b")
    for app in ("app-a", "app-b"):
        _grant(data, "SN-0001", app, ["biometric"])

    async def ids() -> tuple[str, str]:
        gw = await _world(pki, data)
        try:
            async with Client(_url(gw), tmp_path / "app-a.key") as a, Client(_url(gw), tmp_path / "app-b.key") as b:
                ((ea,), (eb,)) = await a.list_sensors(), await b.list_sensors()
                return ea.sensor, eb.sensor
        finally:
            await _stop(gw)

    first = asyncio.run(ids())
    again = asyncio.run(ids())  # another gateway process on the same store: the same ids
    assert first == again and first[0] != first[1]
    subject = subject_of(f"{MODEL}/SN-0001")
    assert subject not in first and hashlib.sha256(f"{MODEL}/SN-0001".encode()).hexdigest()[:32] not in first
    assert (data / "pairwise.key").stat().st_mode & 0o777 == 0o600


def _raw_values(frames: int) -> set[float]:
    """Every sample the sensors of this file stream, as the float32 values the shield received."""
    out: set[float] = set()
    for frame in synthetic_eeg(frames, seed=SEED).frames:
        out.update(float(x) for x in np.asarray(frame, dtype=np.float32))
    return out


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)


def test_no_method_and_no_stream_carries_a_sample(pki: Path, tmp_path: Path) -> None:
    """Every method of the API, every stream, raw WebSocket: nothing sent holds a raw sample."""
    data = tmp_path / "D"
    _apps(data, tmp_path, "greedy-app")
    _grant(data, "SN-0001", "greedy-app", ["biometric", "desci", "clinical"])
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as Clinician

    clinician = Clinician.generate()
    clinician_pub = clinician.public_key().public_bytes_raw()
    assert set(ApiServer._methods) == {"getChallenge", "requestAccess", "authorize", "listSensors", "subscribe",
                                       "unsubscribe"}  # fmt: skip
    assert set(STREAMS) == {"features", "research", "clinical"}
    received: list[Any] = []

    async def scenario() -> None:
        gw = await _world(pki, data)
        sensor = _sensor(pki, gw, "SN-0001", 40, period_s=0.02)
        seed = (tmp_path / "greedy-app.key").read_bytes()  # the oracle: the app's own key, signed independently
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        signer = Ed25519PrivateKey.from_private_bytes(seed)
        try:
            async with connect(_url(gw)) as ws:

                async def call(method: str, **params: Any) -> Any:
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": method, "method": method, "params": params}))
                    while True:
                        msg = json.loads(await ws.recv())
                        received.append(msg)
                        if msg.get("id") == method:
                            return msg["result"]

                public = signer.public_key().public_bytes_raw().hex()
                await call("requestAccess", app_id="greedy-app", app_public_key=public, scopes=["biometric"],
                           purpose="everything")  # fmt: skip
                challenge = base64.b64decode((await call("getChallenge", app_id="greedy-app"))["challenge"])
                sig = signer.sign(authorization_message("greedy-app", challenge))
                signed = base64.b64encode(sig).decode()
                token = (await call("authorize", app_id="greedy-app", signature=signed))["token"]
                (entry,) = (await call("listSensors", token=token))["sensors"]
                assert entry["streams"] == ["features", "research", "clinical"]
                got = await call("subscribe", token=token, sensor=entry["sensor"], streams=list(STREAMS),
                                 clinician_public_key=clinician_pub.hex())  # fmt: skip
                assert {s["stream"] for s in got["success"]} == set(STREAMS) and not got["failure"]
                sids = {s["stream"]: s for s in got["success"]}
                counts = dict.fromkeys(STREAMS, 0)
                deadline = time.monotonic() + 20
                while min(counts.values()) < 5 and time.monotonic() < deadline:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    received.append(msg)
                    if "values" in msg:
                        counts[msg["stream"]] += 1
                assert min(counts.values()) >= 5, counts
                await call("unsubscribe", token=token, sensor=entry["sensor"], streams=list(STREAMS))
        finally:
            await _stop(gw, sensor)
        # the clinical ciphertext opens with the clinician's key only, to the features of the same frame
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        gw_pub = bytes.fromhex(sids["clinical"]["gateway_public_key"])
        shared = clinician.exchange(X25519PublicKey.from_public_bytes(gw_pub))
        salt = hashlib.sha256(min(gw_pub, clinician_pub) + max(gw_pub, clinician_pub)).digest()
        key = HKDF(hashes.SHA256(), 32, salt, b"cortex-clinical-stream-v1").derive(shared)
        features = {m["seq"]: m["values"] for m in received if m.get("stream") == "features" and "values" in m}
        opened = 0
        for m in received:
            if m.get("stream") == "clinical" and "values" in m:
                blob = base64.b64decode(m["values"][0])
                counter = blob[:8]
                plain = ChaCha20Poly1305(key).decrypt(b"\x00" * 4 + counter, blob[8:],
                                                      counter + sids["clinical"]["sid"].encode())  # fmt: skip
                if m["seq"] in features:
                    assert json.loads(plain) == features[m["seq"]]
                    opened += 1
        assert opened >= 3
        for m in received:
            if m.get("stream") == "research" and "values" in m:
                assert len(base64.b64decode(m["values"][0])) == 41

    asyncio.run(scenario())
    raw = _raw_values(40)
    sent = [x for msg in received for x in _numbers(msg)]
    assert sent and not raw.intersection(sent)
    assert not any(isinstance(v, list) and len(v) >= 64 for msg in received for v in _lists(msg))


def _lists(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield value
        for v in value:
            yield from _lists(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _lists(v)


def test_an_expiry_and_capacity_none_close_subscriptions_without_any_frame(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    _apps(data, tmp_path, "brief-app", "calm-app")
    _grant(data, "SN-0001", "brief-app", ["biometric"], ttl=5.0)
    _grant(data, "SN-0002", "calm-app", ["biometric"])

    async def scenario() -> None:
        gw = await _world(pki, data)
        sensors = [_sensor(pki, gw, "SN-0001", 3, period_s=0.01), _sensor(pki, gw, "SN-0002", 3, period_s=0.01)]
        try:
            await asyncio.gather(*sensors)  # the sensors are done: no frame flows from here on
            async with Client(_url(gw), tmp_path / "brief-app.key") as a, \
                    Client(_url(gw), tmp_path / "calm-app.key") as b:  # fmt: skip
                ((ea,), (eb,)) = await a.list_sensors(), await b.list_sensors()
                assert not ea.connected and not eb.connected
                next_a = asyncio.ensure_future(anext(a.subscribe(ea.sensor, ["features"])))
                next_b = asyncio.ensure_future(anext(b.subscribe(eb.sensor, ["features"])))
                await asyncio.sleep(0.3)
                assert gw.api is not None and gw.api.subscriptions == 2
                with SqliteStore(data) as store:  # when the grant ends
                    (record,) = [r for r in store.consent_records() if r.app == "brief-app"]
                assert record.expires_at > time.time()
                with pytest.raises(SubscriptionClosedError) as expired:
                    await asyncio.wait_for(next_a, 8.0)
                assert expired.value.name == "consent_expired"
                assert time.time() - record.expires_at < 1.0
                with SqliteStore(data) as store:  # capacity NONE, reported by another process
                    durable_ledger(store, DEFAULT_THRESHOLDS).report_capacity(subject_of(f"{MODEL}/SN-0002"), "NONE")
                started = time.monotonic()
                with pytest.raises(SubscriptionClosedError) as none:
                    await asyncio.wait_for(next_b, 5.0)
                assert none.value.name == "capacity_none" and time.monotonic() - started < 1.0
        finally:
            await _stop(gw)

    asyncio.run(scenario())


def test_the_client_reconnects_and_resubscribes(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    _apps(data, tmp_path, "steady-app")
    _grant(data, "SN-0001", "steady-app", ["biometric"])

    async def scenario() -> None:
        gw = await _world(pki, data)
        sensor = _sensor(pki, gw, "SN-0001", 2000)
        try:
            async with Client(_url(gw), tmp_path / "steady-app.key", backoff_s=0.05) as app:
                (entry,) = await app.list_sensors()
                seqs = []
                async for msg in app.subscribe(entry.sensor, ["features"]):
                    assert isinstance(msg, Features)
                    seqs.append(msg.seq)
                    if len(seqs) == 5:
                        assert gw.api is not None
                        for conn in list(gw.api._conns):  # the network cuts every API connection
                            conn.ws.transport.abort()
                    if len(seqs) == 15:
                        break
                assert app.reconnects == 1
                assert seqs == sorted(seqs) and len(set(seqs)) == 15
        finally:
            await _stop(gw, sensor)

    asyncio.run(scenario())


def test_a_notebook_iterates_without_asyncio(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    _apps(data, tmp_path, "notebook")
    _grant(data, "SN-0001", "notebook", ["biometric"])
    ready: dict[str, Any] = {}
    done = asyncio.Event()

    async def serve() -> None:
        gw = await _world(pki, data)
        ready["url"] = _url(gw)
        sensor = _sensor(pki, gw, "SN-0001", 2000)
        try:
            while not done.is_set():
                await asyncio.sleep(0.05)
        finally:
            await _stop(gw, sensor)

    import threading

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()))
    thread.start()
    try:
        for _ in range(200):
            if "url" in ready:
                break
            time.sleep(0.05)
        got = list(subscribe_blocking(ready["url"], tmp_path / "notebook.key", None, ["features"], limit=4))
        assert len(got) == 4 and all(isinstance(m, Features) for m in got)
        with pytest.raises(AccessDeniedError):
            list(subscribe_blocking(ready["url"], tmp_path / "notebook.key", "0" * 32, ["features"], limit=1))
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(30)
        loop.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_the_documented_session_works_as_written(tmp_path: Path) -> None:
    """docs/api.md's shell session and app.py, run as written (only the two ports replaced)."""
    doc = (ROOT / "docs/api.md").read_text()
    (script,) = _blocks(doc, "sh")
    (app,) = _blocks(doc, "python")
    ports = {"7700": str(_free_port()), "7701": str(_free_port())}
    for old, new in ports.items():
        script = script.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        app = app.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    (tmp_path / "app.py").write_text(app)
    (tmp_path / "session.sh").write_text(script)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    assert shutil.which("cortex-sal", path=env["PATH"]) is not None
    done = subprocess.run(["bash", "session.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "access granted: False" in out
    assert "demo-app" in out and "biometric" in out  # consent requests lists the pending request
    log = (tmp_path / "demo/app.log").read_text()
    assert re.search(rf"^sensor [0-9a-f]{{32}} {MODEL} ", log, re.M), log
    assert len(re.findall(r"^seq \d+ ", log, re.M)) >= 3, log
    assert log.rstrip().endswith("subscription closed: consent_revoked (-33020)"), log
    gateway_log = (tmp_path / "demo/gateway.log").read_text()
    assert re.search(r"^stopped: \d+/\d+ sessions closed", gateway_log, re.M), gateway_log


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with ``cryptography`` (the test's own, independent of the gateway)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "api.crt", directory / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)
    return cert_path, key_path


def test_the_api_beyond_loopback_needs_tls_and_serves_wss(pki: Path, tmp_path: Path) -> None:
    import ssl

    base = ["gateway", "--data-dir", str(tmp_path / "D"), "--identity", str(pki / "gw"), "--no-harden",
            "--trust", str(pki / "ca/maker"), "--trust", str(pki / "ca/site"), "--listen", "127.0.0.1:0"]  # fmt: skip
    assert main([*base, "--api", "0.0.0.0:0"]) == 2  # refused before anything listens
    cert, key = _self_signed(tmp_path)
    assert main([*base, "--api", "0.0.0.0:0", "--tls-cert", str(cert)]) == 2  # a certificate needs its key
    data = tmp_path / "D"
    _apps(data, tmp_path, "tls-app")
    _grant(data, "SN-0001", "tls-app", ["biometric"])

    async def scenario() -> None:
        gw = await start_gateway(pki, data)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert, key)
        await gw.serve_api(ssl_context=server)
        sensor = _sensor(pki, gw, "SN-0001", 2000)
        try:
            assert gw.api is not None and gw.api.address is not None
            url = f"wss://127.0.0.1:{gw.api.address[1]}"
            client = ssl.create_default_context(cafile=str(cert))
            async with Client(url, tmp_path / "tls-app.key", ssl=client) as app:
                (entry,) = await app.list_sensors()
                async for msg in app.subscribe(entry.sensor, ["features"]):
                    assert isinstance(msg, Features)
                    break
            with pytest.raises(GatewayError, match=r"cannot open the API .*certificate verify failed"):
                async with Client(url, tmp_path / "tls-app.key", ssl=ssl.create_default_context()):
                    pass  # a client that does not trust the certificate never gets to authorise
        finally:
            await _stop(gw, sensor)

    asyncio.run(scenario())


def test_the_shields_own_drift_block_closes_the_subscription(pki: Path, tmp_path: Path) -> None:
    """Capacity NONE decided in the gateway's own process (the drift rule blocks a stream pushed 20
    frames a second on the real clock): no other process wrote, and the frame that tripped it released
    nothing, yet the subscription is closed with capacity_none."""
    data = tmp_path / "D"
    _apps(data, tmp_path, "drift-app")
    _grant(data, "SN-0001", "drift-app", ["biometric"])

    async def scenario() -> None:
        gw = await _world(pki, data)
        sensor = _sensor(pki, gw, "SN-0001", 2000, period_s=0.05)
        try:
            async with Client(_url(gw), tmp_path / "drift-app.key") as app:
                (entry,) = await app.list_sensors()
                got = 0
                with pytest.raises(SubscriptionClosedError) as closed:
                    async with asyncio.timeout(30):
                        async for _ in app.subscribe(entry.sensor, ["features"]):
                            got += 1
                assert closed.value.name == "capacity_none" and got >= 1
        finally:
            await _stop(gw, sensor)

    asyncio.run(scenario())
