"""BrainFlow boards for real: the synthetic board (16 EEG channels at 250 Hz) read through the
source and framed; a playback-file board replaying a capture this test recorded with BrainFlow
itself (``DataFilter.write_file``), also with rows cut out (a gap, from the package numbers); and
``cortex-sal sensor --source brainflow:synthetic#Fz`` streaming through a real gateway on loopback
(the second frame read in a worker thread, as the sensor reads every live source).

BrainFlow's synthetic board runs in real time: each test collects a few seconds, no more. The
streaming board is never used (it multicasts): the spec parser refuses it (tests/test_sources.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams
from brainflow.data_filter import DataFilter

from cortex_sal.sources import FrameCounter, frames, open_spec
from service_world import cli_argv, grant, make_pki

SYNTHETIC = BoardIds.SYNTHETIC_BOARD.value


def test_the_synthetic_board_16_eeg_channels_at_250_hz_framed_at_128_hz() -> None:
    counter = FrameCounter()
    with open_spec("brainflow:synthetic") as src:
        assert src.rate_hz == 250.0 == BoardShim.get_sampling_rate(SYNTHETIC)
        assert src.labels == tuple(BoardShim.get_eeg_names(SYNTHETIC)) and len(src.labels) == 16
        assert src.labels[:3] == ("Fz", "C3", "Cz")
        got = list(frames(src, counter=counter, max_frames=1))  # ~2.6 s of the board's real time
    assert src.closed
    (frame,) = got
    assert frame.shape == (16, 256) and frame.dtype == np.dtype("<f4") and frame.flags.c_contiguous
    assert np.isfinite(frame).all() and (frame.std(axis=1) > 0).all()
    assert counter.gaps == 0 and counter.frames == 1 and counter.samples_in >= 256 * 250 // 128


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2.5 s of the synthetic board, captured with BrainFlow alone and written by DataFilter."""
    BoardShim.disable_board_logger()
    board = BoardShim(SYNTHETIC, BrainFlowInputParams())
    board.prepare_session()
    try:
        board.start_stream(45000)
        time.sleep(2.5)
        data = board.get_board_data()
        board.stop_stream()
    finally:
        board.release_session()
    path = tmp_path_factory.mktemp("brainflow") / "capture.csv"
    DataFilter.write_file(data, str(path), "w")
    return path


def test_a_playback_board_replays_the_recorded_file(recording: Path) -> None:
    expected = DataFilter.read_file(str(recording))[BoardShim.get_eeg_channels(SYNTHETIC)]
    with open_spec(f"brainflow:playback?file={recording}&master_board=synthetic") as src:
        assert src.name == "brainflow:playback_file_board" and src.rate_hz == 250.0 and len(src.labels) == 16
        blocks = list(src.blocks())  # until the file's end
    assert not any(b.gap_before for b in blocks)
    played = np.concatenate([b.samples for b in blocks], axis=1)
    assert played.shape[1] == expected.shape[1] > 500
    np.testing.assert_array_equal(played, expected)


def test_a_playback_with_rows_cut_out_is_a_counted_gap(recording: Path, tmp_path: Path) -> None:
    data = DataFilter.read_file(str(recording))
    cut = np.delete(data, np.s_[300:340], axis=1)  # 40 samples lost: the package counter jumps by 41
    path = tmp_path / "cut.csv"
    DataFilter.write_file(np.ascontiguousarray(cut), str(path), "w")
    counter = FrameCounter()
    with open_spec(f"brainflow:playback?file={path}&master_board=-1#Fz,Cz") as src:
        assert src.labels == ("Fz", "Cz")
        blocks = list(src.blocks())
        for _ in frames(blocks, n_channels=2, rate_hz=src.rate_hz, counter=counter):
            pass
    assert [b.gap_before for b in blocks].count(True) == 1
    assert sum(b.n_samples for b in blocks if not b.gap_before) >= 300
    assert counter.gaps == 1 and counter.frames_dropped == 1


# --- end to end: cortex-sal sensor --source brainflow:synthetic#Fz through a gateway ---------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_pki(tmp_path_factory.mktemp("pki"), ("SN-0001",))


def test_cortex_sal_sensor_streams_one_brainflow_channel_through_a_gateway(pki: Path, tmp_path: Path) -> None:
    data = tmp_path / "D"
    grant(data, "SN-0001")
    env = {**os.environ, "COLUMNS": "200"}
    gateway = subprocess.Popen(
        cli_argv("gateway", "--data-dir", str(data), "--identity", str(pki / "gw"), "--trust", str(pki / "ca/maker"),
             "--trust", str(pki / "ca/site"), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert gateway.stdout is not None
        port = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", gateway.stdout.readline())
        assert port is not None
        murl = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", gateway.stdout.readline())
        assert murl is not None
        sensor = subprocess.run(
            cli_argv("sensor", "--gateway", f"127.0.0.1:{port.group(1)}", "--identity", str(pki / "sensors/sn-0001"),
                 "--trust", str(pki / "ca/maker"), "--trust", str(pki / "ca/site"),
                 "--source", "brainflow:synthetic#Fz", "--frames", "2", "--as-fast-as-possible"),
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert sensor.returncode == 0, sensor.stdout + sensor.stderr
        assert re.fullmatch(
            r"2 frames sent to gateway 'gw-ward3' over 1 connection\(s\) in [0-9.]+ s; "
            r"0 gap\(s\), 0 frame\(s\) dropped at gaps\n",
            sensor.stdout,
        ), sensor.stdout
        assert sensor.stderr == ""  # BrainFlow's logger is off
        deadline = time.monotonic() + 5
        while True:
            text = urllib.request.urlopen(murl.group(1), timeout=5).read().decode()
            handled = sum(
                float(v) for v in re.findall(r'^cortex_sal_frames_total\{outcome="[a-z_]+"\} ([0-9.e+]+)$', text, re.M)
            )
            if handled >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert handled == 2, text  # the shield took the 1-channel frames (a wrong size ends the connection uncounted)
    finally:
        gateway.send_signal(signal.SIGTERM)
        out, err = gateway.communicate(timeout=30)
    assert gateway.returncode == 0, err
    assert "stopped: 1/1 sessions closed, 1/1 channels purged" in out, out
