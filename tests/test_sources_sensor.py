"""The sensor client with framed sources: ``(C, 256)`` frames from ``cortex_sal.sources.frames``
through a real gateway on loopback (C = 1 today: the shield takes one channel until the
multi-channel shield lands), and the shapes ``run_sensor`` refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cortex_sal.cli import main
from cortex_sal.errors import InvalidArgumentError
from cortex_sal.gateway.sensor import run_sensor
from cortex_sal.sal.results import Released
from cortex_sal.sources import frames, open_spec, synthetic_eeg
from cortex_sal.store.keros import load_identity
from service_world import MODEL, grant, start_gateway, trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("pki")

    def ca(*args: str) -> None:
        assert main(["ca", *args]) == 0, args

    ca("init", "--kind", "manufacturer", "--name", "NeuroStandard GmbH", "--out", str(d / "ca/maker"))
    ca("init", "--kind", "site", "--name", "Ward 3", "--out", str(d / "ca/site"))
    ca("issue-sensor", "--ca", str(d / "ca/maker"), "--model", MODEL, "--serial", "SN-0001", "--days", "30",
       "--out", str(d / "sensors/sn-0001"))  # fmt: skip
    ca("issue-gateway", "--ca", str(d / "ca/site"), "--name", "gw-ward3", "--days", "30", "--out", str(d / "gw"))
    yield d


def _stream(pki: Path, data: Path, source: Iterator[np.ndarray], total: int | None) -> tuple[object, list[object]]:
    async def scenario() -> tuple[object, list[object]]:
        gw = await start_gateway(pki, data)
        sub = gw.subscribe()
        key, cert = load_identity(pki / "sensors/sn-0001")
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


def test_today_the_one_channel_gateway_ends_a_multichannel_stream_and_the_sensor_says_so(
    pki: Path, tmp_path: Path
) -> None:
    """Pins the state before the multi-channel shield (issue #15): an 8-channel frame is 8192 bytes
    and today's gateway ends the connection on it. When the shield takes (C, 256) frames, this test
    turns into the 8-channel end-to-end one: every frame released."""
    grant(tmp_path / "D", "SN-0001")
    framed = frames(open_spec("synthetic:channels=8,rate=250,seed=3"), max_frames=3)
    report, results = _stream(pki, tmp_path / "D", framed, 3)
    assert results == []  # nothing reached the shield
    assert "record" in report.reasons  # type: ignore[attr-defined]
    assert "(connections ended: record)" in report.summary()  # type: ignore[attr-defined]
