"""The sensor side over TCP: handshake, stream frames from a source, reconnect when dropped.

:func:`run_sensor` connects to a gateway, runs the KEROS v2 handshake through
:class:`~.connection.SensorConnection`, then sends one frame per record at the source's real
rate (256 samples at 128 Hz: one frame every 2 s) or as fast as the gateway takes them. A frame
is ``(256,)`` or ``(C, 256)`` float32 microvolts, channel-major (``C * 1024`` bytes on the wire);
the locked buffer is sized from the first frame and every later frame must have its shape. When the
connection drops or the gateway shuts down, it reconnects with exponential backoff and full
jitter and resumes with a new handshake (a frame that was being sent when the connection broke is
lost, and counted). A refusal (certificate, not admitted, a gateway whose certified name is not
the one expected) is final: reconnecting would be refused again.

On the sensor, each frame's samples are copied into a locked buffer and encrypted from there;
the source's own arrays (a device driver's, a file reader's) are outside this library's custody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..crypto import X25519PrivateKey
from ..errors import GatewayError, InvalidArgumentError
from ..keros.certificate import TrustStore
from ..sal.frame import SAMPLE_DTYPE, SAMPLES_PER_FRAME
from ..securemem import SecureTensorBuffer
from .connection import Ended, Send, SensorConnection

log = logging.getLogger("cortex_sal.gateway.sensor")

__all__ = ["SensorReport", "run_sensor"]

FINAL = frozenset({"certificate", "not_admitted", "v1_refused", "revoked"})


@dataclass
class SensorReport:
    frames_sent: int = 0
    frames_lost: int = 0  # sent on a connection that broke before the gateway could take them
    connections: int = 0
    handshakes_failed: int = 0
    gateway: str | None = None  # the certified gateway name of the last connection
    reasons: list[str] = field(default_factory=list)  # why each connection ended

    def summary(self) -> str:
        ended = ", ".join(sorted({r for r in self.reasons if r != "normal"}))  # e.g. a refused frame size
        return (
            f"{self.frames_sent} frames sent to gateway {self.gateway!r} over {self.connections} connection(s)"
            f"{f', {self.frames_lost} lost' if self.frames_lost else ''}"
            f"{f' (connections ended: {ended})' if ended else ''}"
        )


MAX_CHANNELS = 1024


def _frame_shape(frame: np.ndarray) -> tuple[int, ...]:
    """``(256,)`` (one channel, the shield's frame today) or ``(C, 256)``: channel-major frames."""
    shape = np.shape(frame)
    if shape == (SAMPLES_PER_FRAME,) or (
        len(shape) == 2 and shape[1] == SAMPLES_PER_FRAME and 1 <= shape[0] <= MAX_CHANNELS
    ):
        return tuple(int(n) for n in shape)
    raise InvalidArgumentError(
        f"a frame is ({SAMPLES_PER_FRAME},) or (C, {SAMPLES_PER_FRAME}) samples with 1 <= C <= {MAX_CHANNELS}, "
        f"got shape {shape}"
    )


async def _handshake(
    conn: SensorConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
) -> Ended | None:
    writer.write(conn.start())
    await writer.drain()
    async with asyncio.timeout(timeout):
        while conn.transport is None:
            data = await reader.read(65536)
            for event in conn.receive_data(data):
                if isinstance(event, Send):
                    writer.write(event.data)
                elif isinstance(event, Ended):
                    return event
        await writer.drain()
    return None


async def run_sensor(
    host: str,
    port: int,
    *,
    static_key: X25519PrivateKey,
    certificate: bytes,
    trust: TrustStore,
    frames: Iterator[np.ndarray],
    total: int | None = None,
    rate_hz: float = 128.0,
    as_fast_as_possible: bool = False,
    expect_gateway: str | None = None,
    max_attempts: int = 8,
    backoff_s: float = 0.2,
    backoff_cap_s: float = 10.0,
    handshake_timeout_s: float = 10.0,
    rng: random.Random | None = None,
    source_in_thread: bool = False,
) -> SensorReport:
    """Stream ``total`` frames (all the source gives when ``None``); raise :class:`GatewayError` on a refusal.

    ``source_in_thread``: take each frame after the first from ``frames`` in a worker thread (a live
    source blocks until its samples arrive; the event loop meanwhile sees the gateway close)."""
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
        raise InvalidArgumentError(f"total must be a positive number of frames, got {total!r}")
    rng = rng or random.Random()
    report = SensorReport()
    period = SAMPLES_PER_FRAME / rate_hz
    source = iter(frames)
    pending: np.ndarray | None = next(source, None)  # the first frame sizes the locked buffer (before connecting)
    shape = _frame_shape(pending) if pending is not None else (SAMPLES_PER_FRAME,)
    attempt = 0
    with SecureTensorBuffer(shape, SAMPLE_DTYPE) as plain:
        while total is None or report.frames_sent < total:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), handshake_timeout_s)
            except (OSError, TimeoutError) as exc:
                attempt += 1
                if attempt >= max_attempts:
                    raise GatewayError(
                        f"cannot reach the gateway at {host}:{port} after {attempt} attempts: {exc}"
                    ) from None
                await asyncio.sleep(min(backoff_cap_s, backoff_s * 2**attempt) * rng.random())
                continue
            conn = SensorConnection(static_key=static_key, certificate=certificate, trust=trust,
                                    expect_gateway=expect_gateway)  # fmt: skip
            report.connections += 1
            try:
                try:
                    ended = await _handshake(conn, reader, writer, handshake_timeout_s)
                except (TimeoutError, ConnectionError, OSError) as exc:
                    ended = Ended("handshake", f"{type(exc).__name__}: {exc}")
                if ended is not None:
                    report.handshakes_failed += 1
                    report.reasons.append(ended.reason)
                    if ended.reason in FINAL:
                        raise GatewayError(f"the gateway refused this sensor ({ended.reason}): {ended.detail}")
                    attempt += 1
                    if attempt >= max_attempts:
                        raise GatewayError(f"no handshake after {attempt} attempts (last: {ended.reason})")
                    await asyncio.sleep(min(backoff_cap_s, backoff_s * 2**attempt) * rng.random())
                    continue
                attempt = 0
                report.gateway = conn.gateway.gateway_name if conn.gateway else None
                log.info("connected to gateway %r", report.gateway)
                closed = asyncio.create_task(reader.read(65536))  # the gateway speaks only to close
                sent_here = 0
                next_at = time.monotonic()
                while total is None or report.frames_sent < total:
                    if closed.done():
                        break
                    if pending is None:
                        if source_in_thread:  # a live source waits for its samples: the loop keeps running
                            pending = await asyncio.to_thread(next, source, None)
                        else:
                            pending = next(source, None)
                        if pending is None:
                            total = report.frames_sent
                            break
                    if np.shape(pending) != shape:
                        raise InvalidArgumentError(
                            f"every frame must have the first frame's shape {shape}, got {np.shape(pending)}"
                        )
                    np.copyto(plain.array, np.asarray(pending, dtype=SAMPLE_DTYPE), casting="same_kind")
                    writer.write(conn.frame(plain))
                    plain.array[...] = 0.0
                    try:
                        await writer.drain()
                    except (ConnectionError, OSError):
                        report.frames_lost += 1
                        break
                    pending = None
                    report.frames_sent += 1
                    sent_here += 1
                    if not as_fast_as_possible:
                        next_at += period
                        delay = next_at - time.monotonic()
                        if delay > 0:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(asyncio.shield(closed), delay)
                done = total is not None and report.frames_sent >= total
                if done and not closed.done():
                    writer.write(conn.finish())
                    with contextlib.suppress(ConnectionError, OSError):
                        await writer.drain()
                    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                        await asyncio.wait_for(asyncio.shield(closed), handshake_timeout_s)  # the gateway's EOF
                    data = b""
                    with contextlib.suppress(Exception):
                        data = closed.result() if closed.done() else b""
                    why, detail = "normal", "done"
                    for event in conn.receive_data(data or b""):  # a refusal that crossed the last frames
                        if isinstance(event, Ended) and (event.reason in FINAL or not event.normal):
                            why, detail = event.reason, event.detail
                    report.reasons.append(why)
                    if why in FINAL:
                        raise GatewayError(f"the gateway ended the session ({why}): {detail}")
                else:
                    data = b""
                    with contextlib.suppress(Exception):
                        data = closed.result() if closed.done() else b""
                    why, detail = "dropped", "the connection broke"
                    for event in conn.receive_data(data or b""):
                        if isinstance(event, Ended):
                            why, detail = event.reason, event.detail
                    report.reasons.append(why)
                    if why in FINAL:
                        raise GatewayError(f"the gateway ended the session ({why}): {detail}")
                    if not done:
                        log.info("connection ended (%s) after %d frames; reconnecting", why, sent_here)
                        await asyncio.sleep(min(backoff_cap_s, backoff_s) * rng.random())
                closed.cancel()
            finally:
                conn.close()
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)
    return report
