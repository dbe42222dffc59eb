"""``cortex-sal gateway`` and ``cortex-sal sensor``: the service over TCP (docs/gateway.md).

The gateway prints ``listening on HOST:PORT`` (and the metrics address) on one line each as
soon as it accepts, runs until SIGTERM or SIGINT (drain: stop accepting, end every connection,
purge every key, close the store; exit 0) and reloads revocations and policy on SIGHUP. The
sensor exits 0 after its frames with a one-line summary, 2 on a refusal or bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import CliInputError
from ..gateway.api import ApiLimits
from ..gateway.logs import PseudonymFilter
from ..gateway.metrics import GatewayMetrics
from ..gateway.sensor import run_sensor
from ..gateway.server import Gateway, GatewayLimits
from ..securemem import harden_process, status
from ..sources import OUTPUT_RATE_HZ, FrameCounter, Framer, Source, frames, open_spec
from ..store.keros import load_identity, load_trust
from ..store.runtime import stored_registry
from ..store.sqlite import SqliteStore
from ._common import guarded

__all__ = ["add_gateway_parsers", "address_arg", "open_source"]

log = logging.getLogger("cortex_sal.cli.sensor")


def address_arg(text: str) -> tuple[str, int]:
    """argparse type: ``HOST:PORT`` (port 0 picks a free one)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message (the messages carry no identifier)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": round(record.created, 3),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            },
            ensure_ascii=True,
        )


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _serve(args: argparse.Namespace, tls: ssl.SSLContext | None) -> int:
    static_key, certificate = load_identity(args.identity)
    try:
        trust = load_trust(*args.trust)
        limits = GatewayLimits(
            max_connections=args.max_connections,
            handshake_timeout_s=args.handshake_timeout,
            idle_timeout_s=args.idle_timeout,
        )
        store = SqliteStore(args.data_dir, exclusive=True)
        metrics = GatewayMetrics()
        try:
            gateway = Gateway(store=store, static_key=static_key, certificate=certificate, trust=trust,
                              limits=limits, metrics=metrics)  # fmt: skip
        except BaseException:
            store.close()
            raise
        try:
            host, port = await gateway.start(*args.listen)
            api_address = None
            if args.api is not None:
                api_address = await gateway.serve_api(
                    *args.api, limits=ApiLimits(token_ttl_s=args.token_ttl), allowed_origins=args.allow_origin or (),
                    ssl_context=tls,
                )  # fmt: skip
            if args.lsl_outlet:
                gateway.serve_lsl()
        except BaseException:  # nothing half-started: every socket closed, every key purged, the store's lock freed
            await gateway.shutdown()
            raise
        # what start-up made lives as long as the gateway: out of the collector's walks (measured in
        # bench/gateway.py --attack --gc-freeze: the longest event-loop stalls halved)
        gc.collect()
        gc.freeze()
        _say(f"listening on {host}:{port}")
        if api_address is not None:
            _say(f"api on {'wss' if args.tls_cert else 'ws'}://{api_address[0]}:{api_address[1]}")
        if args.metrics is not None:
            mport = metrics.serve(*args.metrics)
            _say(f"metrics on http://{args.metrics[0]}:{mport}/metrics")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(gateway.reload()))
        await stop.wait()
        await gateway.shutdown()
        metrics.stop()
        custody = gateway.custody()
        _say(
            f"stopped: {custody['sessions_closed']}/{custody['sessions_opened']} sessions closed, "
            f"{custody['channels_closed']}/{custody['channels_attached']} channels purged, "
            f"{status().slots_live} secure slots live"
        )
        return 0
    finally:
        static_key.purge()


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """TLS for the API: required for any address but loopback (a token and features cross the network)."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliInputError("--tls-cert and --tls-key go together")
    host = args.api[0]
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if args.tls_cert is None:
        if not loopback:
            raise CliInputError(f"--api {host}: serving beyond loopback needs --tls-cert and --tls-key")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise CliInputError(f"cannot load the TLS certificate and key: {exc}") from None
    return context


def cmd_gateway(args: argparse.Namespace, console: Console) -> int:
    # the options are refused before anything is opened or the process is hardened
    if args.api is None and (args.tls_cert or args.tls_key or args.allow_origin):
        raise CliInputError("--tls-cert, --tls-key and --allow-origin are options of --api")
    tls = _tls(args) if args.api is not None else None
    root = logging.getLogger()
    if args.log_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
    with SqliteStore(args.data_dir) as store:  # every known model, so that no MODEL/SERIAL reaches a log
        models = [m.model_id for m in stored_registry(store, store.policy_in_force().thresholds).models()]
    redact = PseudonymFilter(models)
    for each in root.handlers:
        each.addFilter(redact)
    if not args.no_harden:
        harden_process()
    return asyncio.run(_serve(args, tls))


def open_source(spec: str, seed: int = 1) -> Source:
    """The source of ``--source SPEC`` (``cortex_sal.sources.open_spec``); ``--seed`` seeds a
    synthetic spec that names no seed of its own."""
    kind = spec.partition(":")[0].strip().lower()
    if kind == "synthetic" and "seed=" not in spec and seed != 1:
        spec = f"{spec}{'' if spec.endswith(':') else ',' if ':' in spec else ':'}seed={seed}"
    return open_spec(spec)


def cmd_sensor(args: argparse.Namespace, console: Console) -> int:
    if args.frames is not None and args.frames < 1:
        raise CliInputError("--frames must be at least 1")
    if not (args.speed > 0 and args.speed < 1e6):
        raise CliInputError("--speed must be a factor > 0")
    if args.seed < 0:
        raise CliInputError("--seed must be a non-negative integer")
    if args.highpass is not None:
        Framer(1, OUTPUT_RATE_HZ, highpass_hz=args.highpass)  # refused before anything is opened
    static_key, certificate = load_identity(args.identity)
    try:
        trust = load_trust(*args.trust)
        counter = FrameCounter()
        with open_source(args.source, args.seed) as source:
            log.info("source %s: %s", source.name, source.description)
            started = time.monotonic()
            report = asyncio.run(
                run_sensor(
                    *args.gateway, static_key=static_key, certificate=certificate, trust=trust,
                    frames=frames(source, counter=counter, max_frames=args.frames, highpass_hz=args.highpass),
                    total=args.frames,
                    rate_hz=OUTPUT_RATE_HZ * args.speed, as_fast_as_possible=args.as_fast_as_possible,
                    expect_gateway=args.expect_gateway, source_in_thread=source.live,
                )
            )  # fmt: skip
    finally:
        static_key.purge()
    _say(f"{report.summary()} in {time.monotonic() - started:.1f} s; {counter.summary()}")
    return 0


def _guarded(func: Callable[[argparse.Namespace, Console], int]) -> Callable[[argparse.Namespace, Console], int]:
    return guarded(func, CliInputError)


def add_gateway_parsers(sub: Any) -> None:
    p = sub.add_parser("gateway", help="serve sensors over TCP (KEROS v2) through the shield")
    p.add_argument("--data-dir", type=Path, help="the store's directory (default ~/.local/share/cortex-sal)")
    p.add_argument("--identity", required=True, help="the gateway's identity directory (cortex-sal ca issue-gateway)")
    p.add_argument("--trust", required=True, action="append", help="a CA directory or root.json (repeatable)")
    p.add_argument("--listen", type=address_arg, default=("127.0.0.1", 0), help="HOST:PORT (default 127.0.0.1:0)")
    p.add_argument("--metrics", type=address_arg, help="serve Prometheus metrics on HOST:PORT")
    p.add_argument("--api", type=address_arg, help="serve the applications' API (WebSocket JSON-RPC) on HOST:PORT")
    p.add_argument("--tls-cert", help="the API's TLS certificate chain (PEM); required beyond loopback")
    p.add_argument("--tls-key", help="the API's TLS private key (PEM)")
    p.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                   help="a browser origin allowed to call the API, e.g. https://app.example (repeatable)")  # fmt: skip
    p.add_argument("--token-ttl", type=float, default=ApiLimits().token_ttl_s, help="API token lifetime, seconds")
    p.add_argument(
        "--lsl-outlet",
        action="store_true",
        help="publish released features on LSL (machine scope) for wearers who granted app 'lsl'",
    )
    defaults = GatewayLimits()
    p.add_argument("--max-connections", type=int, default=defaults.max_connections)
    p.add_argument("--handshake-timeout", type=float, default=defaults.handshake_timeout_s, help="seconds")
    p.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout_s, help="seconds")
    p.add_argument("--no-harden", action="store_true", help="stay dumpable (debugging); default: harden_process()")
    p.add_argument("--log-json", action="store_true", help="log JSON lines on standard error")
    p.set_defaults(func=_guarded(cmd_gateway))

    p = sub.add_parser("sensor", help="stream a source to a gateway over TCP (KEROS v2)")
    p.add_argument("--gateway", type=address_arg, required=True, help="HOST:PORT")
    p.add_argument("--identity", required=True, help="the sensor's identity directory (cortex-sal ca issue-sensor)")
    p.add_argument("--trust", required=True, action="append", help="a CA directory or root.json (repeatable)")
    p.add_argument("--source", default="synthetic", metavar="SPEC",
                   help="synthetic, edf, edf:PATH, bdf:PATH, brainflow:BOARD, lsl:type=EEG, xdf:PATH#STREAM ... "
                   "(cortex-sal sources list; docs/sources.md)")  # fmt: skip
    p.add_argument("--frames", type=int, help="stop after N frames (default: run until interrupted)")
    p.add_argument("--seed", type=int, default=1, help="the synthetic source's seed")
    p.add_argument("--highpass", type=float, metavar="HZ",
                   help="high-pass the 128 Hz frames (e.g. 0.5: a live amplifier's DC offset and drift)")  # fmt: skip
    p.add_argument("--as-fast-as-possible", action="store_true", help="do not pace frames at the source's rate")
    p.add_argument("--speed", type=float, default=1.0, help="play the source this many times faster than real time")
    p.add_argument("--expect-gateway", help="refuse any gateway whose certified name is not this")
    p.set_defaults(func=_guarded(cmd_sensor))
