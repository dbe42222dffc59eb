"""The gateway over real TCP on loopback: a sensor streams through the shield, released results reach
a subscriber, revocation ends an open connection, shutdown purges every key; and the commands from a
shell (``cortex-sal gateway`` / ``cortex-sal sensor``, metrics, SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortex_sal.errors import GatewayError
from cortex_sal.gateway.sensor import run_sensor
from cortex_sal.gateway.server import Gateway
from cortex_sal.sal.results import Released
from cortex_sal.sources import synthetic_eeg
from cortex_sal.store.base import subject_of
from cortex_sal.store.keros import load_identity
from cortex_sal.store.sqlite import SqliteStore
from service_world import MODEL, cli_argv, grant, make_pki, start_gateway, trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two CAs, a gateway and three sensors, made by ``cortex-sal ca`` as in docs/certificates.md."""
    yield make_pki(tmp_path_factory.mktemp("pki"))


async def _sensor(pki: Path, gw: Gateway, serial: str, frames: int, **kw: object) -> object:
    key, cert = load_identity(pki / f"sensors/{serial.lower()}")
    try:
        assert gw.address is not None
        return await run_sensor(
            *gw.address, static_key=key, certificate=cert, trust=trust(pki),
            frames=synthetic_eeg(frames, seed=3).frames, total=frames, as_fast_as_possible=True, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
    finally:
        key.purge()


def test_sensors_stream_through_the_shield_to_a_subscriber(pki: Path, tmp_path: Path) -> None:
    grant(tmp_path / "D", "SN-0001", "SN-0002")

    async def scenario() -> None:
        gw = await start_gateway(pki, tmp_path / "D")
        sub = gw.subscribe()
        try:
            reports = await asyncio.gather(
                _sensor(pki, gw, "SN-0001", 20, expect_gateway="gw-ward3"), _sensor(pki, gw, "SN-0002", 12)
            )
            assert [r.frames_sent for r in reports] == [20, 12]  # type: ignore[attr-defined]
            got = []
            while (item := sub.get_nowait()) is not None:
                got.append(item)
            by_sensor: dict[str, list[int]] = {}
            for item in got:
                assert isinstance(item.result, Released)
                by_sensor.setdefault(item.sensor, []).append(item.seq)
            assert set(by_sensor) == {subject_of(f"{MODEL}/SN-0001"), subject_of(f"{MODEL}/SN-0002")}
            assert sorted(len(v) for v in by_sensor.values()) == [12, 20]  # 0 frames lost
            assert all(v == sorted(v) for v in by_sensor.values())  # in order
            m = gw.metrics
            assert m.value("cortex_sal_frames_total", outcome="released") == 32
            assert m.value("cortex_sal_handshakes_total", outcome="admitted") == 2
            assert m.value("cortex_sal_connections_closed_total", reason="normal") == 2
        finally:
            await gw.shutdown()
            gw._test_key.purge()  # type: ignore[attr-defined]
        custody = gw.custody()
        assert custody["channels_attached"] == custody["channels_closed"] == 2
        assert custody["sessions_opened"] == custody["sessions_closed"] == 2

    asyncio.run(scenario())
    with SqliteStore(tmp_path / "D") as store:  # admissions audited, pseudonymously
        events = [e.event for e in store.audit_entries()]
        assert events.count("sensor_admitted") == 2 and store.verify_audit().ok


def test_a_refused_sensor_is_told_why_and_does_not_retry(pki: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        gw = await start_gateway(pki, tmp_path / "D")
        try:
            with pytest.raises(GatewayError, match="certificate"):
                await _sensor(pki, gw, "SN-0001", 3, expect_gateway="another-gateway")
            for _ in range(40):  # the gateway reads the sensor's CLOSE on its own schedule
                if gw.metrics.value("cortex_sal_handshakes_total", outcome="eof_in_handshake") == 1:
                    break
                await asyncio.sleep(0.025)
            assert gw.metrics.value("cortex_sal_handshakes_total", outcome="eof_in_handshake") == 1
            assert gw.metrics.value("cortex_sal_handshakes_total", outcome="admitted") == 0
        finally:
            await gw.shutdown()
            gw._test_key.purge()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_a_revocation_in_the_store_ends_an_open_connection_within_a_second(pki: Path, tmp_path: Path) -> None:
    grant(tmp_path / "D", "SN-0003")

    async def scenario() -> None:
        gw = await start_gateway(pki, tmp_path / "D")
        try:
            task = asyncio.create_task(_sensor(pki, gw, "SN-0003", 10_000, max_attempts=2))
            for _ in range(100):
                await asyncio.sleep(0.05)
                if gw.metrics.value("cortex_sal_frames_total", outcome="released") >= 3:
                    break
            with SqliteStore(tmp_path / "D") as cli_store:  # another connection, as `cortex-sal` would be
                cli_store.revoke_sensor(f"{MODEL}/SN-0003", "stolen")
            revoked_at = time.monotonic()
            with pytest.raises(GatewayError, match="revoked"):
                await asyncio.wait_for(task, 5.0)
            assert time.monotonic() - revoked_at < 1.0
            assert gw.metrics.value("cortex_sal_connections_closed_total", reason="revoked") == 1
            assert gw.connections == 0
        finally:
            await gw.shutdown()
            gw._test_key.purge()  # type: ignore[attr-defined]

    asyncio.run(scenario())


# --- from a shell ----------------------------------------------------------------------------------


def test_gateway_and_sensor_from_a_shell(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    grant(data, "SN-0001")
    env = {**os.environ, "COLUMNS": "200"}
    gateway = subprocess.Popen(
        cli_argv("gateway", "--data-dir", str(data), "--identity", str(pki / "gw"), "--trust", str(pki / "ca/maker"),
             "--trust", str(pki / "ca/site"), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
             "--log-json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert gateway.stdout is not None
        first = gateway.stdout.readline()
        port = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", first)
        assert port is not None, first + (gateway.stderr.read() if gateway.poll() is not None else "")  # type: ignore[union-attr]
        metrics_line = gateway.stdout.readline()
        murl = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", metrics_line)
        assert murl is not None, metrics_line
        sensor = subprocess.run(
            cli_argv("sensor", "--gateway", f"127.0.0.1:{port.group(1)}", "--identity", str(pki / "sensors/sn-0001"),
                 "--trust", str(pki / "ca/maker"), "--trust", str(pki / "ca/site"), "--source", "synthetic",
                 "--frames", "20", "--as-fast-as-possible"),
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert sensor.returncode == 0, sensor.stdout + sensor.stderr
        assert "20 frames sent to gateway 'gw-ward3'" in sensor.stdout
        deadline = time.monotonic() + 5
        while True:
            text = urllib.request.urlopen(murl.group(1), timeout=5).read().decode()
            handled = sum(
                float(v) for v in re.findall(r'^cortex_sal_frames_total\{outcome="[a-z_]+"\} ([0-9.e+]+)$', text, re.M)
            )
            if handled >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert handled == 20, text
        gateway.send_signal(signal.SIGTERM)
        out, err = gateway.communicate(timeout=30)
        assert gateway.returncode == 0, err
        assert "stopped: 1/1 sessions closed, 1/1 channels purged" in out, out
        assert "SN-0001" not in out + err  # the logs name the sensor by its pseudonym only
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()


def test_the_demo_is_a_gateway_on_loopback_with_sensor_processes(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from cortex_sal.cli.demo import run_network_demo

    out = io.StringIO()
    assert run_network_demo(Console(file=out, width=160), frames=5, speed=64.0, use_edf=False,
                            data_dir=tmp_path / "D") == 0  # fmt: skip
    text = out.getvalue()
    assert re.search(r"listening on 127\.0\.0\.1:\d+", text) and "keys purged 1/1" in text
    assert "sensor exit 0: 5 frames sent to gateway 'demo-gateway'" in text and "audit chain verified" in text
    received = re.search(r"the application received (\d+) features messages", text)  # the app's side, over the API
    assert received is not None and int(received.group(1)) >= 1, text


def test_a_session_at_its_lifetime_ends_and_the_sensor_handshakes_again(pki: Path, tmp_path: Path) -> None:
    grant(tmp_path / "D", "SN-0002")

    async def scenario() -> None:
        gw = await start_gateway(pki, tmp_path / "D", session_lifetime_s=0.4)
        sub = gw.subscribe()
        try:
            key, cert = load_identity(pki / "sensors/sn-0002")
            try:
                assert gw.address is not None
                report = await run_sensor(
                    *gw.address, static_key=key, certificate=cert, trust=trust(pki),
                    frames=synthetic_eeg(12, seed=5).frames, total=12, rate_hz=128.0 * 20, backoff_s=0.01,
                )  # fmt: skip  # 20 frames/s: about 0.6 s, so at least one lifetime passes
            finally:
                key.purge()
            assert report.frames_sent == 12 and report.connections >= 2, report
            assert "shutdown" in report.reasons  # the gateway's CLOSE at the lifetime; then a new handshake
            assert gw.metrics.value("cortex_sal_connections_closed_total", reason="lifetime") >= 1
            assert gw.metrics.value("cortex_sal_handshakes_total", outcome="admitted") == report.connections
            released = 0
            while sub.get_nowait() is not None:
                released += 1
            # a frame written as the gateway closed at the lifetime is lost (at most one per switch)
            assert 12 - (report.connections - 1) <= released <= 12
        finally:
            await gw.shutdown()
            gw._test_key.purge()  # type: ignore[attr-defined]
        custody = gw.custody()
        assert custody["channels_closed"] == custody["channels_attached"] == report.connections

    asyncio.run(scenario())


def test_logs_name_sensors_by_pseudonym_only() -> None:
    import logging

    from cortex_sal.gateway.logs import PseudonymFilter

    f = PseudonymFilter([MODEL, "cyton_v3"])
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "registry refuses sensor %r: %s is revoked",
                               (f"{MODEL}/SN-0003", "cyton_v3/AB:12"), None)  # fmt: skip
    assert f.filter(record)
    text = record.getMessage()
    assert "SN-0003" not in text and "AB" not in text
    assert f"subject:{subject_of(f'{MODEL}/SN-0003')}" in text and f"subject:{subject_of('cyton_v3/AB')}" in text


def test_a_storm_of_sensors_gets_in_without_evicting_each_other(pki: Path, tmp_path: Path) -> None:
    """More sensors at once than handshake slots: the young handshakes are not evicted (that is for
    stalled ones), the newcomers are refused at accept and get in on their backoff."""
    grant(tmp_path / "D", "SN-0001", "SN-0002", "SN-0003")

    async def scenario() -> None:
        gw = await start_gateway(pki, tmp_path / "D", max_handshakes=1)
        try:
            reports = await asyncio.gather(
                *(_sensor(pki, gw, serial, 3, backoff_s=0.02) for serial in ("SN-0001", "SN-0002", "SN-0003"))
            )
            assert [r.frames_sent for r in reports] == [3, 3, 3]  # type: ignore[attr-defined]
            assert gw.metrics.value("cortex_sal_handshakes_total", outcome="admitted") == 3
            assert gw.metrics.value("cortex_sal_connections_closed_total", reason="evicted") == 0
            assert gw.metrics.value("cortex_sal_connections_refused_total", reason="limit") >= 1  # they overlapped
        finally:
            await gw.shutdown()
            gw._test_key.purge()  # type: ignore[attr-defined]

    asyncio.run(scenario())
