"""Issue #15's acceptance, end to end: BrainFlow's synthetic board (16 EEG channels at 250 Hz) streamed
for real by ``cortex-sal sensor`` to a ``cortex-sal gateway`` process, and an application of the API
receiving (R, 5) feature tensors whose rows are named by the board's channel labels.

BrainFlow's synthetic rows are not EEG-like: channel k carries about 10k µV of offset and of
amplitude, so under the design's bridge bounds only the first row (Fz, about 10 µV) can pass, and
only once its offset is removed (``--highpass 0.5``). What must hold: the subscription names all 16
labels, every message names its released rows and, with a reason, every refused one, and nothing
else (docs/sources.md "BrainFlow's synthetic board through the shield")."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortex_sal.cli import main
from cortex_sal.client import Client, Features
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.store.base import subject_of
from cortex_sal.store.runtime import durable_ledger
from cortex_sal.store.sqlite import SqliteStore
from service_world import cli_argv

BOARD_MODEL = "brainflow_synthetic_v1"
LABELS = ("Fz", "C3", "Cz", "C4", "Pz", "PO7", "Oz", "PO8", "F5", "F7", "F3", "F1", "F2", "F4", "F6", "F8")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("pki")

    def ca(*args: str) -> None:
        assert main(["ca", *args]) == 0, args

    ca("init", "--kind", "manufacturer", "--name", "BrainFlow Lab", "--out", str(d / "ca/maker"))
    ca("init", "--kind", "site", "--name", "Lab 1", "--out", str(d / "ca/site"))
    ca("issue-sensor", "--ca", str(d / "ca/maker"), "--model", BOARD_MODEL, "--serial", "BF-1", "--days", "30",
       "--out", str(d / "sensor"))  # fmt: skip
    ca("issue-gateway", "--ca", str(d / "ca/site"), "--name", "gw-lab", "--days", "30", "--out", str(d / "gw"))
    yield d


def test_sixteen_brainflow_channels_through_a_gateway_to_an_app(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    assert main(["apps", "add", "lab-app", "--data-dir", str(data), "--out", str(tmp_path)]) == 0
    with SqliteStore(data) as store:
        durable_ledger(store, DEFAULT_THRESHOLDS).grant(subject_of(f"{BOARD_MODEL}/BF-1"), ["biometric"], 3600,
                                                        app="lab-app", purpose="multi-channel test")  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    gateway = subprocess.Popen(
        cli_argv("gateway", "--data-dir", str(data), "--identity", str(pki / "gw"), "--trust", str(pki / "ca/maker"),
             "--trust", str(pki / "ca/site"), "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert gateway.stdout is not None
        port = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", gateway.stdout.readline())
        api = re.fullmatch(r"api on (ws://127\.0\.0\.1:\d+)\n", gateway.stdout.readline())
        assert port is not None and api is not None

        async def app_side() -> tuple[list[Features], dict[str, object], subprocess.CompletedProcess[str]]:
            async with Client(api.group(1), tmp_path / "lab-app.key") as app:
                (entry,) = await app.list_sensors()
                assert not entry.connected and entry.channels is None  # visible by consent, not connected yet
                sensor = asyncio.create_task(asyncio.to_thread(
                    subprocess.run,
                    cli_argv("sensor", "--gateway", f"127.0.0.1:{port.group(1)}", "--identity", str(pki / "sensor"),
                         "--trust", str(pki / "ca/maker"), "--trust", str(pki / "ca/site"),
                         "--source", "brainflow:synthetic", "--highpass", "0.5", "--frames", "4"),
                    capture_output=True, text=True, timeout=90, env=env, check=False,
                ))  # fmt: skip
                for _ in range(200):  # the sensor's handshake comes before its board's first frame
                    (entry,) = await app.list_sensors()
                    if entry.connected:
                        break
                    await asyncio.sleep(0.05)
                assert entry.connected and entry.model == BOARD_MODEL and entry.channels == LABELS
                into: asyncio.Queue[object] = asyncio.Queue()
                (sub,) = await app.open_subscription(entry.sensor, ["features"], into)
                got: list[Features] = []
                while len(got) < 2:
                    msg = await asyncio.wait_for(into.get(), 15.0)
                    assert isinstance(msg, Features), msg
                    got.append(msg)
                return got, sub.description, await sensor

        got, described, sensor = asyncio.run(app_side())
        assert sensor.returncode == 0, sensor.stdout + sensor.stderr
        assert re.match(r"4 frames sent to gateway 'gw-lab'", sensor.stdout), sensor.stdout
        assert described["channels"] == list(LABELS) and described["tensor"]["rows"] == list(LABELS)  # type: ignore[index]
        for msg in got:
            assert len(msg.tensor) == len(msg.channels) >= 1 and all(len(row) == 5 for row in msg.tensor)
            assert set(msg.channels) | set(msg.refused) == set(LABELS) and not set(msg.channels) & set(msg.refused)
            assert all(
                why in ("bridge_bounds", "out_of_range", "flat_line", "saturated") for why in msg.refused.values()
            )
            assert all(0.0 <= x <= 1.0 for row in msg.tensor for x in row)
        assert {c for msg in got for c in msg.channels} == {"Fz"}  # the one row within the design's bridge
    finally:
        gateway.send_signal(signal.SIGTERM)
        out, err = gateway.communicate(timeout=30)
    assert gateway.returncode == 0, err
    assert "stopped: 1/1 sessions closed, 1/1 channels purged" in out, out
