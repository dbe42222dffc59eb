"""The gateway's Prometheus metrics (``prometheus-client``), in a registry of their own.

Served as text on ``--metrics HOST:PORT`` (default host 127.0.0.1). Labels are reasons and
outcomes, never an identifier: no sensor id, no pseudonym, no address.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from ..securemem.arena import arena
from ..securemem.status import vm_lck_kb

if TYPE_CHECKING:
    from ..sal.shield import CognitiveShield

__all__ = ["GatewayMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class GatewayMetrics:
    """Counters, gauges and the latency histogram of one gateway."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._connected = Gauge("cortex_sal_sensors_connected", "Sensors admitted and connected now", registry=r)
        self._handshakes = Counter(
            "cortex_sal_handshakes", "Handshakes by outcome (admitted, or why refused)", ["outcome"], registry=r
        )
        self._frames = Counter(
            "cortex_sal_frames", "Frames handled by outcome (released, or the refusal reason)", ["outcome"], registry=r
        )
        self._closed = Counter("cortex_sal_connections_closed", "Connections ended, by reason", ["reason"], registry=r)
        self._refused = Counter(
            "cortex_sal_connections_refused", "Connections refused at accept, by reason", ["reason"], registry=r
        )
        self._bytes = Counter("cortex_sal_bytes_received", "Bytes received from sensors", registry=r)
        self._api = Counter(
            "cortex_sal_api_events", "Applications' API: connections, refusals by code, drops, closed subscriptions",
            ["event"], registry=r,
        )  # fmt: skip
        self._drops = Counter("cortex_sal_queue_drops", "Released results dropped for a lagging subscriber", registry=r)
        self._latency = Histogram(
            "cortex_sal_frame_latency_seconds", "Frame record received to result released", buckets=_LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self._keys = Gauge("cortex_sal_arena_slots_live", "Secure arena slots live (keys and frames)", registry=r)
        self._vmlck = Gauge("cortex_sal_vmlck_bytes", "Locked memory of the process (VmLck)", registry=r)
        # cheap reads on purpose: securemem.status() parses all of /proc/self/smaps (~40 ms for the gateway's
        # ~900 mappings, holding the GIL), which stalled the event loop on every scrape
        self._keys.set_function(lambda: float(arena().live_slots()[0]))
        self._vmlck.set_function(lambda: float(vm_lck_kb() * 1024))
        self._sessions: Gauge | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def bind_keys(self, shield: CognitiveShield) -> None:
        """Sessions opened and closed, read from the shield's custody report when scraped."""
        if self._sessions is None:
            self._sessions = Gauge(
                "cortex_sal_sessions", "Sensor sessions of the shield", ["state"], registry=self.registry
            )
        self._sessions.labels("opened").set_function(lambda: float(shield.custody_report().sessions_opened))
        self._sessions.labels("closed").set_function(lambda: float(shield.custody_report().sessions_closed))

    # -- what the loop records --

    def sensors_connected(self, n: int) -> None:
        self._connected.set(n)

    def handshake(self, outcome: str) -> None:
        self._handshakes.labels(outcome).inc()

    def frame(self, outcome: str, latency_s: float | None) -> None:
        self._frames.labels(outcome).inc()
        if latency_s is not None:
            self._latency.observe(latency_s)

    def connection_closed(self, reason: str) -> None:
        self._closed.labels(reason).inc()

    def connection_refused(self, reason: str) -> None:
        self._refused.labels(reason).inc()

    def bytes_in(self, n: int) -> None:
        if n:
            self._bytes.inc(n)

    def api(self, event: str) -> None:
        self._api.labels(event).inc()

    def queue_drop(self) -> None:
        self._drops.inc()

    # -- reading --

    def text(self) -> str:
        return generate_latest(self.registry).decode("utf-8")

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0.0 if absent), e.g. ``value("cortex_sal_frames_total", outcome="released")``."""
        got = self.registry.get_sample_value(name, labels or None)
        return 0.0 if got is None else float(got)

    def serve(self, host: str, port: int) -> int:
        """Serve the text format on ``host:port`` in a thread; returns the port bound."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
