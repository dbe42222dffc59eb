"""The sensor client with framed sources: ``(C, 256)`` frames from ``cortex_sal.sources.frames``
through a real gateway on loopback (C = 1, and C = 8 from a sensor certified as an 8-channel
model), and the shapes ``run_sensor`` refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cortex_sal.errors import InvalidArgumentError
from cortex_sal.gateway.sensor import run_sensor
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.keros.registry import SensorRegistry
from cortex_sal.sal.results import Released
from cortex_sal.sources import frames, open_spec, synthetic_eeg
from cortex_sal.store.base import subject_of
from cortex_sal.store.keros import load_identity
from cortex_sal.store.runtime import durable_ledger
from cortex_sal.store.sqlite import SqliteStore
from service_world import grant, make_pki, start_gateway, trust

CYTON = "openbci_cyton_v1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_pki(tmp_path_factory.mktemp("pki"), ("SN-0001",), others=((CYTON, "CY-1"),))


def _stream(
    pki: Path, data: Path, source: Iterator[np.ndarray], total: int | None, sensor: str = "sensors/sn-0001"
) -> tuple[object, list[object]]:
    async def scenario() -> tuple[object, list[object]]:
        gw = await start_gateway(pki, data)
        sub = gw.subscribe()
        key, cert = load_identity(pki / sensor)
        try:
            assert gw.address is not None
            report = await run_sensor(*gw.address, static_key=key, certificate=cert, trust=trust(pki),
                                      frames=source, total=total, as_fast_as_possible=True)  # fmt: skip
            await asyncio.sleep(0.2)
            got = []
            while (item := sub.get_nowait()) is not None:
                got.append(item.result)
            return report, got
        finally:
            key.purge()
            await gw.shutdown()
            gw._test_key.purge()  # type: ignore[attr-defined]

    return asyncio.run(scenario())


def test_framed_one_channel_frames_reach_the_shield_as_the_1024_byte_frames_of_before(
    pki: Path, tmp_path: Path
) -> None:
    grant(tmp_path / "D", "SN-0001")
    framed = list(frames(open_spec("synthetic:seed=3"), max_frames=6))
    assert all(f.shape == (1, 256) for f in framed)
    assert [f.tobytes() for f in framed] == [np.asarray(x, "<f4").tobytes() for x in synthetic_eeg(6, seed=3).frames]
    report, results = _stream(pki, tmp_path / "D", iter(framed), None)
    assert report.frames_sent == 6  # type: ignore[attr-defined]
    assert len(results) == 6 and all(isinstance(r, Released) for r in results)


def test_a_frame_whose_shape_differs_from_the_first_is_refused(pki: Path, tmp_path: Path) -> None:
    grant(tmp_path / "D", "SN-0001")
    first = np.zeros((1, 256), np.float32)
    with pytest.raises(InvalidArgumentError, match=r"the first frame's shape \(1, 256\), got \(2, 256\)"):
        _stream(pki, tmp_path / "D", iter([first, np.zeros((2, 256), np.float32)]), 2)


@pytest.mark.parametrize("shape", [(255,), (1, 255), (0, 256), (1025, 256), (2, 2, 256), ()])
def test_frames_that_are_not_256_samples_per_channel_are_refused_before_connecting(shape: tuple[int, ...]) -> None:
    from cortex_sal.crypto import X25519PrivateKey
    from cortex_sal.keros.certificate import TrustStore

    async def scenario() -> None:
        with X25519PrivateKey.generate() as key:
            await run_sensor("127.0.0.1", 9, static_key=key, certificate=b"", trust=TrustStore([]),
                             frames=iter([np.zeros(shape, np.float32)]), max_attempts=1)  # fmt: skip

    with pytest.raises(InvalidArgumentError, match=r"a frame is \(256,\) or \(C, 256\) samples"):
        asyncio.run(scenario())


def test_a_sensor_certified_one_channel_that_streams_eight_is_ended(pki: Path, tmp_path: Path) -> None:
    """A frame's size is its model's: 8 channels from a sensor whose certificate names a 1-channel
    model are refused at the record (the gateway's record bound after admission) and nothing is released."""
    grant(tmp_path / "D", "SN-0001")
    framed = frames(open_spec("synthetic:channels=8,rate=250,seed=3"), max_frames=3)
    report, results = _stream(pki, tmp_path / "D", framed, 3)
    assert results == []  # nothing reached the shield
    assert "record" in report.reasons  # type: ignore[attr-defined]
    assert "(connections ended: record)" in report.summary()  # type: ignore[attr-defined]


def test_eight_channels_at_250_hz_from_a_cyton_certified_sensor_are_released_row_by_row(
    pki: Path, tmp_path: Path
) -> None:
    with SqliteStore(tmp_path / "D") as store:
        durable_ledger(store, DEFAULT_THRESHOLDS).grant(subject_of(f"{CYTON}/CY-1"), ["biometric"], 3600,
                                                        app="test-app", purpose="tests")  # fmt: skip
    framed = frames(open_spec("synthetic:channels=8,rate=250,seed=3"), max_frames=6)
    report, results = _stream(pki, tmp_path / "D", framed, 6, sensor="sensors/cy-1")
    assert report.frames_sent == 6 and len(results) == 6  # type: ignore[attr-defined]
    labels = SensorRegistry.default().admit(f"{CYTON}/CY-1").labels
    for r in results:
        assert isinstance(r, Released) and r.tensor.shape == (8, 5) and r.channels == labels
        assert not r.refused_channels
