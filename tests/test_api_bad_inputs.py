"""The issue's "Security and bad input" list for the applications' API, against a real gateway on
127.0.0.1 with a real sensor streaming (KEROS v2, :func:`run_sensor`, :data:`FPS` frames/s) and real
WebSocket clients: raw ``websockets`` connections for the hostile messages, the Python client
(:class:`cortex_sal.client.Client`) for the authenticated cases.

Each bad input gets its specific JSON-RPC error (or WebSocket close code, or HTTP status), is
counted (``ApiServer.counters`` and ``cortex_sal_api_events_total{event}``, which must agree) and
audited where it matters; and throughout, a well-behaved application (the *watcher*, subscribed
to the sensor's features from before the attack to after it) gets every released frame, in
order, each within :data:`LATENCY_BOUND` of its release, and after the attack a fresh
application still authorises, subscribes and receives. No audit entry holds a raw sensor id or
a token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from cortex_sal.cli import main
from cortex_sal.client import Client, Features
from cortex_sal.crypto.ed25519 import SEED_SIZE, Ed25519SigningKey
from cortex_sal.errors import AccessDeniedError, InvalidArgumentError, NotAuthorizedError
from cortex_sal.gateway.api import CODES, ApiLimits, ApiServer, authorization_message
from cortex_sal.gateway.sensor import SensorReport, run_sensor
from cortex_sal.gateway.server import Gateway
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.sal.frame import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from cortex_sal.store.base import subject_of
from cortex_sal.store.files import read_secret_file
from cortex_sal.store.keros import load_identity
from cortex_sal.store.runtime import durable_ledger
from cortex_sal.store.sqlite import SqliteStore
from service_world import MODEL, start_gateway, trust

STREAMER = "SN-0001"  # connected, streaming through every test
HIDDEN = "SN-0002"  # consented to the watcher's app only, never to the hostile one
WATCHER, HOSTILE, FRESH = "good-app", "bad-app", "other-app"
PROBE = "probe-app"  # only World.serves uses it: nothing attacks it
FPS = 20  # frames/s: 40x the native rate (a frame is 2 s of samples)
RATE_HZ = float(SAMPLES_PER_FRAME * FPS)
LATENCY_BOUND = 0.5  # s, release -> a well-behaved app's iterator; the quiet figure is a few ms
TIMEOUT = 5.0
# a faint, steady 10 Hz rhythm: the drift detector's cap is ~800 of these a minute (see
# tests/test_gateway_bad_inputs.py), far beyond any test here
STEADY = (0.2 * np.sin(2 * np.pi * 10.0 * np.arange(SAMPLES_PER_FRAME) / 128.0)).astype(SAMPLE_DTYPE)
RAW_IDS = (f"{MODEL}/{STREAMER}", f"{MODEL}/{HIDDEN}", STREAMER, HIDDEN)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("pki")

    def ca(*args: str) -> None:
        assert main(["ca", *args]) == 0, args

    ca("init", "--kind", "manufacturer", "--name", "NeuroStandard GmbH", "--out", str(d / "ca/maker"))
    ca("init", "--kind", "site", "--name", "Ward 3", "--out", str(d / "ca/site"))
    for serial in (STREAMER, HIDDEN):
        ca("issue-sensor", "--ca", str(d / "ca/maker"), "--model", MODEL, "--serial", serial, "--days", "30",
           "--out", str(d / f"sensors/{serial.lower()}"))  # fmt: skip
    ca("issue-gateway", "--ca", str(d / "ca/site"), "--name", "gw-ward3", "--days", "30", "--out", str(d / "gw"))
    yield d


def _prepare(data: Path, apps: Path) -> None:
    """Three registered apps (``cortex-sal apps add``) and the wearers' consent."""
    apps.mkdir(mode=0o700)
    for app in (WATCHER, HOSTILE, FRESH, PROBE):
        assert main(["apps", "add", app, "--out", str(apps), "--data-dir", str(data)]) == 0
    with SqliteStore(data) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        streamer, hidden = subject_of(f"{MODEL}/{STREAMER}"), subject_of(f"{MODEL}/{HIDDEN}")
        ledger.grant(streamer, ["biometric"], 3600, app=WATCHER, purpose="tests")
        ledger.grant(streamer, ["biometric"], 3600, app=FRESH, purpose="tests")
        ledger.grant(streamer, ["biometric"], 3600, app=PROBE, purpose="tests")
        ledger.grant(streamer, ["biometric", "clinical"], 3600, app=HOSTILE, purpose="tests")
        ledger.grant(hidden, ["biometric"], 3600, app=WATCHER, purpose="tests")


def _frames(stop: asyncio.Event) -> Iterator[np.ndarray]:
    while not stop.is_set():
        yield STEADY


@dataclass
class World:
    gw: Gateway
    url: str
    apps: Path
    data: Path
    arrivals: list[tuple[int, float]] = field(default_factory=list)  # the watcher's (seq, latency)
    tokens: list[str] = field(default_factory=list)  # every token handed out here (none may be audited)

    @property
    def api(self) -> ApiServer:
        assert self.gw.api is not None
        return self.gw.api

    def key(self, app: str) -> Path:
        return self.apps / f"{app}.key"

    def counted(self, event: str) -> int:
        """How often ``event`` was counted; the counters and the metric must agree."""
        n = self.api.counters.get(event, 0)
        assert self.gw.metrics.value("cortex_sal_api_events_total", event=event) == n, event
        return n

    def released(self) -> float:
        return self.gw.metrics.value("cortex_sal_frames_total", outcome="released")

    def sensor_id(self, app: str, serial: str) -> str:
        return self.gw.store.pairwise_id(app, subject_of(f"{MODEL}/{serial}"))

    async def serves(self) -> None:
        """A fresh application authorises, subscribes and receives a frame, on time."""
        async with Client(self.url, self.key(PROBE), reconnect=False, timeout_s=TIMEOUT) as c:
            assert c.token is not None
            self.tokens.append(c.token)
            (entry,) = [s for s in await c.list_sensors() if s.connected]
            async with asyncio.timeout(TIMEOUT):
                async for msg in c.subscribe(entry.sensor, ["features"]):
                    assert isinstance(msg, Features)
                    assert time.time() - msg.time < LATENCY_BOUND
                    break


async def _until(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the gateway")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def world(
    pki: Path, tmp: Path, *, watch: bool = True, origins: tuple[str, ...] = (), **limits: Any
) -> AsyncIterator[World]:
    """A gateway with its API, the sensor streaming and (``watch``) the watcher subscribed; on exit,
    checks the watcher was served throughout and that nothing crashed or leaked into the audit."""
    data = tmp / "D"
    _prepare(data, tmp / "apps")
    gw = await start_gateway(pki, data)
    host, port = await gw.serve_api(limits=ApiLimits(**limits), allowed_origins=origins)
    w = World(gw, f"ws://{host}:{port}", tmp / "apps", data)
    stop = asyncio.Event()
    key, cert = load_identity(pki / f"sensors/{STREAMER.lower()}")
    assert gw.address is not None
    sensor = asyncio.create_task(run_sensor(*gw.address, static_key=key, certificate=cert, trust=trust(pki),
                                            frames=_frames(stop), rate_hz=RATE_HZ, max_attempts=1))  # fmt: skip
    watcher: Client | None = None
    collector: asyncio.Task[None] | None = None
    try:
        await _until(lambda: w.released() >= 2)
        if watch:
            watcher = Client(w.url, w.key(WATCHER), reconnect=False, timeout_s=TIMEOUT)
            await watcher.__aenter__()
            assert watcher.token is not None
            w.tokens.append(watcher.token)
            into: asyncio.Queue[Any] = asyncio.Queue()
            await watcher.open_subscription(w.sensor_id(WATCHER, STREAMER), ["features"], into)

            async def collect() -> None:
                while True:
                    msg = await into.get()
                    if isinstance(msg, BaseException):
                        return
                    assert isinstance(msg, Features), msg
                    w.arrivals.append((msg.seq, time.time() - msg.time))

            collector = asyncio.create_task(collect())
            await _until(lambda: len(w.arrivals) >= 3)
        yield w
        await w.serves()  # after the attack, a fresh app is served
        if watch:
            seen = len(w.arrivals)
            await _until(lambda: len(w.arrivals) >= seen + 3)  # and the watcher still is
        stop.set()
        report: SensorReport = await asyncio.wait_for(sensor, TIMEOUT)
        assert report.connections == 1 and report.reasons == ["normal"], report  # never dropped, never refused
        await _until(lambda: w.released() == report.frames_sent)  # every frame released
    finally:
        stop.set()
        if watcher is not None:
            await watcher.close()
        if collector is not None:
            await asyncio.wait_for(collector, TIMEOUT)
        if not sensor.done():
            sensor.cancel()
        await asyncio.gather(sensor, return_exceptions=True)
        key.purge()
        await gw.shutdown()
        gw._test_key.purge()  # type: ignore[attr-defined]
    assert w.counted("internal_error") == 0
    if watch:  # every frame released while subscribed reached the watcher, in order, on time
        seqs = [s for s, _ in w.arrivals]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        worst = max(latency for _, latency in w.arrivals)
        assert worst < LATENCY_BOUND, f"the watcher waited {worst:.3f} s for a frame"
    with SqliteStore(data) as store:
        entries = store.audit_entries()
        assert store.verify_audit().ok
    text = json.dumps([e.to_record() for e in entries])
    for raw in (*RAW_IDS, *w.tokens, *(hashlib.sha256(t.encode()).hexdigest() for t in w.tokens)):
        assert raw not in text, f"an audit entry holds {raw[:12]}..."


def run(scenario: Callable[..., Any], *args: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario(*args), 60.0))


# --- raw clients ----------------------------------------------------------------------------------


async def _answer(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next answer (an object with ``result`` or ``error``), skipping data and notices."""
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if "result" in msg or "error" in msg:
                return msg  # type: ignore[no-any-return]


async def _rpc(ws: ClientConnection, method: str, params: dict[str, Any], rid: object = 1) -> dict[str, Any]:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
    return await _answer(ws)


def _is_error(msg: dict[str, Any], name: str, rid: object = 1) -> None:
    assert "error" in msg, msg
    assert msg["error"]["code"] == CODES[name] and msg["error"]["data"]["name"] == name, msg
    assert msg["id"] == rid and msg["jsonrpc"] == "2.0", msg


def _sign(w: World, app: str, challenge: bytes) -> str:
    key = Ed25519SigningKey(read_secret_file(w.key(app), SEED_SIZE, "application key", InvalidArgumentError))
    try:
        return base64.b64encode(key.sign(authorization_message(app, challenge))).decode()
    finally:
        key.purge()


async def _challenge(ws: ClientConnection, app: str) -> bytes:
    got = await _rpc(ws, "getChallenge", {"app_id": app})
    return base64.b64decode(got["result"]["challenge"])


async def _authorize(w: World, ws: ClientConnection, app: str) -> str:
    signature = _sign(w, app, await _challenge(ws, app))
    got = await _rpc(ws, "authorize", {"app_id": app, "signature": signature})
    token: str = got["result"]["token"]
    w.tokens.append(token)
    return token


@contextlib.asynccontextmanager
async def raw(w: World, **options: Any) -> AsyncIterator[ClientConnection]:
    async with connect(w.url, compression=None, max_size=None, open_timeout=TIMEOUT, close_timeout=1,
                       **options) as ws:  # fmt: skip
        yield ws


# --- authentication -------------------------------------------------------------------------------


def test_unauthenticated_calls_are_not_authorized(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w, raw(w) as ws:
            sensor = w.sensor_id(HOSTILE, STREAMER)
            calls = [("listSensors", {}), ("subscribe", {"sensor": sensor, "streams": ["features"]}),
                     ("unsubscribe", {"sensor": sensor, "streams": ["features"]})]  # fmt: skip
            made_up = base64.b64encode(bytes(32)).decode()
            tokens: list[object] = [None, "", "x" * 257, 42, ["t"], "made-up-token", made_up]
            for (method, params), token in itertools.product(calls, tokens):
                before = w.counted("not_authorized")
                sent = dict(params) if token is None else {**params, "token": token}
                _is_error(await _rpc(ws, method, sent), "not_authorized")
                assert w.counted("not_authorized") == before + 1
            assert w.api.subscriptions == 1  # the watcher's only

    run(scenario)


def test_a_bad_signature_a_reused_or_missing_challenge_and_an_unknown_app(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w, raw(w) as ws:
            # a signature that does not verify: random bytes; the right key over another challenge
            for bad in (base64.b64encode(bytes(64)).decode(), _sign(w, HOSTILE, bytes(32))):
                await _challenge(ws, HOSTILE)
                _is_error(await _rpc(ws, "authorize", {"app_id": HOSTILE, "signature": bad}), "bad_signature")
            # another app's key over this app's challenge
            challenge = await _challenge(ws, HOSTILE)
            signature = _sign(w, FRESH, challenge)
            _is_error(await _rpc(ws, "authorize", {"app_id": HOSTILE, "signature": signature}), "bad_signature")
            assert w.counted("bad_signature") == 3
            # a challenge is used once, whatever the outcome: the failed one is gone ...
            _is_error(await _rpc(ws, "authorize", {"app_id": HOSTILE, "signature": signature}), "no_challenge")
            # ... and so is a good one once used
            challenge = await _challenge(ws, HOSTILE)
            signature = _sign(w, HOSTILE, challenge)
            got = await _rpc(ws, "authorize", {"app_id": HOSTILE, "signature": signature})
            w.tokens.append(got["result"]["token"])
            _is_error(await _rpc(ws, "authorize", {"app_id": HOSTILE, "signature": signature}), "no_challenge")
            async with raw(w) as other:  # never asked; asked for another app
                _is_error(await _rpc(other, "authorize", {"app_id": HOSTILE, "signature": signature}), "no_challenge")
                await _challenge(other, FRESH)
                _is_error(await _rpc(other, "authorize", {"app_id": HOSTILE, "signature": signature}), "no_challenge")
                # a replayed authorisation on another connection: its challenge is not this one's
                await _challenge(other, HOSTILE)
                _is_error(await _rpc(other, "authorize", {"app_id": HOSTILE, "signature": signature}), "bad_signature")
                # an app nobody registered
                await _challenge(other, "ghost-app")
                _is_error(
                    await _rpc(other, "authorize", {"app_id": "ghost-app", "signature": signature}), "unknown_app"
                )
                ask = {"app_id": "ghost-app", "app_public_key": "00" * 32, "scopes": ["biometric"], "purpose": "x"}
                _is_error(await _rpc(other, "requestAccess", ask), "unknown_app")
            assert w.counted("no_challenge") == 4 and w.counted("bad_signature") == 4
            assert w.counted("unknown_app") == 2
            # the Python client holding another app's key: refused as it opens
            with pytest.raises(NotAuthorizedError) as refused_open:
                async with Client(w.url, w.key(FRESH), HOSTILE, reconnect=False, timeout_s=TIMEOUT):
                    pass
            assert refused_open.value.name == "bad_signature" and refused_open.value.code == CODES["bad_signature"]
            assert w.counted("bad_signature") == 5
        with SqliteStore(tmp_path / "D") as store:
            refused = [dict(e.details) for e in store.audit_entries() if e.event == "api_refused"]
        bad, ghost = {"app": HOSTILE, "reason": "bad_signature"}, {"app": "ghost-app", "reason": "unknown_app"}
        assert refused == [bad] * 4 + [ghost, bad]

    run(scenario)


def test_a_token_of_another_app_is_refused(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w, raw(w) as ws, raw(w) as anonymous:
            stolen = w.tokens[0]  # the watcher's (good-app)
            await _authorize(w, ws, HOSTILE)
            sensor = w.sensor_id(HOSTILE, STREAMER)
            for conn in (ws, anonymous):  # authorised as another app; not authorised at all
                _is_error(await _rpc(conn, "listSensors", {"token": stolen}), "token_other_app")
                _is_error(await _rpc(conn, "subscribe", {"token": stolen, "sensor": sensor, "streams": ["features"]}),
                          "token_other_app")  # fmt: skip
            assert w.counted("token_other_app") == 4  # each refusal counted once
            # one app per connection: authorising another app here is refused (its key signs correctly)
            signature = _sign(w, FRESH, await _challenge(ws, FRESH))
            _is_error(await _rpc(ws, "authorize", {"app_id": FRESH, "signature": signature}), "token_other_app")
            assert w.counted("token_other_app") == 5
            # the Python client given another app's token says the same
            async with Client(w.url, w.key(HOSTILE), reconnect=False, timeout_s=TIMEOUT) as c:
                assert c.token is not None
                w.tokens.append(c.token)
                c.token = stolen
                with pytest.raises(NotAuthorizedError) as refused:
                    await c.list_sensors()
                assert refused.value.name == "token_other_app" and refused.value.code == CODES["token_other_app"]
            assert w.counted("token_other_app") == 6
            assert w.api.subscriptions == 1

    run(scenario)


def test_an_expired_token_is_refused_and_its_subscriptions_closed(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path, watch=False, token_ttl_s=1.0) as w, raw(w) as ws:
            asked = time.time()
            token = await _authorize(w, ws, HOSTILE)
            issued = time.time()  # the token expires between asked + 1 and issued + 1 (the gateway's clock)
            sensor = w.sensor_id(HOSTILE, STREAMER)
            got = await _rpc(ws, "subscribe", {"token": token, "sensor": sensor, "streams": ["features"]})
            (sub,) = got["result"]["success"]
            data = 0
            async with asyncio.timeout(TIMEOUT):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("method") == "subscriptionClosed":
                        break
                    assert msg["sid"] == sub["sid"] and msg["time"] < issued + 1.0, msg  # nothing sent once expired
                    data += 1
            assert data >= FPS * 0.5  # it streamed until then
            assert time.time() - (asked + 1.0) < 0.5  # closed at the next frame, or the watcher's next poll
            p = msg["params"]
            assert (p["sid"], p["name"], p["code"]) == (sub["sid"], "token_expired", CODES["token_expired"])
            assert p["sensor"] == sensor
            assert w.counted("closed_token_expired") == 1
            for method, params in (("listSensors", {}), ("subscribe", {"sensor": sensor, "streams": ["features"]})):
                _is_error(await _rpc(ws, method, {"token": token, **params}), "token_expired")
            assert w.counted("token_expired") == 2 and w.api.subscriptions == 0
            token = await _authorize(w, ws, HOSTILE)  # authorising again is the way back
            got = await _rpc(ws, "subscribe", {"token": token, "sensor": sensor, "streams": ["features"]})
            assert [s["stream"] for s in got["result"]["success"]] == ["features"]
        with SqliteStore(tmp_path / "D") as store:
            ended = [dict(e.details) for e in store.audit_entries() if e.event == "subscription_ended"]
        assert {"app": HOSTILE, "sensor_hash": sensor[:16], "stream": "features", "reason": "token_expired"} in ended

    run(scenario)


def test_a_revoked_token_or_app_is_refused_and_its_subscriptions_closed_within_a_second(
    pki: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w:
            hostile = Client(w.url, w.key(HOSTILE), reconnect=False, timeout_s=TIMEOUT)
            fresh = Client(w.url, w.key(FRESH), reconnect=False, timeout_s=TIMEOUT)
            async with hostile, fresh, raw(w) as idle:
                assert hostile.token is not None and fresh.token is not None
                w.tokens += [hostile.token, fresh.token]
                idle_token = await _authorize(w, idle, HOSTILE)  # authorised, nothing subscribed
                streams: dict[str, asyncio.Queue[Any]] = {HOSTILE: asyncio.Queue(), FRESH: asyncio.Queue()}
                await hostile.open_subscription(w.sensor_id(HOSTILE, STREAMER), ["features"], streams[HOSTILE])
                await fresh.open_subscription(w.sensor_id(FRESH, STREAMER), ["features"], streams[FRESH])

                async def closed_by(app: str, revoke: Callable[[SqliteStore], object]) -> Exception:
                    q = streams[app]
                    while not isinstance(await asyncio.wait_for(q.get(), TIMEOUT), Features):
                        pass
                    with SqliteStore(tmp_path / "D") as cli:  # another connection, as `cortex-sal apps` is
                        revoke(cli)
                    at = time.monotonic()
                    while not isinstance(item := await asyncio.wait_for(q.get(), TIMEOUT), Exception):
                        pass
                    assert time.monotonic() - at < 1.0
                    return item

                ended = await closed_by(HOSTILE, lambda cli: cli.revoke_tokens(HOSTILE))
                assert isinstance(ended, NotAuthorizedError) and ended.name == "token_revoked", ended
                assert ended.code == CODES["token_revoked"]
                # a revoked token is refused at once, also on a connection that holds no subscription
                _is_error(await _rpc(idle, "listSensors", {"token": idle_token}), "token_revoked")
                with pytest.raises(NotAuthorizedError) as refused:
                    await hostile.list_sensors()
                assert refused.value.name == "token_revoked"

                ended = await closed_by(FRESH, lambda cli: cli.revoke_app(FRESH))
                assert isinstance(ended, NotAuthorizedError) and ended.name == "app_revoked", ended
                with pytest.raises(NotAuthorizedError) as refused:
                    await fresh.list_sensors()
                assert refused.value.name == "app_revoked"
                assert w.counted("closed_token_revoked") == 1 and w.counted("closed_app_revoked") == 1
                assert w.counted("token_revoked") == 2 and w.counted("app_revoked") == 1
                # the revoked app cannot authorise again
                async with raw(w) as again:
                    signature = _sign(w, FRESH, await _challenge(again, FRESH))
                    _is_error(await _rpc(again, "authorize", {"app_id": FRESH, "signature": signature}), "unknown_app")
                # the watcher's app was never touched
                await asyncio.sleep(0.3)
                assert w.api.subscriptions == 1
        with SqliteStore(tmp_path / "D") as store:
            events = [(e.event, dict(e.details)) for e in store.audit_entries()]
        names = [e for e, _ in events]
        assert names.count("app_authorized") >= 5 and names.count("subscribed") >= 3
        ends = [d["reason"] for e, d in events if e == "subscription_ended"]
        assert "token_revoked" in ends and "app_revoked" in ends
        assert ("api_refused", {"app": FRESH, "reason": "unknown_app"}) in events

    run(scenario)


# --- what an app may see ------------------------------------------------------------------------


def test_a_sensor_the_app_may_not_see_is_sensor_not_visible(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w, raw(w) as ws:
            token = await _authorize(w, ws, HOSTILE)
            listed = (await _rpc(ws, "listSensors", {"token": token}))["result"]["sensors"]
            assert [s["sensor"] for s in listed] == [w.sensor_id(HOSTILE, STREAMER)]  # not HIDDEN
            hidden_ids = [
                "0123456789abcdef0123456789abcdef",  # made up
                w.sensor_id(WATCHER, STREAMER),  # another app's pairwise id of a sensor this app does see
                w.sensor_id(HOSTILE, HIDDEN),  # this app's id of a sensor its wearer never consented to
                w.sensor_id(WATCHER, HIDDEN),
                subject_of(f"{MODEL}/{STREAMER}") * 2,  # the internal pseudonym, padded to 32 hex
            ]
            for n, sensor in enumerate(hidden_ids, 1):
                for method in ("subscribe", "unsubscribe"):
                    got = await _rpc(ws, method, {"token": token, "sensor": sensor, "streams": ["features"]})
                    _is_error(got, "sensor_not_visible")
                assert w.counted("sensor_not_visible") == 2 * n
            for sensor in (None, 7, "ab" * 15, "ab" * 17, ["x"]):  # not a 32-hex id at all
                got = await _rpc(ws, "subscribe", {"token": token, "sensor": sensor, "streams": ["features"]})
                _is_error(got, "invalid_params")
            assert w.api.subscriptions == 1
            # the Python client says the same
            async with Client(w.url, w.key(HOSTILE), reconnect=False, timeout_s=TIMEOUT) as c:
                assert c.token is not None
                w.tokens.append(c.token)
                with pytest.raises(AccessDeniedError) as refused:
                    await c.open_subscription(w.sensor_id(WATCHER, HIDDEN), ["features"])
                assert refused.value.name == "sensor_not_visible" and refused.value.code == CODES["sensor_not_visible"]

    run(scenario)


def test_a_scope_or_stream_not_granted_is_a_failure_entry_of_a_partial_success(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w, raw(w) as ws:
            token = await _authorize(w, ws, HOSTILE)
            sensor = w.sensor_id(HOSTILE, STREAMER)

            async def subscribe(streams: list[str], **extra: Any) -> tuple[list[str], list[tuple[str, str]]]:
                got = await _rpc(ws, "subscribe", {"token": token, "sensor": sensor, "streams": streams, **extra})
                r = got["result"]
                for f in r["failure"]:
                    assert f["code"] == CODES[f["name"]]
                return [s["stream"] for s in r["success"]], [(f["stream"], f["name"]) for f in r["failure"]]

            # research needs desci, which the wearer did not grant this app; raw samples are no stream
            assert await subscribe(["features", "research", "samples"]) == (
                ["features"], [("research", "scope_not_granted"), ("samples", "unknown_stream")])  # fmt: skip
            assert await subscribe(["features"]) == ([], [("features", "already_subscribed")])
            assert w.counted("scope_not_granted") == 0  # failure entries are not refusals of the request
            # clinical is granted, but a subscription without the clinician's key (or with a bad one) fails
            # alone: the other streams of the same request still succeed
            await _rpc(ws, "unsubscribe", {"token": token, "sensor": sensor, "streams": ["features"]})
            for bad_key in ({}, {"clinician_public_key": "zz" * 32}, {"clinician_public_key": "00" * 32}):
                assert await subscribe(["features", "clinical"], **bad_key) == (
                    ["features"], [("clinical", "invalid_params")]), bad_key  # fmt: skip
                assert w.api.subscriptions == 2  # the watcher's and this features one, nothing else
                await _rpc(ws, "unsubscribe", {"token": token, "sensor": sensor, "streams": ["features"]})
            for streams in ([], "features", ["features", "features"], [1], ["a"] * 9):
                _is_error(await _rpc(ws, "subscribe", {"token": token, "sensor": sensor, "streams": streams}),
                          "invalid_params")  # fmt: skip
            # the Python client: nothing succeeded -> the first failure's error
            async with Client(w.url, w.key(HOSTILE), reconnect=False, timeout_s=TIMEOUT) as c:
                assert c.token is not None
                w.tokens.append(c.token)
                with pytest.raises(AccessDeniedError) as refused:
                    await c.open_subscription(sensor, ["research"])
                assert refused.value.name == "scope_not_granted" and refused.value.code == CODES["scope_not_granted"]

    run(scenario)


# --- malformed messages ---------------------------------------------------------------------------

REQUEST = '"jsonrpc":"2.0","method":"getChallenge","params":{"app_id":"bad-app"}'
# (what is sent, the error's name, the id the answer carries)
MALFORMED: list[tuple[str | bytes, str, object]] = [
    ("{not json", "parse_error", None),
    ("", "parse_error", None),
    ('{"jsonrpc":"2.0","id":1,"id":2,"method":"getChallenge"}', "parse_error", None),  # a duplicate key
    ('{"jsonrpc":"2.0","id":NaN,"method":"getChallenge"}', "parse_error", None),
    ('{"jsonrpc":"2.0","id":1,"method":"getChallenge","params":{"app_id":Infinity}}', "parse_error", None),
    ("[" * 30_000 + "]" * 30_000, "parse_error", None),  # nested deeper than the parser recurses (60,000 bytes)
    ('{"jsonrpc":"2.0","id":' + "9" * 5000 + ',"method":"getChallenge"}', "parse_error", None),  # > 4300 digits
    (b"\xff\xfe{}", "parse_error", None),  # a binary frame that is not UTF-8
    (b'{"jsonrpc":"2.0","id":"\xc3\x28","method":"getChallenge"}', "parse_error", None),
    ("[{" + REQUEST + ',"id":1}]', "invalid_request", None),  # a batch
    ("[]", "invalid_request", None),
    ('"getChallenge"', "invalid_request", None),
    ("42", "invalid_request", None),
    ("null", "invalid_request", None),
    ("{" + REQUEST + "}", "invalid_request", None),  # a notification (no id)
    ("{" + REQUEST + ',"id":null}', "invalid_request", None),
    ("{" + REQUEST + ',"id":1.5}', "invalid_request", None),
    ("{" + REQUEST + ',"id":true}', "invalid_request", None),
    ("{" + REQUEST + ',"id":{"a":1}}', "invalid_request", None),
    ("{" + REQUEST + ',"id":[1]}', "invalid_request", None),
    ("{" + REQUEST + ',"id":1e400}', "invalid_request", None),
    ("{" + REQUEST + ',"id":"' + "i" * 10_000 + '"}', "invalid_request", None),  # an oversized id
    ("{" + REQUEST + ',"id":' + "9" * 4000 + "}", "invalid_request", None),  # an integer no client can hold
    ("{" + REQUEST + ',"id":9007199254740992}', "invalid_request", None),  # 2**53: beyond a JS number
    ('{"jsonrpc":"1.0","id":7,"method":"getChallenge","params":{"app_id":"bad-app"}}', "invalid_request", 7),
    ('{"id":7,"method":"getChallenge","params":{"app_id":"bad-app"}}', "invalid_request", 7),
    ('{"jsonrpc":2.0,"id":7,"method":"getChallenge"}', "invalid_request", 7),
    ('{"jsonrpc":"2.0","id":7,"method":42}', "invalid_request", 7),
    ('{"jsonrpc":"2.0","id":7}', "invalid_request", 7),
    ('{"jsonrpc":"2.0","id":"a","method":"getchallenge"}', "method_not_found", "a"),
    ('{"jsonrpc":"2.0","id":"a","method":"__init__"}', "method_not_found", "a"),
    ('{"jsonrpc":"2.0","id":"a","method":"_token"}', "method_not_found", "a"),
    ('{"jsonrpc":"2.0","id":"a","method":"' + "m" * 30_000 + '"}', "method_not_found", "a"),
    ('{"jsonrpc":"2.0","id":3,"method":"getChallenge","params":["bad-app"]}', "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"getChallenge","params":"bad-app"}', "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"getChallenge","params":{"app_id":5}}', "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"getChallenge","params":{"app_id":"Bad App!"}}', "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"getChallenge","params":{}}', "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"authorize","params":{"app_id":"bad-app","signature":7}}', "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"authorize","params":{"app_id":"bad-app","signature":"!!"}}',
     "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"authorize","params":{"app_id":"bad-app","signature":"' +
     base64.b64encode(bytes(63)).decode() + '"}}', "invalid_params", 3),
    ('{"jsonrpc":"2.0","id":3,"method":"requestAccess","params":{"app_id":"bad-app","app_public_key":"00",'
     '"scopes":["biometric"],"purpose":"x"}}', "invalid_params", 3),
]  # fmt: skip


def test_a_malformed_json_rpc_message_gets_its_specific_error(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w, raw(w) as ws:
            for sent, name, rid in MALFORMED:
                before = w.counted(name)
                await ws.send(sent)
                got = await _answer(ws)
                _is_error(got, name, rid)
                assert len(json.dumps(got)) < 1024, "an answer echoes at most a bounded part of the request"
                assert w.counted(name) == before + 1, (sent[:80], name)
            # the connection is still served after all of it, and so is its well-formed request
            await _challenge(ws, HOSTILE)
            key = (tmp_path / "apps" / f"{HOSTILE}.json").read_text()
            got = await _rpc(ws, "requestAccess", {"app_id": HOSTILE, "app_public_key": json.loads(key)["public_key"],
                                                   "scopes": ["biometric"], "purpose": "tests"}, rid="ok")  # fmt: skip
            assert got["result"]["accessGranted"] is True and got["id"] == "ok"

    run(scenario)


def test_a_message_over_max_message_is_answered_and_over_max_frame_closes_1009(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w:
            limits = w.api.limits
            async with raw(w) as ws:
                for size in (limits.max_message + 1, limits.max_frame - 100):  # the whole message stays <= max_frame
                    await ws.send('{"jsonrpc":"2.0","id":1,"method":"getChallenge","pad":"' + "x" * size + '"}')
                    _is_error(await _answer(ws), "message_too_large", None)
                await ws.send(b"\x00" * (limits.max_message + 1))  # binary: the same
                _is_error(await _answer(ws), "message_too_large", None)
                assert w.counted("message_too_large") == 3
                await _challenge(ws, HOSTILE)  # still open, still served
            # 16 MiB: the connection closes with 1009, before the gateway holds it all (not closed from
            # here: the gateway closes it, and websockets cannot close a transport that is already gone)
            ws = await connect(w.url, compression=None, open_timeout=TIMEOUT, close_timeout=1)
            try:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send("x" * (16 << 20))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
            finally:
                await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            await _until(lambda: w.api.counters.get("frame_too_large", 0) == 1)
            assert w.counted("frame_too_large") == 1

    run(scenario)


# --- floods and slow readers ----------------------------------------------------------------------


async def _flood(ws: ClientConnection, n: int, per_s: float) -> tuple[float, list[dict[str, Any]]]:
    """Send ``n`` requests at ``per_s`` (in batches of 100), reading the answers meanwhile."""
    answers: list[dict[str, Any]] = []

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for m in ws:
                answers.append(json.loads(m))

    reader = asyncio.create_task(read())
    start = time.monotonic()
    with contextlib.suppress(ConnectionClosed):
        for batch in range(0, n, 100):
            for i in range(batch, min(n, batch + 100)):
                await ws.send(f'{{"id":{i},{REQUEST}}}')
            await asyncio.sleep(max(0.0, start + (batch + 100) / per_s - time.monotonic()))
    elapsed = time.monotonic() - start
    await asyncio.sleep(0.3)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    return elapsed, answers


def test_ten_thousand_requests_in_a_second_are_rate_limited_and_counted(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path) as w, raw(w) as ws:
            limits = w.api.limits
            elapsed, answers = await _flood(ws, 10_000, 10_000.0)
            assert elapsed < 2.0
            served = [a for a in answers if "result" in a]
            limited = [a for a in answers if "error" in a]
            for a in limited:
                _is_error(a, "rate_limited", None)
            assert limits.burst <= len(served) <= limits.burst + limits.rate_per_s * (elapsed + 0.3) + 1
            refused = w.counted("rate_limited")
            # a sustained flood: max_refused refusals within the window close the connection, 1008
            assert ws.close_code == 1008 and ws.close_reason == "too many requests"
            assert limits.max_refused <= refused < 10_000 - len(served)
            # answered, but not one answer per refusal of a flood
            assert 1 <= len(limited) <= refused // 100 + 1
            await _until(lambda: len(w.api._conns) == 1, 1.0)  # its connection freed at once (the watcher's stays)
        (tmp_path / "again").mkdir()
        async with world(pki, tmp_path / "again") as w, raw(w) as ws:  # a client that pauses is served again
            await _flood(ws, 400, 10_000.0)
            assert ws.close_code is None and w.counted("rate_limited") >= 1
            await asyncio.sleep(0.05)
            await _challenge(ws, HOSTILE)

    run(scenario)


def test_a_client_refused_max_refused_times_in_its_window_is_closed_1008(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(pki, tmp_path, rate_per_s=10.0, burst=20, max_refused=300) as w, raw(w) as ws:
            elapsed, answers = await _flood(ws, 10_000, 10_000.0)
            assert ws.close_code == 1008 and ws.close_reason == "too many requests"
            served = [a for a in answers if "result" in a]
            assert 20 <= len(served) <= 20 + 10 * elapsed + 1
            refused = w.counted("rate_limited")
            assert 300 <= refused < 10_000 - len(served)  # closed long before the flood ended
            assert all(a["error"]["data"]["name"] == "rate_limited" for a in answers if "error" in a)
            # and it holds no connection of the gateway's once closed
            await _until(lambda: len(w.api._conns) == 1, 1.0)  # the watcher's

    run(scenario)


async def _slow_reader(w: World, app: str) -> tuple[ClientConnection, str]:
    """A connection on a narrow path (a 2 KiB receive buffer here, a 4 KiB send buffer at the
    gateway's end, so that kilobytes fill it rather than the megabytes loopback buffers) that has
    authorised and subscribed to the sensor's features; returns it and its subscription's sid."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    try:
        host, port = w.url.removeprefix("ws://").split(":")
        await loop.sock_connect(sock, (host, int(port)))
        ws = await connect(w.url, sock=sock, compression=None, max_queue=1, close_timeout=1)
    except BaseException:
        sock.close()
        raise
    newest = max(w.api._conns, key=lambda c: c.number)
    newest.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    token = await _authorize(w, ws, app)
    got = await _rpc(ws, "subscribe", {"token": token, "sensor": w.sensor_id(app, STREAMER), "streams": ["features"]})
    (sub,) = got["result"]["success"]
    return ws, sub["sid"]


async def _stop_reading(ws: ClientConnection, n: int = 150) -> None:
    """Stop reading, and ask for ``n`` answers (~500 bytes each) that fill the narrow path at once."""
    for i in range(n):
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": f"{i:03d}" + "f" * 200, "method": "m" * 64}))


def test_a_slow_reader_is_dropped_for_and_nobody_else_waits(pki: Path, tmp_path: Path) -> None:
    """A reader that stops reading: the gateway drops its oldest data (counted; a ``dropped``
    notice when it reads again); the sensor's frames keep being released and the watcher keeps
    getting them on time. A reader that never resumes is closed after ``stall_s``."""

    async def scenario() -> None:
        async with world(pki, tmp_path, queue_size=4, stall_s=3.0) as w:
            hashes = {app: w.sensor_id(app, STREAMER)[:16] for app in (HOSTILE, FRESH)}
            slow, sid = await _slow_reader(w, HOSTILE)
            try:
                released, watched = w.released(), len(w.arrivals)
                stalled_at = time.monotonic()
                await _stop_reading(slow)
                await _until(lambda: w.api.counters.get("dropped", 0) >= 10)
                stalled = time.monotonic() - stalled_at
                assert stalled < 2.0
                # the sensor and the watcher went on at their pace meanwhile
                assert w.released() - released >= FPS * stalled * 0.5
                assert len(w.arrivals) - watched >= FPS * stalled * 0.5
                # it reads again: every answer, a notice of what it missed, then data again
                notices, answers, seqs, after = 0, 0, [], 0
                async with asyncio.timeout(TIMEOUT):
                    while answers < 150 or not notices or after < 3:
                        msg = json.loads(await slow.recv())
                        if "error" in msg:
                            _is_error(msg, "method_not_found", msg["id"])
                            answers += 1
                        elif "dropped" in msg:
                            assert msg["sid"] == sid and msg["dropped"] >= 1, msg
                            notices += msg["dropped"]
                            after = 0
                        else:
                            assert msg["sid"] == sid and "values" in msg, msg
                            seqs.append(msg["seq"])
                            after += 1
                # every message it was not given was counted and told, and nothing else was missing
                assert notices == w.counted("dropped") >= 10
                assert sum(b - a - 1 for a, b in itertools.pairwise(seqs)) <= notices
                assert seqs == sorted(seqs)
            finally:
                await slow.close()
            # a reader that never reads again is closed after stall_s; the others go on
            stuck, _ = await _slow_reader(w, FRESH)
            try:
                await _stop_reading(stuck)
                await _until(lambda: w.api.counters.get("slow_reader_closed", 0) == 1, w.api.limits.stall_s + TIMEOUT)
                assert w.counted("slow_reader_closed") == 1 and w.counted("dropped") > notices
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(TIMEOUT):
                        while True:
                            await stuck.recv()
            finally:
                await stuck.close()
            await _until(lambda: w.api.subscriptions == 1)  # the watcher's: the closed one's is gone
        with SqliteStore(tmp_path / "D") as store:
            ends = [dict(e.details) for e in store.audit_entries() if e.event == "subscription_ended"]
        for app in (HOSTILE, FRESH):
            assert {"app": app, "sensor_hash": hashes[app], "stream": "features",
                    "reason": "disconnected"} in ends  # fmt: skip

    run(scenario)


# --- the HTTP upgrade -----------------------------------------------------------------------------


def test_a_browser_origin_not_allowed_is_refused_403_and_an_allowed_one_served(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        allowed = "https://app.example"
        async with world(pki, tmp_path, origins=(allowed,)) as w:
            for origin in ("https://evil.example", "http://app.example", "https://app.example:8443", "null"):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(w.url, origin=origin, open_timeout=TIMEOUT):  # type: ignore[arg-type]
                        pass
                assert refused.value.response.status_code == 403
            assert w.counted("origin_refused") == 4
            connections = w.counted("connection")
            async with raw(w, origin=allowed) as ws:  # the allowed origin, over a raw connection
                await _challenge(ws, HOSTILE)
            async with Client(w.url, w.key(HOSTILE), reconnect=False, timeout_s=TIMEOUT, origin=allowed) as c:
                assert c.token is not None
                w.tokens.append(c.token)
                assert [s.connected for s in await c.list_sensors()] == [True]
            assert w.counted("connection") == connections + 2 and w.counted("origin_refused") == 4

    run(scenario)
