"""Run an LSL scenario in a network namespace of its own: ``python tests/lsl_netns.py SCENARIO``.

An LSL outlet's TCP data server and UDP time server bind the wildcard address whatever liblsl's
configuration says (liblsl ``src/socket_utils.cpp``, ``src/tcp_server.cpp``), which the network
rule forbids on this machine. So the outlets of the tests live in a child that first enters a new
user and network namespace (``unshare(CLONE_NEWUSER | CLONE_NEWNET)``: its only interface is a
loopback of its own, brought up here), before any thread exists (numpy's are started later).
Exit code 77: this kernel gives no unprivileged namespaces. The result is one JSON line on stdout.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import socket
import struct
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
NO_NAMESPACE = 77


def enter_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        sys.exit(NO_NAMESPACE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def own_sockets() -> dict[str, list[str]]:
    """This process's sockets per /proc/net table (the namespace's): local ``ADDRESS:PORT`` in hex."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out: dict[str, list[str]] = {}
    for table in ("udp", "udp6", "tcp", "tcp6"):
        with open(f"/proc/net/{table}", encoding="ascii") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
        out[table] = sorted(row[1] for row in rows if row[9] in inodes)
    return out


def outlet(pylsl: object, name: str, channels: int, rate: float) -> object:
    info = pylsl.StreamInfo(name, "EEG", channels, rate, "float32", f"{name}-src")  # type: ignore[attr-defined]
    info.set_channel_labels([f"E{i + 1}" for i in range(channels)])
    info.set_channel_units("microvolts")
    return pylsl.StreamOutlet(info, chunk_size=32)  # type: ignore[attr-defined]


def scenario_stream() -> dict[str, object]:
    """8 channels at 256 Hz: 4 s, a real pause of 1 s (its timestamps jump with it), 4 s more."""
    import time

    import numpy as np
    import pylsl  # LSLAPICFG is the environment's (set by the suite's conftest, inherited)

    from cortex_sal.sources import FrameCounter, Framer, open_spec

    rate, n = 256.0, 1024
    out = outlet(pylsl, "cortex-test-eeg", 8, rate)
    src = open_spec("lsl:name=cortex-test-eeg,timeout=5")
    t = np.arange(n) / rate
    x = np.stack([20.0 * np.sin(2 * np.pi * 10.0 * t + c) for c in range(8)], axis=1)  # (n, 8)
    t0 = pylsl.local_clock()
    pushed = []
    for part, offset in ((0, 0.0), (1, 5.0)):
        if part:
            time.sleep(1.0)
        stamps = t0 + offset + t
        for k in range(0, n, 64):
            out.push_chunk(x[k : k + 64].tolist(), timestamp=float(stamps[k + 63]))  # type: ignore[attr-defined]
        pushed.append(stamps)
    blocks, got = [], 0
    it = src.blocks()
    while got < 2 * n:
        block = next(it)
        blocks.append(block)
        got += block.n_samples
    counter = FrameCounter()
    framer = Framer(src.n_channels, src.rate_hz, counter=counter)
    frames = [f for b in blocks for f in framer.push(b)]
    received = np.concatenate([b.timestamps for b in blocks])
    result = {
        "labels": list(src.labels),
        "rate": src.rate_hz,
        "gap_flags": [b.gap_before for b in blocks],
        "stamp_error": float(np.abs(received - np.concatenate(pushed)).max()),
        "frames": [list(f.shape) for f in frames],
        "dtype": str(frames[0].dtype) if frames else None,
        "gaps": counter.gaps,
        "dropped": counter.frames_dropped,
        "frame0": frames[0][0].astype(float).tolist() if frames else [],
        "sockets": own_sockets(),
    }
    del out  # the outlet goes away: the source ends with a SourceError, not pylsl's LostError
    from cortex_sal.errors import SourceError

    try:
        while True:
            next(it)
    except SourceError as exc:
        result["lost"] = str(exc)
    src.close()
    return result


def scenario_sockets(with_config: bool) -> dict[str, object]:
    """An outlet's sockets: on the machine scope (the environment's LSLAPICFG) or on liblsl's defaults."""
    if not with_config:
        os.environ.pop("LSLAPICFG", None)
    import pylsl

    out = outlet(pylsl, "cortex-test-sockets", 1, 128.0)
    found = pylsl.resolve_byprop("name", "cortex-test-sockets", 1, 5.0)
    result = {"sockets": own_sockets(), "resolved": len(found), "lslapicfg": os.environ.get("LSLAPICFG")}
    del out
    return result


def scenario_missing() -> dict[str, object]:
    """Resolving a stream nobody publishes: the source's refusal, after its timeout."""
    import time

    from cortex_sal.errors import SourceError
    from cortex_sal.sources import open_spec

    started = time.monotonic()
    try:
        open_spec("lsl:type=NoSuchType,timeout=0.5")
    except SourceError as exc:
        return {"error": type(exc).__name__, "message": str(exc), "seconds": time.monotonic() - started}
    return {"error": None}


def scenario_gateway_outlet() -> dict[str, object]:
    """A gateway with ``serve_lsl()``, two sensors streaming, one wearer granting app ``lsl``: one
    outlet, read by an inlet; the consent revoked from another connection: the outlet is gone."""
    import asyncio
    import tempfile
    import time
    from pathlib import Path

    import numpy as np
    import pylsl

    from cortex_sal.gateway.sensor import run_sensor
    from cortex_sal.governance import DEFAULT_THRESHOLDS
    from cortex_sal.sources import synthetic_eeg
    from cortex_sal.store.base import subject_of
    from cortex_sal.store.keros import load_identity
    from cortex_sal.store.runtime import durable_ledger
    from cortex_sal.store.sqlite import SqliteStore
    from service_world import MODEL, make_pki, start_gateway, trust

    root = Path(tempfile.mkdtemp(prefix="cortex-sal-lsl-"))
    pki, data = make_pki(root / "pki", ("SN-0001", "SN-0002")), root / "D"
    with SqliteStore(data) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        ledger.grant(subject_of(f"{MODEL}/SN-0001"), ["biometric"], 3600, app="lsl", purpose="lab tools")
        ledger.grant(subject_of(f"{MODEL}/SN-0002"), ["biometric"], 3600, app="other-app", purpose="not LSL")
    raw = {float(x) for f in synthetic_eeg(400, seed=3).frames for x in np.asarray(f, np.float32)}
    result: dict[str, object] = {}

    async def run() -> None:
        gw = await start_gateway(pki, data)
        gw.serve_lsl()
        keys = [load_identity(pki / f"sensors/{s}") for s in ("sn-0001", "sn-0002")]
        assert gw.address is not None
        sensors = [asyncio.create_task(run_sensor(*gw.address, static_key=k, certificate=c, trust=trust(pki),
                                                  frames=synthetic_eeg(400, seed=3).frames, total=400,
                                                  rate_hz=256 / 0.25)) for k, c in keys]  # fmt: skip
        try:
            # 4 frames a second from each sensor, so that the drift rule (60 s window) does not block them
            # before the scenario ends (it would end every consent, the LSL outlet's too)
            found = await asyncio.to_thread(pylsl.resolve_byprop, "type", "Features", 1, 5.0)
            again = await asyncio.to_thread(pylsl.resolve_byprop, "type", "Features", 2, 1.5)  # still one
            result["streams"] = [len(found), len(again)]
            info = found[0]
            inlet = pylsl.StreamInlet(info)
            full = await asyncio.to_thread(inlet.info, 5.0)
            result["name"], result["source_id"] = full.name(), full.source_id()
            result["labels"], result["units"] = full.get_channel_labels(), full.get_channel_units()
            result["pseudonym"] = full.desc().child_value("pseudonym")
            result["expected_pseudonym"] = gw.store.pairwise_id("lsl", subject_of(f"{MODEL}/SN-0001"))
            samples = []
            while len(samples) < 5:
                sample, _ = await asyncio.to_thread(inlet.pull_sample, 5.0)
                if sample is None:
                    break
                samples.append(sample)
            result["samples"] = samples
            result["raw_in_samples"] = sum(1 for s in samples for x in s if float(np.float32(x)) in raw)
            with SqliteStore(data) as other:  # as `cortex-sal consent revoke --app lsl` would
                durable_ledger(other, DEFAULT_THRESHOLDS).revoke(subject_of(f"{MODEL}/SN-0001"), "study over",
                                                                 app="lsl")  # fmt: skip
            revoked = time.monotonic()
            while gw.lsl.outlets and time.monotonic() - revoked < 3.0:
                await asyncio.sleep(0.01)
            result["closed_after_s"] = time.monotonic() - revoked
            result["outlets_after"] = gw.lsl.outlets
            gone = await asyncio.to_thread(pylsl.resolve_byprop, "type", "Features", 0, 1.5)
            result["streams_after"] = len(gone)
            result["pushed"] = gw.lsl.pushed
            del inlet
        finally:
            for t in sensors:
                t.cancel()
            await asyncio.gather(*sensors, return_exceptions=True)
            for k, _ in keys:
                k.purge()
            await gw.shutdown()
            gw._test_key.purge()  # type: ignore[attr-defined]

    asyncio.run(run())
    return result


if __name__ == "__main__":
    enter_namespace()
    name = sys.argv[1]
    if name == "stream":
        print(json.dumps(scenario_stream()))
    elif name == "sockets":
        print(json.dumps(scenario_sockets(True)))
    elif name == "missing":
        print(json.dumps(scenario_missing()))
    elif name == "gateway_outlet":
        print(json.dumps(scenario_gateway_outlet()))
    elif name == "sockets-default":
        print(json.dumps(scenario_sockets(False)))
    else:
        sys.exit(f"unknown scenario {name!r}")
