"""The gateway: an asyncio TCP server, a thin loop around :class:`~.connection.GatewayConnection`.

One connection is one sensor. The loop only moves bytes and enforces time and count limits
(:class:`GatewayLimits`); the protocol is the sans-IO connection's, the decisions the shield's.
Released results go to the subscribers (:meth:`Gateway.subscribe`: bounded queues that drop
the oldest result when a consumer lags, and count it) and, for scopes with retention on, to the
store. Raw frames are never queued: a frame is decrypted into locked memory, processed and
zeroed before the loop reads the next record of that connection.

Revocation: a watcher polls the store (``data_version``, every ``revocation_poll_s``) and, when
it changed, reloads the sensor revocations and the CAs' lists and ends every open connection whose
sensor is now revoked. :meth:`Gateway.reload` (SIGHUP) does the same and applies policy bundles
stored since the start. :meth:`Gateway.shutdown` (SIGTERM) stops accepting, ends every connection
(frames already received are finished first), purges every key and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..checks import int_in_range
from ..clock import SYSTEM_CLOCK, Clock
from ..crypto import X25519PrivateKey
from ..errors import CertificateError, CortexError, InvalidArgumentError, SensorNotCertifiedError, WrongTypeError
from ..keros.certificate import TrustStore, VerifiedCertificate
from ..keros.framing import CloseReason
from ..sal.results import Released
from ..store.base import Store
from ..store.runtime import open_shield
from .api import ApiServer
from .connection import MAX_HANDSHAKE_RECORD, MAX_RECORD, Admitted, Ended, FrameHandled, GatewayConnection, Send, Stage
from .metrics import GatewayMetrics

log = logging.getLogger("cortex_sal.gateway")

__all__ = ["Gateway", "GatewayLimits", "ReleasedFrame", "SensorInfo", "Subscription"]


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{what} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    """What one gateway accepts; every refusal closes only the connection concerned."""

    max_connections: int = 4096
    max_handshakes: int = 512  # handshakes in progress at once
    handshake_timeout_s: float = 5.0  # from accept to the sensor admitted
    idle_timeout_s: float = 30.0  # no record for this long ends a streaming connection (a frame is every 2 s)
    write_timeout_s: float = 5.0  # a peer that stops reading is dropped after this
    max_record: int = MAX_RECORD  # the largest DATA record body: a 32-channel v2 frame (32,784 bytes) fits
    max_handshake_record: int = MAX_HANDSHAKE_RECORD  # the largest HANDSHAKE record body (as before: 4096)
    rate_per_address: float = 200.0  # new connections per second per source address (token bucket)
    burst_per_address: int = 2000
    queue_size: int = 4096  # released results held per subscriber before the oldest is dropped
    revocation_poll_s: float = 0.25
    session_lifetime_s: float = 4 * 3600.0  # then the session ends and the sensor re-handshakes
    evict_after_s: float = 1.0  # a handshake this old gives way when the slots are full; younger: refused

    def __post_init__(self) -> None:
        int_in_range(self.max_connections, "max_connections", 1, 1_000_000)
        int_in_range(self.max_handshakes, "max_handshakes", 1, 1_000_000)
        int_in_range(self.max_record, "max_record", 64, 65535)
        int_in_range(self.max_handshake_record, "max_handshake_record", 64, 65535)
        int_in_range(self.burst_per_address, "burst_per_address", 1, 1_000_000)
        int_in_range(self.queue_size, "queue_size", 1, 10_000_000)
        for name in ("handshake_timeout_s", "idle_timeout_s", "write_timeout_s", "rate_per_address",
                     "revocation_poll_s", "session_lifetime_s", "evict_after_s"):  # fmt: skip
            _seconds(getattr(self, name), name)


@dataclass(frozen=True, slots=True)
class ReleasedFrame:
    """What a subscriber receives for one released frame: the pseudonym and the shield's result."""

    sensor: str  # the 16-hex pseudonym, never the sensor id
    seq: int
    time: float
    result: Released
    latency_s: float  # frame record complete -> result released


class Subscription:
    """A bounded queue of released results; when full, the oldest is dropped and counted."""

    def __init__(self, size: int) -> None:
        self._items: deque[ReleasedFrame] = deque()
        self._size = size
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def put(self, item: ReleasedFrame) -> bool:
        """Add one; returns False when an older one was dropped to make room."""
        dropped = len(self._items) >= self._size
        if dropped:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()
        return not dropped

    def get_nowait(self) -> ReleasedFrame | None:
        if not self._items:
            self._ready.clear()
            return None
        return self._items.popleft()

    async def get(self, timeout: float | None = None) -> ReleasedFrame | None:
        """The next result, or ``None`` when the subscription is closed (or ``timeout`` passed)."""
        while not self._items:
            if self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        self.closed = True
        self._ready.set()


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What the applications' API may say of a connected sensor: its model and channel labels."""

    model_id: str
    labels: tuple[str, ...]


@dataclass(eq=False)  # identity: one per connection, kept in sets
class _Live:
    conn: GatewayConnection
    writer: asyncio.StreamWriter
    address: str
    peer: VerifiedCertificate | None = None
    started: float = 0.0  # the event loop's time at accept
    labels: tuple[str, ...] = ()  # the channel labels of the admitted sensor's model


class Gateway:
    """One gateway process's state: the shield started from the store, the connections, the metrics.

    ``ephemeral_keys`` (known-answer tests and the residue proof only): called once per accepted
    connection for its Noise ephemeral key, which that connection's handshake takes over; None (or
    a call returning None): each handshake draws its own in locked memory.
    """

    def __init__(
        self,
        *,
        store: Store,
        static_key: X25519PrivateKey,
        certificate: bytes,
        trust: TrustStore,
        limits: GatewayLimits | None = None,
        clock: Clock = SYSTEM_CLOCK,
        metrics: GatewayMetrics | None = None,
        ephemeral_keys: Callable[[], X25519PrivateKey | None] | None = None,
    ) -> None:
        if not isinstance(store, Store):
            raise WrongTypeError(f"store must be a Store, got {type(store).__name__}")
        if not isinstance(trust, TrustStore):
            raise WrongTypeError(f"trust must be a TrustStore, got {type(trust).__name__}")
        self.limits = limits if limits is not None else GatewayLimits()
        self.store = store
        self._key = static_key
        self._certificate = certificate
        self.trust = trust
        self._clock = clock
        self._ephemeral_keys = ephemeral_keys
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self.shield = open_shield(store, clock=clock)
        self.store.load_revocation_lists(self.trust)
        self._retention = set(store.retention())
        self._conns: set[_Live] = set()
        self._by_sensor: dict[str, _Live] = {}
        self._by_log_id: dict[str, _Live] = {}  # the same connections by pseudonym (the API's subject)
        self._in_handshake: dict[_Live, None] = {}  # connections in their handshake, oldest first
        self._buckets: dict[str, tuple[float, float]] = {}
        self._subscribers: list[Subscription] = []
        self._server: asyncio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._version = store.consent_version()
        self._send_version = self._version
        self._api_version = self._version
        self.api: ApiServer | None = None
        self.lsl: Any = None  # LslOutlets, when serve_lsl() was called
        self._closing = False
        self.address: tuple[str, int] | None = None
        self.metrics.bind_keys(self.shield)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (0: a free port); returns the address really bound."""
        # the accept queue holds as many connections as may be in handshake (asyncio's default of 100 made a
        # storm of sensors wait for SYN retransmits: 1 s, then 3 s)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(self), host, port, backlog=max(100, self.limits.max_handshakes)
        )
        sock = self._server.sockets[0].getsockname()
        self.address = (str(sock[0]), int(sock[1]))
        self._watcher = asyncio.create_task(self._watch())
        log.info("gateway listening on %s:%d", *self.address)
        return self.address

    async def serve_api(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[str, int]:
        """Serve the applications' API (:class:`~.api.ApiServer`, docs/api.md) on ``host:port``."""
        if self.api is not None:
            raise InvalidArgumentError("the API is already served")
        self.api = ApiServer(self, **options)
        return await self.api.start(host, port)

    def serve_lsl(self) -> None:
        """Publish released features of consenting wearers on LSL outlets (:mod:`.lsl_outlet`)."""
        from .lsl_outlet import LslOutlets  # pylsl is optional: imported only when asked for

        if self.lsl is None:
            self.lsl = LslOutlets(self)

    @property
    def clock(self) -> Clock:
        return self._clock

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a background task until it ends (shutdown waits for it)."""
        self._tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._tasks.discard)

    def sensors(self) -> dict[str, SensorInfo]:
        """The admitted, connected sensors: pseudonym -> model and channel labels."""
        return {
            live.conn.log_id: SensorInfo(live.peer.model_id or "", live.labels)
            for live in self._by_sensor.values()
            if live.peer is not None and live.conn.log_id is not None
        }

    def sensor(self, log_id: str) -> SensorInfo | None:
        """One admitted, connected sensor by pseudonym (None: not connected), without walking them all."""
        live = self._by_log_id.get(log_id)
        if live is None or live.peer is None or self._by_sensor.get(live.conn.sensor_id or "") is not live:
            return None
        return SensorInfo(live.peer.model_id or "", live.labels)

    async def shutdown(self) -> None:
        """Stop accepting, end every connection, purge every key, close the store. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self.api is not None:
            await self.api.shutdown()
        if self.lsl is not None:
            self.lsl.close()
        if self._server is not None:
            self._server.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for live in list(self._conns):
            await self._end(live, "shutdown", "the gateway is stopping", CloseReason.SHUTDOWN)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.limits.write_timeout_s + 1)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        for sub in self._subscribers:
            sub.close()
        self.shield.close()  # every remaining key purged (the salt, the LIMES master, attached channels)
        self.store.close()
        log.info("gateway stopped")

    def custody(self) -> dict[str, int]:
        report = self.shield.custody_report()
        return {
            "sessions_opened": report.sessions_opened,
            "sessions_closed": report.sessions_closed,
            "channels_attached": report.channels_attached,
            "channels_closed": report.channels_closed,
        }

    def subscribe(self, size: int | None = None) -> Subscription:
        sub = Subscription(size if size is not None else self.limits.queue_size)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    @property
    def connections(self) -> int:
        return len(self._conns)

    # -- revocation and reload ----------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.limits.revocation_poll_s)
            try:
                version = self.store.consent_version()
                if version != self._version:
                    self._version = version
                    await self.refresh_revocations()
                if self.api is not None:  # revocations, expiries, capacity NONE, tokens: even when no frame flows
                    self.api.recheck(store_changed=self._sync_consent() or version != self._api_version)
                    self._api_version = version
                if self.lsl is not None:
                    self._sync_consent()
                    self.lsl.recheck()
            except CortexError as exc:  # a store that fails to answer must not stop the gateway
                log.warning("revocation poll failed: %s", exc)

    async def refresh_revocations(self) -> int:
        """Reload the stored revocations and CA lists; end the connections of revoked sensors."""
        for sensor_id in self.store.revoked_sensors():
            self.shield.registry.revoke(sensor_id)
        try:
            self.store.load_revocation_lists(self.trust)
        except CertificateError as exc:
            log.warning("a stored revocation list was refused: %s", exc.message)
        ended = 0
        for live in list(self._conns):
            peer = live.peer
            if peer is None or live.conn.sensor_id is None:
                continue
            try:
                self.shield.registry.admit(live.conn.sensor_id)
                revoked = self.trust.is_revoked(peer.issuer_key_id, peer.serial)
            except SensorNotCertifiedError:
                revoked = True
            if revoked:
                await self._end(live, "revoked", "the sensor's certificate was revoked", CloseReason.REFUSED)
                ended += 1
        return ended

    async def reload(self) -> None:
        """SIGHUP: revocations and CA lists again, and policy bundles stored since the start."""
        await self.refresh_revocations()
        self._retention = set(self.store.retention())
        applied = {a.digest_hex for a in self.shield.policy.history}
        for step in self.store.policy_history():
            if step.digest_hex not in applied:
                self.shield.apply_policy(step.bundle, step.registry, now=step.verified_at)
                log.info("policy applied on reload: proposal %s", step.digest_hex)

    # -- one connection -------------------------------------------------------------------------------

    def _admit_address(self, address: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(address, (float(self.limits.burst_per_address), now))
        tokens = min(float(self.limits.burst_per_address), tokens + (now - last) * self.limits.rate_per_address)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            return False
        self._buckets[address] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # bounded: forget the fullest buckets (idle addresses)
            full = [a for a, (t, _) in self._buckets.items() if t >= self.limits.burst_per_address - 1]
            for a in full[:50_000]:
                del self._buckets[a]
        return True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    def refuses(self, address: str) -> bool:
        """Whether a connection from ``address`` is refused at accept (closing, the connection limit,
        the address's rate, or every handshake slot held by a handshake too young to give way).

        Decided before asyncio builds a stream, a writer or a task for the connection (:class:`_Gate`):
        a flood of refused connections then leaves next to no garbage behind (measured: the
        collector's pauses of refused connections' cycles were what slowed the other sensors)."""
        if self._closing or len(self._conns) >= self.limits.max_connections or not self._admit_address(address):
            return True
        if len(self._in_handshake) >= self.limits.max_handshakes:
            oldest = next(iter(self._in_handshake))
            return asyncio.get_running_loop().time() - oldest.started < self.limits.evict_after_s
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        address = str(peername[0]) if isinstance(peername, tuple) else "unix"
        m = self.metrics
        if len(self._in_handshake) >= self.limits.max_handshakes:
            # the oldest handshake gives way (refuses() let this one in: it has had evict_after_s): a
            # sensor finishes in milliseconds (a storm of them in well under a second), a stalled peer
            # does not, so one address (at most rate_per_address new connections a second) cannot hold
            # every slot; when even the oldest is young (a storm), the newcomer was refused and retries
            oldest = next(iter(self._in_handshake))
            if asyncio.get_running_loop().time() - oldest.started < self.limits.evict_after_s:
                m.connection_refused("limit")  # admitted at accept in the same turn as the ones ahead of it
                writer.close()
                return
            del self._in_handshake[oldest]
            await self._end(oldest, "evicted", "the handshake slots are full: the oldest handshake gives way",
                            CloseReason.SHUTDOWN)  # fmt: skip
        conn = GatewayConnection(
            static_key=self._key, certificate=self._certificate, trust=self.trust, shield=self.shield,
            clock=self._clock, max_record=self.limits.max_record, supersede=self._supersede,
            max_handshake_record=self.limits.max_handshake_record,
            ephemeral=self._ephemeral_keys() if self._ephemeral_keys is not None else None,
        )  # fmt: skip
        live = _Live(conn, writer, address, started=asyncio.get_running_loop().time())
        self._conns.add(live)
        self._in_handshake[live] = None
        in_handshake = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.handshake_timeout_s
        ends_at = math.inf  # the session's end, set once the sensor is admitted
        try:
            while conn.stage is not Stage.CLOSED:
                if in_handshake and conn.stage is Stage.STREAMING:
                    in_handshake = False
                    self._in_handshake.pop(live, None)
                    ends_at = loop.time() + self.limits.session_lifetime_s
                if in_handshake:
                    timeout, why = deadline - loop.time(), "handshake_timeout"
                elif ends_at - loop.time() < self.limits.idle_timeout_s:
                    timeout, why = ends_at - loop.time(), "lifetime"
                else:
                    timeout, why = self.limits.idle_timeout_s, "idle_timeout"
                try:
                    data = await asyncio.wait_for(reader.read(conn.read_size), max(timeout, 0.0))
                except TimeoutError:
                    texts = {"handshake_timeout": "no handshake in time", "idle_timeout": "no record in time",
                             "lifetime": "the session reached its lifetime: connect again"}  # fmt: skip
                    await self._apply(live, conn.end(why, texts[why]))
                    break
                except (ConnectionError, OSError):
                    data = b""
                m.bytes_in(len(data))
                await self._apply(live, conn.receive_data(data))
        except asyncio.CancelledError:
            conn.end("shutdown", "cancelled")
            raise
        except Exception:  # a bug must never take the gateway down: log it, end this connection only
            log.exception("connection handler failed")
            await self._apply(live, conn.end("error", "internal error", CloseReason.PROTOCOL_ERROR))
        finally:
            self._in_handshake.pop(live, None)
            conn.close()  # every key of this connection purged, whatever happened
            self._forget(live)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _forget(self, live: _Live) -> None:
        self._conns.discard(live)
        log_id = live.conn.log_id
        if log_id is not None and self._by_log_id.get(log_id) is live:
            del self._by_log_id[log_id]
        sensor_id = live.conn.sensor_id
        if sensor_id is not None and self._by_sensor.get(sensor_id) is live:
            del self._by_sensor[sensor_id]
            self.metrics.sensors_connected(len(self._by_sensor))

    def _supersede(self, sensor_id: str) -> None:
        """The same sensor proved itself on a new connection: the older one ends first."""
        old = self._by_sensor.get(sensor_id)
        if old is not None:
            for event in old.conn.end("superseded", "the sensor connected again", CloseReason.SHUTDOWN):
                self._note(old, event)
                if isinstance(event, Send):
                    old.writer.write(event.data)
            self._forget(old)

    async def _end(self, live: _Live, reason: str, detail: str, close: CloseReason) -> None:
        await self._apply(live, live.conn.end(reason, detail, close))
        live.writer.close()

    async def _apply(self, live: _Live, events: Iterable[Any]) -> None:
        for event in events:
            self._note(live, event)
            if isinstance(event, Send) and not live.writer.is_closing():
                live.writer.write(event.data)
                try:
                    await asyncio.wait_for(live.writer.drain(), self.limits.write_timeout_s)
                except TimeoutError:
                    # ended here, unless this write was the connection's own CLOSE (already ended:
                    # end() gives nothing and the Ended that follows in ``events`` is counted)
                    for ended in live.conn.end("slow_reader", "the peer stopped reading"):
                        if isinstance(ended, Ended):
                            self._note(live, ended)
                    live.writer.transport.abort()
                except (ConnectionError, OSError):
                    pass

    def _note(self, live: _Live, event: Any) -> None:
        m = self.metrics
        if isinstance(event, Admitted):
            live.peer = event.peer
            model = {m.model_id: m for m in self.shield.registry.models()}.get(event.peer.model_id or "")
            live.labels = tuple(model.labels) if model is not None else ()
            self._by_sensor[event.sensor_id] = live
            self._by_log_id[event.log_id] = live
            m.handshake("admitted")
            m.sensors_connected(len(self._by_sensor))
            log.info("sensor %s admitted (model %s)", event.log_id, event.peer.model_id)
        elif isinstance(event, FrameHandled):
            result = event.result
            if isinstance(result, Released):
                latency = time.perf_counter() - event.received
                m.frame("released", latency)
                item = ReleasedFrame(live.conn.log_id or "", event.seq, float(self._clock.time()), result, latency)
                if (self.api is not None or self.lsl is not None) and live.conn.log_id is not None:
                    if self._sync_consent() and self.api is not None:
                        self.api.recheck()
                    if self.api is not None:
                        self.api.deliver(live.conn.log_id, event.seq, item.time, result)
                    if self.lsl is not None:
                        self.lsl.deliver(live.conn.log_id, result, live.peer.model_id if live.peer else "", live.labels)
                for sub in self._subscribers:
                    if not sub.put(item):
                        m.queue_drop()
                if "biometric" in self._retention and live.conn.log_id is not None:
                    self._keep(live.conn.log_id, item)
            else:
                m.frame(result.reason.value, None)
        elif isinstance(event, Ended):
            if live.conn.sensor_id is None:
                m.handshake(event.reason)
            m.connection_closed(event.reason)
            level = logging.INFO if event.reason in ("normal", "shutdown", "superseded") else logging.WARNING
            log.log(level, "connection of %s ended: %s (%s)", live.conn.log_id or "a sensor in handshake",
                    event.reason, event.detail)  # fmt: skip

    def _sync_consent(self) -> bool:
        """Before anything is sent to an application: another process's consent change is taken now
        (one ``data_version`` read per released frame); returns whether there was one."""
        try:
            version = self.store.consent_version()
        except CortexError as exc:
            log.warning("consent poll failed: %s", exc)
            return False
        if version == self._send_version:
            return False
        self._send_version = version
        self.shield.consent.sync()
        return True

    def _keep(self, subject: str, item: ReleasedFrame) -> None:
        r = item.result
        values = {
            "state": r.state_label,
            "coherency": float(r.coherency_index),
            "liveness": bool(r.liveness_proven),
            # one row per released channel: (5,) for a one-channel model (one row, as before), (R, 5) else
            "features": [[float(x) for x in row] for row in r.tensor.reshape(-1, r.tensor.shape[-1])],
        }
        if r.tensor.ndim == 2:  # a multi-channel model: name the rows (a one-channel row is kept as before)
            values["channels"] = list(r.channels)
        try:
            self.store.record_release(subject, "biometric", item.seq, values)
        except CortexError as exc:
            log.warning("a released result could not be kept: %s", exc)


class _Gate(asyncio.StreamReaderProtocol):
    """Accept: refuse a connection (count it, close it) before any stream, writer or task exists."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        super().__init__(asyncio.StreamReader(limit=gateway.limits.max_record * 4), gateway._accept)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        address = str(peername[0]) if isinstance(peername, tuple) else "unix"
        if self._gateway.refuses(address):
            self._gateway.metrics.connection_refused("limit")
            transport.close()
            return
        super().connection_made(transport)
