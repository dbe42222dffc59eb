"""The Python client of the applications' API (docs/api.md).

::

    async with Client("ws://127.0.0.1:8765", "demo-app.key") as c:
        sensors = await c.list_sensors()
        async for msg in c.subscribe(sensors[0].sensor, ["features"]):
            print(msg.values)

The app's Ed25519 key (made by ``cortex-sal apps add NAME``: ``NAME.key``, 0600, and the public
``NAME.json`` beside it) is read straight into locked memory, signs the gateway's challenge and
is purged when the client closes: the only secret the client holds, and it never crosses the
wire. When the connection drops, the client reconnects (exponential backoff with jitter),
authorises again and resubscribes; a subscription the gateway closes (consent revoked or expired,
capacity NONE, the app revoked) ends its iterator with :class:`~cortex_sal.errors.SubscriptionClosedError`.
For notebooks, :func:`subscribe_blocking` is a plain iterator over the same messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import queue
import random
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .crypto.ed25519 import SEED_SIZE, Ed25519SigningKey
from .errors import (
    AccessDeniedError,
    ApiError,
    GatewayError,
    InvalidArgumentError,
    NotAuthorizedError,
    RateLimitedError,
    SubscriptionClosedError,
)
from .store.files import read_json, read_secret_file

log = logging.getLogger("cortex_sal.client")

__all__ = ["Client", "Dropped", "Features", "Message", "Opaque", "SensorEntry", "Subscribed", "subscribe_blocking"]

AUTH_CONTEXT = b"cortex-sal api authorize v1\x00"  # the same bytes as cortex_sal.gateway.api (the server side)

_ERRORS: dict[str, type[ApiError]] = {
    **dict.fromkeys(("not_authorized", "token_expired", "token_revoked", "token_other_app", "unknown_app",
                     "bad_signature", "no_challenge", "app_revoked"), NotAuthorizedError),
    **dict.fromkeys(("access_not_granted", "sensor_not_visible", "scope_not_granted"), AccessDeniedError),
    **dict.fromkeys(("consent_revoked", "consent_expired", "capacity_none", "gateway_stopping"),
                    SubscriptionClosedError),
    **dict.fromkeys(("rate_limited", "message_too_large"), RateLimitedError),
}  # fmt: skip


def _api_error(error: dict[str, Any]) -> ApiError:
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    name = str(data.get("name", "api_error")) if data else "api_error"
    cls = _ERRORS.get(name, ApiError)
    return cls(str(error.get("message", "error")), code=int(error.get("code", 0)), name=name)


@dataclass(frozen=True, slots=True)
class SensorEntry:
    sensor: str  # this app's pairwise id of the sensor
    connected: bool
    model: str | None
    channels: tuple[str, ...] | None
    streams: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Subscribed:
    stream: str
    sid: str
    sensor: str
    description: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Features:
    """One released frame's features: the obfuscated (C, 5) tensor, the state label, coherency, liveness."""

    sid: str
    sensor: str
    seq: int
    time: float
    tensor: tuple[tuple[float, ...], ...]
    state: str
    coherency: float
    liveness: bool
    channels: tuple[str, ...] = ()  # the labels of the tensor's rows (the channels released)
    refused: dict[str, str] = field(default_factory=dict)  # the frame's other channels: label -> why

    @property
    def values(self) -> list[Any]:
        return [[list(r) for r in self.tensor], self.state, self.coherency, self.liveness, list(self.channels),
                dict(self.refused)]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Opaque:
    """A ``research`` payload (41 bytes) or a ``clinical`` ciphertext, decoded from base64."""

    stream: str
    sid: str
    sensor: str
    seq: int
    time: float
    data: bytes

    @property
    def values(self) -> list[Any]:
        return [base64.b64encode(self.data).decode("ascii")]


@dataclass(frozen=True, slots=True)
class Dropped:
    """The gateway dropped ``count`` messages of this subscription (this client read too slowly)."""

    stream: str
    sid: str
    sensor: str
    count: int


Message = Features | Opaque | Dropped


class Client:
    """One application's connection to a gateway's API (``async with``)."""

    def __init__(
        self,
        url: str,
        app_key: str | Path,
        app_id: str | None = None,
        *,
        reconnect: bool = True,
        max_attempts: int = 8,
        backoff_s: float = 0.2,
        timeout_s: float = 10.0,
        ssl: Any = None,
        origin: str | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise InvalidArgumentError(f"the API's url is ws://HOST:PORT or wss://HOST:PORT, got {url!r}")
        path = Path(app_key)
        if app_id is None:
            doc = read_json(path.with_suffix(".json"), "application file", InvalidArgumentError)
            if not isinstance(doc, dict) or not isinstance(doc.get("app_id"), str):
                raise InvalidArgumentError(f"{path.with_suffix('.json')} names no app_id")
            app_id = doc["app_id"]
        self.url, self.app_id = url, app_id
        self._key_path = path
        self._key: Ed25519SigningKey | None = None
        self._reconnect, self._max_attempts, self._backoff = reconnect, max_attempts, backoff_s
        self._timeout, self._ssl, self._origin = timeout_s, ssl, origin
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._queues: dict[tuple[str, str], asyncio.Queue[Any]] = {}  # (sensor, stream) -> where its messages go
        self._sids: dict[str, tuple[str, str]] = {}  # sid -> (sensor, stream); a new sid after a resubscribe
        self._params: dict[tuple[str, str], dict[str, Any]] = {}
        self._recovery: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.token: str | None = None
        self.reconnects = 0
        self.last_failures: list[dict[str, Any]] = []  # what the last subscribe refused, stream by stream

    async def __aenter__(self) -> Client:
        seed = read_secret_file(self._key_path, SEED_SIZE, "application key", InvalidArgumentError)
        self._key = Ed25519SigningKey(seed)
        try:
            await self._open()
        except BaseException:
            self._key.purge()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        for q in self._queues.values():
            q.put_nowait(SubscriptionClosedError("the client closed", code=0, name="client_closed"))
        if self._key is not None:
            self._key.purge()

    # -- connection --------------------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            ws = await asyncio.wait_for(
                connect(self.url, ssl=self._ssl, origin=self._origin, max_size=1 << 20, compression=None,  # type: ignore[arg-type]
                        open_timeout=self._timeout), self._timeout)  # fmt: skip
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise GatewayError(f"cannot open the API at {self.url}: {exc}") from None
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws))
        await self._authorize()
        self._connected.set()

    async def _authorize(self) -> None:
        assert self._key is not None
        got = await self._call("getChallenge", {"app_id": self.app_id})
        challenge = base64.b64decode(got["challenge"])
        signature = self._key.sign(AUTH_CONTEXT + self.app_id.encode("ascii") + b"\x00" + challenge)
        auth = await self._call("authorize", {"app_id": self.app_id, "signature": base64.b64encode(signature).decode()})
        self.token = auth["token"]

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if "id" in msg and ("result" in msg or "error" in msg):
                    fut = self._pending.pop(msg["id"], None) if isinstance(msg["id"], int) else None
                    if fut is not None and not fut.done():
                        if "error" in msg:
                            fut.set_exception(_api_error(msg["error"]))
                        else:
                            fut.set_result(msg["result"])
                    elif "error" in msg:
                        log.warning("the gateway refused a request: %s", msg["error"].get("message"))
                elif msg.get("method") == "subscriptionClosed":
                    p = msg["params"]
                    key = self._sids.get(p["sid"])
                    if key is not None:
                        error = _ERRORS.get(p["name"], SubscriptionClosedError)
                        self._end(key, error(p["message"], code=int(p["code"]), name=p["name"], sensor=key[0],
                                             stream=key[1]))  # fmt: skip
                elif "sid" in msg:
                    key = self._sids.get(msg["sid"])
                    if key is not None and key in self._queues:
                        self._queues[key].put_nowait(_message(msg, key[0]))
        except ConnectionClosed:
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(GatewayError("the connection to the API closed"))
            self._pending.clear()
            if not self._closing:
                self._connected.clear()
                self._recovery = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        if not self._reconnect:
            for q in self._queues.values():
                q.put_nowait(GatewayError("the connection to the API closed"))
            return
        for attempt in range(self._max_attempts):
            await asyncio.sleep(min(10.0, self._backoff * 2**attempt) * random.random())
            if self._closing:
                return
            try:
                await self._open()
            except (GatewayError, ApiError) as exc:
                log.info("reconnect %d failed: %s", attempt + 1, exc)
                continue
            self.reconnects += 1
            self._sids.clear()
            for key in list(self._queues):
                sensor, stream = key
                try:
                    got = await self._call("subscribe", {"sensor": sensor, "streams": [stream],
                                                         **self._params.get(key, {})})  # fmt: skip
                except ApiError as exc:
                    self._end(key, exc)
                    continue
                if got["success"]:
                    self._sids[got["success"][0]["sid"]] = key
                else:
                    f = got["failure"][0]
                    self._end(key, _ERRORS.get(f["name"], ApiError)(f["message"], code=f["code"], name=f["name"]))
            return
        for q in self._queues.values():
            q.put_nowait(GatewayError(f"the API at {self.url} is unreachable after {self._max_attempts} attempts"))

    def _end(self, key: tuple[str, str], exc: Exception) -> None:
        """The subscription ``key`` is over: its iterator raises ``exc``."""
        q = self._queues.pop(key, None)
        self._params.pop(key, None)
        for sid, held in list(self._sids.items()):
            if held == key:
                del self._sids[sid]
        if q is not None:
            q.put_nowait(exc)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        if self._ws is None:
            raise GatewayError("the client is not connected")
        if self.token is not None and method not in ("getChallenge", "authorize", "requestAccess"):
            params = {"token": self.token, **params}
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        except ConnectionClosed:
            self._pending.pop(rid, None)
            raise GatewayError("the connection to the API closed") from None
        return await asyncio.wait_for(fut, self._timeout)

    # -- methods -----------------------------------------------------------------------------------

    async def request_access(self, scopes: Sequence[str], purpose: str) -> bool:
        """Ask the wearer for access; returns ``accessGranted`` (false until they consent)."""
        assert self._key is not None
        got = await self._call("requestAccess", {"app_id": self.app_id, "app_public_key": self._key.public_key().hex(),
                                                 "scopes": list(scopes), "purpose": purpose})  # fmt: skip
        return bool(got["accessGranted"])

    async def list_sensors(self) -> list[SensorEntry]:
        got = await self._call("listSensors", {})
        return [SensorEntry(s["sensor"], bool(s["connected"]), s["model"],
                            tuple(s["channels"]) if s["channels"] is not None else None, tuple(s["streams"]))
                for s in got["sensors"]]  # fmt: skip

    async def open_subscription(
        self, sensor: str, streams: Sequence[str], into: asyncio.Queue[Any] | None = None, **params: Any
    ) -> list[Subscribed]:
        """Subscribe, the messages going to ``into``; returns what succeeded, raises (e.g.
        :class:`AccessDeniedError`) if nothing did."""
        got = await self._call("subscribe", {"sensor": sensor, "streams": list(streams), **params})
        out = []
        into = into if into is not None else asyncio.Queue()
        for s in got["success"]:
            key = (sensor, s["stream"])
            self._queues[key] = into
            self._sids[s["sid"]] = key
            if params:
                self._params[key] = params
            out.append(Subscribed(s["stream"], s["sid"], sensor, s))
        self.last_failures = got["failure"]
        if not out:
            f = got["failure"][0]
            raise _ERRORS.get(f["name"], ApiError)(f["message"], code=f["code"], name=f["name"])
        return out

    async def subscribe(self, sensor: str, streams: Sequence[str], **params: Any) -> AsyncIterator[Message]:
        """The messages of ``streams`` of ``sensor``, in order, until the gateway closes the subscription
        (:class:`SubscriptionClosedError`) or the client closes."""
        merged: asyncio.Queue[Any] = asyncio.Queue()
        subs = await self.open_subscription(sensor, streams, merged, **params)
        live = {s.stream for s in subs}
        while live:
            item = await merged.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def unsubscribe(self, sensor: str, streams: Sequence[str]) -> None:
        await self._call("unsubscribe", {"sensor": sensor, "streams": list(streams)})
        for stream in streams:
            self._end((sensor, stream), SubscriptionClosedError("unsubscribed", code=0, name="unsubscribed"))


def _message(msg: dict[str, Any], sensor: str) -> Message:
    if "dropped" in msg:
        return Dropped(msg["stream"], msg["sid"], sensor, int(msg["dropped"]))
    if msg["stream"] == "features":
        tensor, state, coherency, liveness, channels, refused = msg["values"]
        return Features(msg["sid"], sensor, int(msg["seq"]), float(msg["time"]),
                        tuple(tuple(float(x) for x in row) for row in tensor), str(state), float(coherency),
                        bool(liveness), tuple(str(c) for c in channels),
                        {str(k): str(v) for k, v in refused.items()})  # fmt: skip
    return Opaque(msg["stream"], msg["sid"], sensor, int(msg["seq"]), float(msg["time"]),
                  base64.b64decode(msg["values"][0]))  # fmt: skip


def subscribe_blocking(
    url: str,
    app_key: str | Path,
    sensor: str | None,
    streams: Sequence[str],
    *,
    app_id: str | None = None,
    limit: int | None = None,
    **options: Any,
) -> Iterator[Message]:
    """A plain iterator (notebooks, scripts): the client runs on an event loop in a thread.

    ``sensor`` None: the first sensor the app may see. Ends after ``limit`` messages, or raises
    what ends the subscription."""
    out: queue.Queue[Any] = queue.Queue(maxsize=4096)
    stop = threading.Event()

    async def run() -> None:
        try:
            async with Client(url, app_key, app_id, **options) as c:
                target = sensor
                if target is None:
                    listed = await c.list_sensors()
                    if not listed:
                        raise AccessDeniedError("no sensor is visible to this application", name="sensor_not_visible")
                    target = listed[0].sensor
                async for msg in c.subscribe(target, streams):
                    out.put(msg)
                    if stop.is_set():
                        return
        except BaseException as exc:  # handed to the caller's thread
            out.put(exc)
        finally:
            out.put(StopIteration())

    thread = threading.Thread(target=lambda: asyncio.run(run()), name="cortex-sal-client", daemon=True)
    thread.start()
    n = 0
    try:
        while limit is None or n < limit:
            item = out.get()
            if isinstance(item, StopIteration):
                return
            if isinstance(item, BaseException):
                raise item
            n += 1
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
