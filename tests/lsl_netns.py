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


if __name__ == "__main__":
    enter_namespace()
    name = sys.argv[1]
    if name == "stream":
        print(json.dumps(scenario_stream()))
    elif name == "sockets":
        print(json.dumps(scenario_sockets(True)))
    elif name == "missing":
        print(json.dumps(scenario_missing()))
    elif name == "sockets-default":
        print(json.dumps(scenario_sockets(False)))
    else:
        sys.exit(f"unknown scenario {name!r}")
