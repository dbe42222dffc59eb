"""The applications' API: JSON-RPC 2.0 over WebSocket, consent-scoped, served by the gateway (docs/api.md).

An application registered with ``cortex-sal apps add`` proves possession of its Ed25519 key
(:meth:`getChallenge`, then ``authorize`` with a signature over the challenge), receives a
short-lived token bound to this connection and to the app (the store keeps only its SHA-256),
lists the sensors its wearers consented to under **pairwise ids** (a keyed hash per app: two
apps never see the same id for one wearer), and subscribes to the shield's *released* outputs:
``features`` (scope ``biometric``), ``research`` (scope ``desci``) and ``clinical`` (scope
``clinical``: ciphertext of the clinical channel, which only the clinician's key opens). No
method returns a sample: the shield releases features only, and the API forwards only those.

Consent is enforced at the moment of sending: before each released frame is fanned out, the
gateway reads the store's ``data_version`` (another process's revocation is seen at once) and
each subscription asks the consent ledger for its (wearer, app, scope); a subscription whose
consent is no longer active is closed with its code (``subscriptionClosed``) and gets nothing
more. The gateway's watcher runs the same check every poll, so a revocation, an expiry or
capacity NONE closes subscriptions within a poll even when no frame flows.

Every client is bounded: a message over ``max_message`` bytes is answered with an error (over
``max_frame`` the WebSocket closes with 1009), requests are rate-limited per connection, and
each connection's outgoing data sits in a bounded queue that drops the oldest data message for a
slow reader (counted, with a ``dropped`` notice): the fan-out never waits for a client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http
import json
import logging
import math
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from .. import strict_json
from ..checks import int_in_range
from ..crypto import ed25519_verify
from ..errors import (
    ClinicalChannelError,
    CortexError,
    CryptoError,
    InvalidArgumentError,
    InvalidSignatureError,
    SchemaError,
)
from ..sal.clinical import ClinicalChannel
from ..sal.consent import SCOPES, check_app
from ..store.base import Store

log = logging.getLogger("cortex_sal.gateway.api")

__all__ = ["AUTH_CONTEXT", "CODES", "STREAMS", "ApiLimits", "ApiServer", "authorization_message"]

AUTH_CONTEXT = b"cortex-sal api authorize v1\x00"
FEATURE_COLS = ("mean", "std", "p25", "p75", "max")
MAX_ID = 256  # the longest request id (a string) echoed back; an integer id is at most 2**53 - 1 (a JSON number)

# stream -> the consent scope it needs
STREAMS: dict[str, str] = {"features": "biometric", "research": "desci", "clinical": "clinical"}

# the error codes of the API (JSON-RPC 2.0 reserves -32768..-32000 for the protocol; ours are below)
CODES: dict[str, int] = {
    "parse_error": -32700,
    "invalid_request": -32600,
    "method_not_found": -32601,
    "invalid_params": -32602,
    "internal_error": -32603,
    "not_authorized": -33001,  # no token, or a token this connection was not given
    "token_expired": -33002,
    "token_revoked": -33003,
    "token_other_app": -33004,  # a token of another application
    "unknown_app": -33005,
    "bad_signature": -33006,
    "no_challenge": -33007,
    "access_not_granted": -33008,
    "sensor_not_visible": -33010,
    "unknown_stream": -33011,
    "scope_not_granted": -33012,
    "already_subscribed": -33013,
    "not_subscribed": -33014,
    "too_many_subscriptions": -33015,
    "consent_revoked": -33020,
    "consent_expired": -33021,
    "capacity_none": -33022,
    "app_revoked": -33023,
    "gateway_stopping": -33024,
    "rate_limited": -33029,
    "message_too_large": -33030,
}


def authorization_message(app_id: str, challenge: bytes) -> bytes:
    """What an application signs to authorise: ``AUTH_CONTEXT || app_id || 0x00 || challenge``."""
    return AUTH_CONTEXT + app_id.encode("ascii") + b"\x00" + challenge


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """What one API server accepts from each application connection."""

    max_connections: int = 1024
    max_message: int = 65536  # a larger request is answered with message_too_large
    max_frame: int = 1 << 20  # a larger WebSocket message closes the connection (1009)
    rate_per_s: float = 100.0  # requests per second per connection (token bucket)
    burst: int = 200
    max_refused: int = 5000  # a connection refused this many requests within refused_window_s is closed (1008)
    refused_window_s: float = 10.0
    queue_size: int = 1024  # data messages held per connection for a slow reader; the oldest is dropped
    max_subscriptions: int = 4096  # per connection
    token_ttl_s: float = 3600.0
    challenge_ttl_s: float = 30.0
    stall_s: float = 10.0  # a reader that takes nothing for this long while data waits is closed

    def __post_init__(self) -> None:
        int_in_range(self.max_connections, "max_connections", 1, 1_000_000)
        int_in_range(self.max_message, "max_message", 256, 1 << 24)
        int_in_range(self.max_frame, "max_frame", self.max_message, 1 << 26)
        int_in_range(self.burst, "burst", 1, 1_000_000)
        int_in_range(self.max_refused, "max_refused", 1, 1_000_000_000)
        int_in_range(self.queue_size, "queue_size", 1, 10_000_000)
        int_in_range(self.max_subscriptions, "max_subscriptions", 1, 1_000_000)
        for name in ("rate_per_s", "token_ttl_s", "challenge_ttl_s", "stall_s", "refused_window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a finite number > 0, got {value!r}")


class RpcError(Exception):
    """One JSON-RPC error answer (internal to the server: never escapes a connection)."""

    def __init__(self, name: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.name, self.code, self.message, self.data = name, CODES[name], message, data


@dataclass(eq=False)
class _Sub:
    sid: str
    app: str
    subject: str
    sensor: str  # the app's pairwise id of the subject
    stream: str
    scope: str
    conn: _Conn
    clinical: ClinicalChannel | None = None
    dropped: int = 0


@dataclass(eq=False)
class _Conn:
    ws: ServerConnection
    number: int
    app: str | None = None
    token_hash: bytes | None = None
    token_expires: float = 0.0
    challenge: bytes | None = None
    challenge_app: str | None = None
    challenge_expires: float = 0.0
    tokens: float = 0.0
    refill_at: float = 0.0
    refused_recent: int = 0  # refusals since refused_since
    refused_since: float = 0.0
    subs: dict[tuple[str, str], _Sub] = field(default_factory=dict)  # (subject, stream) -> subscription
    out: deque[tuple[str, _Sub | None]] = field(default_factory=deque)  # (message, its data subscription)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    sending: bool = False  # the writer is in a send
    closed: bool = False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or len(value) > 4096:
        raise RpcError("invalid_params", f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise RpcError("invalid_params", f"{what} is not valid base64") from None
    if size is not None and len(raw) != size:
        raise RpcError("invalid_params", f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def _hex(value: object, what: str, size: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size:
        raise RpcError("invalid_params", f"{what} must be {2 * size} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise RpcError("invalid_params", f"{what} must be {2 * size} hex digits") from None


class ApiServer:
    """The consumer API of one :class:`~.server.Gateway` (started and stopped with it).

    ``allowed_origins``: the browser origins allowed (``Origin`` header); a client that sends no
    ``Origin`` (not a browser) is allowed, any other origin is refused with HTTP 403.
    """

    def __init__(
        self,
        gateway: Any,  # the Gateway (typed loosely: server.py imports this module)
        *,
        limits: ApiLimits | None = None,
        allowed_origins: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.gateway = gateway
        self.store: Store = gateway.store
        self.limits = limits if limits is not None else ApiLimits()
        for origin in allowed_origins:
            if not isinstance(origin, str) or not origin.startswith(("http://", "https://")):
                raise InvalidArgumentError(f"an allowed origin is scheme://host[:port], got {origin!r}")
        self._origins = frozenset(allowed_origins)
        self._ssl = ssl_context
        self._server: Server | None = None
        self._conns: set[_Conn] = set()
        self._by_subject: dict[str, list[_Sub]] = {}  # subject -> live subscriptions
        self._numbers = 0
        self._closing = False
        self.address: tuple[str, int] | None = None
        self.counters: dict[str, int] = {}
        self._checked_version = -1  # the consent ledger's version at the last full recheck
        self._next_deadline = 0.0  # the first token or grant to end among the subscriptions then

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self._server = await serve(
            self._handle, host, port, ssl=self._ssl, process_request=self._process_request,
            max_size=self.limits.max_frame, max_queue=4, compression=None, ping_interval=20, ping_timeout=20,
            server_header=None, logger=log,
        )  # fmt: skip
        sock = next(iter(self._server.sockets)).getsockname()
        self.address = (str(sock[0]), int(sock[1]))
        log.info("api listening on %s://%s:%d", "wss" if self._ssl else "ws", *self.address)
        return self.address

    async def shutdown(self) -> None:
        if self._closing:
            return
        self._closing = True
        for conn in list(self._conns):
            for sub in list(conn.subs.values()):
                self._close_sub(sub, "gateway_stopping", "the gateway is stopping")
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    def count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1
        self.gateway.metrics.api(what)

    # -- the HTTP upgrade: origin and connection limits ------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self._origins:
            self.count("origin_refused")
            return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self._closing or len(self._conns) >= self.limits.max_connections:
            self.count("connection_refused")
            return Response(503, "Service Unavailable", Headers([("Retry-After", "1")]), b"too many connections\n")
        return None

    # -- one connection ---------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self._numbers += 1
        now = time.monotonic()
        conn = _Conn(ws, self._numbers, tokens=float(self.limits.burst), refill_at=now)
        self._conns.add(conn)
        self.count("connection")
        writer = asyncio.create_task(self._writer(conn))
        closing: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                if closing is not None:
                    continue  # what the flood still queued is discarded, so that its close frame is read
                if not self._admit_request(conn):
                    if conn.refused_recent >= self.limits.max_refused:
                        closing = asyncio.create_task(ws.close(1008, "too many requests"))
                    continue
                answer = await self._answer(conn, message)
                if answer is not None:
                    self._push(conn, answer, None)
        except ConnectionClosed as exc:
            if (exc.rcvd is not None and exc.rcvd.code == 1009) or (exc.sent is not None and exc.sent.code == 1009):
                self.count("frame_too_large")
        finally:
            conn.closed = True
            conn.ready.set()
            for sub in list(conn.subs.values()):
                self._forget_sub(sub)
                self._audit_end(sub, "disconnected")
            self._conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing

    def _admit_request(self, conn: _Conn) -> bool:
        now = time.monotonic()
        limits = self.limits
        conn.tokens = min(float(limits.burst), conn.tokens + (now - conn.refill_at) * limits.rate_per_s)
        conn.refill_at = now
        if conn.tokens >= 1.0:
            conn.tokens -= 1.0
            return True
        if now - conn.refused_since > limits.refused_window_s:  # a new window of refusals
            conn.refused_since, conn.refused_recent = now, 0
        conn.refused_recent += 1
        self.count("rate_limited")
        if conn.refused_recent == 1 or conn.refused_recent % 100 == 0:  # answered, but not every one of a flood
            self._push(conn, self._error(None, RpcError("rate_limited", f"more than {limits.rate_per_s:g} requests"
                                                        " per second: slow down")), None)  # fmt: skip
        return False

    async def _answer(self, conn: _Conn, message: str | bytes) -> str | None:
        if len(message) > self.limits.max_message:
            self.count("message_too_large")
            return self._error(None, RpcError("message_too_large", f"a request is at most {self.limits.max_message}"
                                              f" bytes, got {len(message)}"))  # fmt: skip
        try:
            text = message.decode("utf-8") if isinstance(message, bytes) else message
            request = strict_json.loads(text, SchemaError, "a JSON-RPC request")
        except (SchemaError, UnicodeDecodeError):
            self.count("parse_error")
            return self._error(None, RpcError("parse_error", "the message is not valid JSON (UTF-8, no duplicate keys,"
                                              " no NaN)"))  # fmt: skip
        if not isinstance(request, dict):
            self.count("invalid_request")
            return self._error(None, RpcError("invalid_request", "a request is a JSON object (batches are not served)"))
        rid = request.get("id")
        if not (isinstance(rid, str) and len(rid) <= MAX_ID) and not (
            isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) <= 2**53 - 1
        ):
            rid = None  # not echoed: the answer carries null
        try:
            if request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
                raise RpcError("invalid_request", 'a request has "jsonrpc": "2.0" and a "method" string')
            if "id" not in request:
                raise RpcError("invalid_request", 'notifications are not served: give the request an "id"')
            if rid is None:
                raise RpcError("invalid_request", f'the "id" is a string of at most {MAX_ID} characters or an'
                               " integer of at most 2**53 - 1")  # fmt: skip
            params = request.get("params", {})
            if not isinstance(params, dict):
                raise RpcError("invalid_params", "params are an object of named parameters")
            method = self._methods.get(request["method"])
            if method is None:
                raise RpcError("method_not_found", f"no method {str(request['method'])[:64]!r}; the methods are "
                               f"{', '.join(sorted(self._methods))}")  # fmt: skip
            result = await method(self, conn, params)
        except RpcError as exc:
            self.count(exc.name)
            return self._error(rid, exc)
        except CortexError as exc:
            self.count("invalid_params")
            return self._error(rid, RpcError("invalid_params", exc.message if hasattr(exc, "message") else str(exc)))
        except Exception:
            log.exception("api method failed")
            self.count("internal_error")
            return self._error(rid, RpcError("internal_error", "internal error"))
        return json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}, separators=(",", ":"))

    @staticmethod
    def _error(rid: object, exc: RpcError) -> str:
        error: dict[str, Any] = {"code": exc.code, "message": exc.message, "data": {"name": exc.name}}
        if exc.data:
            error["data"].update(exc.data)
        return json.dumps({"jsonrpc": "2.0", "id": rid, "error": error}, separators=(",", ":"))

    # -- outgoing: one writer per connection, a bounded queue ---------------------------------------

    def _push(self, conn: _Conn, message: str, sub: _Sub | None) -> None:
        if conn.closed:
            return
        if not conn.out and not conn.sending and (sub is None or not sub.dropped) and _write_now(conn.ws, message):
            return
        if sub is not None and len(conn.out) >= self.limits.queue_size:
            # the oldest data message gives way (answers and notices are never dropped)
            for i, (_, held) in enumerate(conn.out):
                if held is not None:
                    del conn.out[i]
                    held.dropped += 1
                    self.count("dropped")
                    break
            else:  # only answers and notices are held: this data message is the one that gives way
                sub.dropped += 1
                self.count("dropped")
                return
        conn.out.append((message, sub))
        conn.ready.set()

    async def _writer(self, conn: _Conn) -> None:
        while not conn.closed:
            if not conn.out:
                conn.ready.clear()
                await conn.ready.wait()
                continue
            message, sub = conn.out.popleft()
            conn.sending = True
            try:
                if sub is not None and sub.dropped:
                    notice = {"stream": sub.stream, "sid": sub.sid, "dropped": sub.dropped}
                    sub.dropped = 0
                    await self._send(conn, json.dumps(notice, separators=(",", ":")))
                await self._send(conn, message)
            finally:
                conn.sending = False

    async def _send(self, conn: _Conn, message: str) -> None:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps every send in a task of its own
            async with asyncio.timeout(self.limits.stall_s):
                await conn.ws.send(message)
        except TimeoutError:
            self.count("slow_reader_closed")
            conn.closed = True
            conn.ws.transport.abort()
        except ConnectionClosed:
            conn.closed = True

    # -- methods ------------------------------------------------------------------------------------

    async def _get_challenge(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        app = self._app_param(params)
        conn.challenge = secrets.token_bytes(32)
        conn.challenge_app = app
        conn.challenge_expires = time.monotonic() + self.limits.challenge_ttl_s
        return {"challenge": _b64(conn.challenge), "expiresIn": self.limits.challenge_ttl_s,
                "sign": "Ed25519 over 'cortex-sal api authorize v1' 0x00 || app_id || 0x00 || challenge"}  # fmt: skip

    async def _request_access(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        app = self._app_param(params)
        key = _hex(params.get("app_public_key"), "app_public_key", 32)
        record = self.store.app(app)
        if record is None or not record.active:
            raise RpcError("unknown_app", f"no application {app!r} is registered here (cortex-sal apps add)")
        if not secrets.compare_digest(record.public_key, key):
            raise RpcError("unknown_app", "app_public_key is not the key registered for this application")
        scopes, purpose = params.get("scopes"), params.get("purpose")
        if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
            raise RpcError("invalid_params", f"scopes is a non-empty list of: {', '.join(SCOPES)}")
        if not isinstance(purpose, str) or not purpose.strip() or len(purpose) > 256:
            raise RpcError("invalid_params", "purpose is a non-empty text of at most 256 characters")
        request = await asyncio.to_thread(self.store.request_access, app, scopes, purpose)
        granted = self._granted_subjects(app)
        return {
            "accessGranted": bool(granted),
            "requestId": request.request_id,
            "message": "consent is recorded for this application" if granted else
                       "waiting for the wearer: cortex-sal consent requests, then cortex-sal consent grant --app",
        }  # fmt: skip

    async def _authorize(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        app = self._app_param(params)
        signature = _unb64(params.get("signature"), "signature", 64)
        challenge, conn.challenge = conn.challenge, None  # single use, whatever the outcome
        if challenge is None or conn.challenge_app != app or time.monotonic() > conn.challenge_expires:
            raise RpcError("no_challenge", "call getChallenge for this app_id first (a challenge is used once and "
                           f"expires after {self.limits.challenge_ttl_s:g} s)")  # fmt: skip
        record = self.store.app(app)
        if record is None or not record.active:
            await self._audit("api_refused", app=app, reason="unknown_app")
            raise RpcError("unknown_app", f"no application {app!r} is registered here (cortex-sal apps add)")
        try:
            ed25519_verify(record.public_key, authorization_message(app, challenge), signature)
        except (InvalidSignatureError, CryptoError):
            await self._audit("api_refused", app=app, reason="bad_signature")
            raise RpcError("bad_signature", "the signature does not verify under the app's registered key") from None
        if conn.app is not None and conn.app != app:
            raise RpcError("token_other_app", f"this connection is authorised for {conn.app!r}; one app per connection")
        token = secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        expires = float(self.gateway.clock.time()) + self.limits.token_ttl_s
        await asyncio.to_thread(self.store.issue_token, app, digest, expires)
        conn.app, conn.token_hash, conn.token_expires = app, digest, expires
        return {"token": token, "expiresIn": self.limits.token_ttl_s, "app_id": app}

    async def _list_sensors(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        app = self._token(conn, params)
        connected = self.gateway.sensors()
        out = []
        for subject, scopes in sorted(self._granted_subjects(app).items()):
            model = connected.get(subject)
            out.append({
                "sensor": self.store.pairwise_id(app, subject),
                "connected": model is not None,
                "model": model.model_id if model is not None else None,
                "channels": list(model.labels) if model is not None else None,
                "streams": [s for s, scope in STREAMS.items() if scope in scopes],
            })  # fmt: skip
        return {"sensors": out}

    async def _subscribe(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        app = self._token(conn, params)
        subject, sensor = self._visible(app, params.get("sensor"))
        streams = self._streams(params)
        success, failure = [], []
        model = self.gateway.sensor(subject)  # this one only: walking every connection made subscribing O(sensors)
        labels = list(model.labels) if model is not None else None
        for stream in streams:
            scope = STREAMS.get(stream)
            if scope is None:
                failure.append(_failed(stream, "unknown_stream", f"no stream {stream[:32]!r}; the streams are "
                                       f"{', '.join(STREAMS)}"))  # fmt: skip
                continue
            if (subject, stream) in conn.subs:
                failure.append(_failed(stream, "already_subscribed", "already subscribed"))
                continue
            if not self.gateway.shield.consent.is_active(subject, scope, app):
                failure.append(
                    _failed(
                        stream, "scope_not_granted", f"the wearer has not granted {scope!r} to this app (or it ended)"
                    )
                )
                continue
            if len(conn.subs) >= self.limits.max_subscriptions:
                failure.append(
                    _failed(
                        stream,
                        "too_many_subscriptions",
                        f"at most {self.limits.max_subscriptions} subscriptions per connection",
                    )
                )
                continue
            sub = _Sub(secrets.token_hex(8), app, subject, sensor, stream, scope, conn)
            entry: dict[str, Any] = {"stream": stream, "sid": sub.sid, "sensor": sensor}
            if stream == "clinical":
                try:
                    clinician = _hex(params.get("clinician_public_key"), "clinician_public_key", 32)
                    sub.clinical = ClinicalChannel.establish(clinician, "sender", clock=self.gateway.clock)
                except (RpcError, CortexError, ClinicalChannelError) as exc:
                    failure.append(_failed(stream, "invalid_params", str(exc)))
                    continue
                entry["gateway_public_key"] = sub.clinical.public_key.hex()
            entry.update(_describe(stream, labels))
            conn.subs[(subject, stream)] = sub
            self._by_subject.setdefault(subject, []).append(sub)
            self._next_deadline = 0.0  # its grant's and token's ends are taken at the next recheck
            success.append(entry)
            await self._audit("subscribed", app=app, sensor_hash=sensor[:16], stream=stream)
        return {"success": success, "failure": failure}

    async def _unsubscribe(self, conn: _Conn, params: dict[str, Any]) -> dict[str, Any]:
        app = self._token(conn, params)
        subject, _ = self._visible(app, params.get("sensor"))
        success, failure = [], []
        for stream in self._streams(params):
            sub = conn.subs.get((subject, stream))
            if sub is None:
                failure.append(_failed(stream, "not_subscribed", "not subscribed"))
                continue
            self._forget_sub(sub)
            success.append({"stream": stream, "sid": sub.sid})
            self._audit_end(sub, "unsubscribed")
        return {"success": success, "failure": failure}

    _methods: ClassVar[dict[str, Callable[..., Any]]] = {
        "getChallenge": _get_challenge,
        "requestAccess": _request_access,
        "authorize": _authorize,
        "listSensors": _list_sensors,
        "subscribe": _subscribe,
        "unsubscribe": _unsubscribe,
    }

    # -- checks -------------------------------------------------------------------------------------

    @staticmethod
    def _app_param(params: dict[str, Any]) -> str:
        try:
            return check_app(params.get("app_id"))
        except CortexError as exc:
            raise RpcError("invalid_params", f"app_id: {exc}") from None

    def _token(self, conn: _Conn, params: dict[str, Any]) -> str:
        token = params.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= 256:
            raise RpcError("not_authorized", "a token is required: getChallenge, then authorize")
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        if conn.token_hash is None or not secrets.compare_digest(digest, conn.token_hash):
            other = None
            with contextlib.suppress(CortexError):
                other = self.store.token_app(digest)
            if other is not None and other != conn.app:
                raise RpcError("token_other_app", "this token was issued to another application")
            raise RpcError("not_authorized", "this token was not issued on this connection: authorize here")
        if float(self.gateway.clock.time()) >= conn.token_expires:
            raise RpcError("token_expired", "the token expired: getChallenge and authorize again")
        assert conn.app is not None
        if self.store.token_app(digest) != conn.app:  # revoked by another process (cortex-sal apps revoke)
            record = self.store.app(conn.app)
            if record is None or not record.active:
                raise RpcError("app_revoked", "this application's registration was revoked")
            raise RpcError("token_revoked", "the token was revoked: getChallenge and authorize again")
        return conn.app

    def _granted_subjects(self, app: str) -> dict[str, set[str]]:
        """subject -> the scopes active now for ``app`` (another process's grant is taken first)."""
        ledger = self.gateway.shield.consent
        ledger.sync()
        out: dict[str, set[str]] = {}
        for record in ledger.records():
            if record.app == app:
                active = {s for s in record.scopes if ledger.is_active(record.sensor_key, s, app)}
                if active:
                    out[record.sensor_key] = active
        return out

    def _visible(self, app: str, sensor: object) -> tuple[str, str]:
        if not isinstance(sensor, str) or len(sensor) != 32:
            raise RpcError("invalid_params", "sensor is the 32-hex id listSensors gives")
        for subject in self._granted_subjects(app):
            if self.store.pairwise_id(app, subject) == sensor:
                return subject, sensor
        raise RpcError("sensor_not_visible", "no sensor with this id is visible to this application")

    @staticmethod
    def _streams(params: dict[str, Any]) -> list[str]:
        streams = params.get("streams")
        if (
            not isinstance(streams, list)
            or not streams
            or len(streams) > 8
            or any(not isinstance(s, str) for s in streams)
            or len(set(streams)) != len(streams)
        ):
            raise RpcError("invalid_params", f"streams is a list of distinct names among: {', '.join(STREAMS)}")
        return streams

    # -- delivery (called by the gateway for every released frame) ---------------------------------

    def deliver(self, subject: str, seq: int, at: float, result: Any) -> None:
        subs = self._by_subject.get(subject)
        if not subs:
            return
        ledger = self.gateway.shield.consent
        now = float(self.gateway.clock.time())
        features: str | None = None
        for sub in list(subs):
            if now >= sub.conn.token_expires:  # checked at sending, as consent is (not only at the next poll)
                self._close_sub(sub, "token_expired", "the token expired: authorize again and resubscribe")
                continue
            if not ledger.is_active(subject, sub.scope, sub.app):
                self._close_for_consent(sub)
                continue
            if sub.stream == "features":
                if features is None:
                    features = json.dumps(_feature_values(result), separators=(",", ":"))
                values = features
            elif sub.stream == "research":
                if result.research_payload is None:
                    continue
                values = json.dumps([_b64(result.research_payload)])
            else:
                assert sub.clinical is not None
                plain = json.dumps(_feature_values(result), separators=(",", ":")).encode("ascii")
                try:
                    values = json.dumps([_b64(sub.clinical.seal(plain, aad=sub.sid.encode("ascii")))])
                except ClinicalChannelError as exc:
                    self._close_sub(sub, "consent_expired", f"the clinical channel ended: {exc}")
                    continue
            message = (f'{{"stream":"{sub.stream}","sid":"{sub.sid}","seq":{seq},"time":{at!r},'
                       f'"values":{values}}}')  # fmt: skip
            self._push(sub.conn, message, sub)

    def recheck(self, store_changed: bool = True) -> int:
        """Close every subscription whose consent or token is no longer valid; returns how many.

        ``store_changed``: another process wrote to the store since the last check (a token or an
        app may have been revoked: each connection's token is looked up again); else only expiries
        and the consent ledger are checked, in memory."""
        ledger = self.gateway.shield.consent
        now = float(self.gateway.clock.time())
        if not store_changed and ledger.version == self._checked_version and now < self._next_deadline:
            return 0  # nothing can have changed: no consent change, no token or grant past its end
        self._checked_version, deadline = ledger.version, math.inf
        closed = 0
        for conn in list(self._conns):
            if conn.app is not None and conn.subs:
                deadline = min(deadline, conn.token_expires)
                if now >= conn.token_expires:
                    for sub in list(conn.subs.values()):
                        self._close_sub(sub, "token_expired", "the token expired: authorize again and resubscribe")
                        closed += 1
                    continue
                valid: str | None = conn.app
                if store_changed or conn.token_hash is None:
                    valid = None
                    with contextlib.suppress(CortexError):
                        valid = self.store.token_app(conn.token_hash) if conn.token_hash is not None else None
                if valid is None:
                    record = None
                    with contextlib.suppress(CortexError):
                        record = self.store.app(conn.app)
                    name = "app_revoked" if record is None or not record.active else "token_revoked"
                    for sub in list(conn.subs.values()):
                        self._close_sub(sub, name, "the application's registration or token was revoked")
                        closed += 1
                    continue
            for sub in list(conn.subs.values()):
                if not ledger.is_active(sub.subject, sub.scope, sub.app):
                    self._close_for_consent(sub)
                    closed += 1
                else:
                    with contextlib.suppress(CortexError):
                        deadline = min(deadline, ledger.record(sub.subject, sub.app).expires_at)
        self._next_deadline = deadline
        return closed

    def _close_for_consent(self, sub: _Sub) -> None:
        record = None
        with contextlib.suppress(CortexError):
            record = self.gateway.shield.consent.record(sub.subject, sub.app)
        now = float(self.gateway.clock.time())
        if record is not None and record.capacity == "NONE":
            name = "capacity_none"
        elif record is not None and record.revoked_at is None and record.expired_at(now):
            name = "consent_expired"
        else:
            name = "consent_revoked"  # revoked, or the scope is no longer part of the grant
        texts = {"consent_revoked": "the wearer revoked this application's consent",
                 "capacity_none": "the wearer's capacity to consent dropped to NONE",
                 "consent_expired": "the wearer's consent expired"}  # fmt: skip
        self._close_sub(sub, name, texts[name])

    def _close_sub(self, sub: _Sub, name: str, message: str) -> None:
        self._forget_sub(sub)
        # the notice goes ahead of any data still queued for this subscription, which is discarded
        conn = sub.conn
        conn.out = deque((m, s) for m, s in conn.out if s is not sub)
        notice = {"jsonrpc": "2.0", "method": "subscriptionClosed",
                  "params": {"sid": sub.sid, "stream": sub.stream, "sensor": sub.sensor, "code": CODES[name],
                             "name": name, "message": message}}  # fmt: skip
        self._push(conn, json.dumps(notice, separators=(",", ":")), None)
        self.count(f"closed_{name}")
        self._audit_end(sub, name)

    def _forget_sub(self, sub: _Sub) -> None:
        sub.conn.subs.pop((sub.subject, sub.stream), None)
        subs = self._by_subject.get(sub.subject)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._by_subject[sub.subject]
        if sub.clinical is not None:
            sub.clinical.close()

    def _audit_end(self, sub: _Sub, reason: str) -> None:
        task = asyncio.ensure_future(self._audit("subscription_ended", app=sub.app, sensor_hash=sub.sensor[:16],
                                                 stream=sub.stream, reason=reason))  # fmt: skip
        self.gateway.keep(task)

    async def _audit(self, event: str, **details: str | int | float | bool) -> None:
        try:
            await asyncio.to_thread(self.store.audit, event, **details)
        except CortexError as exc:
            log.warning("an API audit entry could not be written: %s", exc)

    @property
    def subscriptions(self) -> int:
        return sum(len(v) for v in self._by_subject.values())


def _write_now(ws: ServerConnection, message: str) -> bool:
    """Write ``message`` now if nothing waits for this connection: what ``websockets.broadcast`` does,
    without waking the writer task and awaiting a send for each message (bench/api.py). Only when
    the transport's buffer is empty, so the order is kept and a reader that lags gets its messages
    through the queue and the writer, where the queue's bound and the stall limit apply."""
    transport = ws.transport
    if ws.protocol.state is not State.OPEN or transport.is_closing() or transport.get_write_buffer_size():
        return False
    try:
        broadcast([ws], message, raise_exceptions=True)
    except ExceptionGroup:
        return False  # the writer sends it, and meets the reason
    return True


def _failed(stream: str, name: str, message: str) -> dict[str, Any]:
    return {"stream": stream, "code": CODES[name], "name": name, "message": message}


def _feature_values(result: Any) -> list[Any]:
    """``[tensor, state, coherency, liveness, channels, refused]``: the (R, 5) tensor of the R released
    channels (``channels`` names its rows) and ``refused`` the frame's other channels with why."""
    tensor = np.atleast_2d(np.asarray(result.tensor, dtype=np.float64))
    refused = {str(label): str(reason.value) for label, reason in result.refused_channels.items()}
    return [tensor.tolist(), result.state_label, float(result.coherency_index), bool(result.liveness_proven),
            list(result.channels), refused]  # fmt: skip


def _describe(stream: str, labels: list[str] | None) -> dict[str, Any]:
    if stream == "features" or stream == "clinical":
        described: dict[str, Any] = {
            "cols": ["tensor", "state", "coherency", "liveness", "channels", "refused"],
            "tensor": {"rows": labels, "cols": list(FEATURE_COLS)},
            "channels": labels,
            "units": {"tensor": "obfuscated envelope statistics (unitless)", "state": "label",
                      "coherency": "std/mean of the envelope", "liveness": "bool",
                      "channels": "the labels of the tensor's rows (the released channels)",
                      "refused": "label -> why, for the frame's channels that released nothing"},
            "rate_hz": 0.5,
            "bounds": {"tensor": [0.0, 1.0], "coherency": [0.0, None]},
        }  # fmt: skip
        if stream == "clinical":
            described["encoding"] = ("base64 of counter (u64 BE) || ChaCha20-Poly1305 ciphertext of the features "
                                     "JSON; key = HKDF-SHA256 of X25519(clinician, gateway_public_key), "
                                     "info 'cortex-clinical-stream-v1'; aad = counter || sid")  # fmt: skip
            described["cols"] = ["ciphertext"]
        return described
    return {
        "cols": ["payload"],
        "units": {"payload": "base64 of 41 bytes: u32 seq, 8 float32 spectral bins, float32 cv, u8 bucket"},
        "rate_hz": 0.5,
        "bounds": {},
    }
