"""The sources package: the synthetic signal, EDF and BDF files (pyedflib's own), XDF replay, the
resampling to 128 Hz (known answers from pyedflib's generator files and scipy's one-shot
``resample_poly``), framing and gaps, and every bad spec. BrainFlow: tests/test_sources_brainflow.py;
LSL: tests/test_sources_lsl.py."""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyedflib
import pytest
from rich.console import Console
from scipy.signal import resample_poly

from cortex_sal.cli import main
from cortex_sal.errors import (
    CortexError,
    InvalidArgumentError,
    SourceDependencyError,
    SourceError,
    SourceSpecError,
    UnsupportedRateError,
)
from cortex_sal.sources import (
    Block,
    FrameCounter,
    Framer,
    SyntheticSource,
    bundled_edf_path,
    frames,
    open_spec,
    resampling_factors,
    synthetic_eeg,
)
from cortex_sal.sources.base import require

DATA = Path(pyedflib.__file__).parent / "tests" / "data"
GENERATOR_EDF = DATA / "test_generator.edf"  # EDFbrowser's generator: 200 Hz, sines of 100 uV
BDF_2000 = DATA / "test_generator_datarec_generator_0_5.bdf"  # sine 10 Hz at 2000 Hz, 1000 uV
BDF_1000 = DATA / "test_generator.bdf"  # sine 5 Hz at 1000 Hz (other signals at other rates)


def _tone(x: np.ndarray, rate: float) -> tuple[float, float]:
    """The strongest sine of ``x``: frequency (FFT peak, Hann window, parabolic interpolation of the
    log magnitude) and amplitude (least squares at that frequency, with an offset term)."""
    n = x.size
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(n)))
    k = int(np.argmax(spectrum[1:])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    f = (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / n
    t = np.arange(n) / rate
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t), np.ones(n)], axis=1)
    coef = np.linalg.lstsq(basis, x, rcond=None)[0]
    return float(f), float(np.hypot(coef[0], coef[1]))


# --- synthetic ----------------------------------------------------------------------------------

# SHA-256 of the float32 bytes of the frames the single-module ``cortex_sal/sources.py`` produced
# (commit 2303817, before this package), computed from that code: the default signal must not move
SYNTHETIC_SEED1_8 = "0bb5e52799cac61b84b5ded6d89170f96022ecaf03c0f733434635fd2ae2adfc"
SYNTHETIC_SEED3_4 = "2b90fb8c8229535542cb30351796326144e564688de779bacf36963ee9221c3f"
BUNDLED_EDF_3 = "b0a6929a793e686bed5d3ffc019edd3c71ea7176be51cfbf4291932099c21bf7"


def _digest(arrays: object) -> str:
    h = hashlib.sha256()
    for a in arrays:  # type: ignore[attr-defined]
        h.update(np.asarray(a, "<f4").tobytes())
    return h.hexdigest()


def test_the_default_synthetic_signal_and_the_bundled_edf_are_the_frames_of_before() -> None:
    assert _digest(synthetic_eeg(8, seed=1).frames) == SYNTHETIC_SEED1_8
    assert _digest(frames(open_spec("synthetic"), max_frames=8)) == SYNTHETIC_SEED1_8
    assert _digest(frames(open_spec("synthetic:seed=3"), max_frames=4)) == SYNTHETIC_SEED3_4
    with open_spec("edf") as edf:
        assert edf.labels == ("Fp1",) and edf.rate_hz == 128.0
        assert _digest(frames(edf, max_frames=3)) == BUNDLED_EDF_3


def test_synthetic_any_channels_and_rate_frames_c_by_256_float32() -> None:
    src = open_spec("synthetic:channels=8,rate=250,seed=3")
    assert src.labels == tuple(f"S{i}" for i in range(1, 9)) and src.rate_hz == 250.0 and src.units == "uV"
    counter = FrameCounter()
    got = list(frames(src, counter=counter, max_frames=4))
    assert len(got) == 4 and counter.frames == 4 and counter.gaps == 0
    for frame in got:
        assert frame.shape == (8, 256) and frame.dtype == np.dtype("<f4") and frame.flags.c_contiguous
        assert len(frame.tobytes()) == 8 * 1024
    x = np.concatenate(got, axis=1).astype(np.float64)
    f, amp = _tone(x[0], 128.0)  # the 10 Hz, 4 uV alpha survives 250 -> 128 Hz
    assert abs(f - 10.0) < 0.1 and abs(amp - 4.0) < 0.2
    assert not np.array_equal(got[0][0], got[0][1])  # channels differ (phase and noise)


# --- resampling: known answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "rate", "freqs", "amplitude"),
    [
        (f"edf:{GENERATOR_EDF}#sine 8 Hz,sine 15 Hz,sine 17 Hz", 200.0, [8.0, 15.0, 17.0], 100.0),
        (f"bdf:{BDF_2000}#sine 10Hz", 2000.0, [10.0], 1000.0),
        (f"bdf:{BDF_1000}#sine 5Hz", 1000.0, [5.0], 1000.0),
    ],
)
def test_resampling_keeps_a_sines_frequency_within_0_1_hz_and_amplitude_within_2_percent(
    spec: str, rate: float, freqs: list[float], amplitude: float
) -> None:
    with open_spec(spec) as src:
        assert src.rate_hz == rate
        native = np.concatenate([b.samples for b in src.blocks()], axis=1)
    with open_spec(spec) as src:
        out = np.concatenate(list(frames(src)), axis=1).astype(np.float64)
    assert out.shape[0] == len(freqs) and out.shape[1] >= 256
    for ch, want in enumerate(freqs):
        f_native, a_native = _tone(native[ch], rate)
        assert abs(f_native - want) < 0.01 and abs(a_native - amplitude) < 0.01 * amplitude  # the file is what it says
        f, a = _tone(out[ch], 128.0)
        assert abs(f - want) < 0.1, (want, f)
        assert abs(a - a_native) < 0.02 * a_native, (want, a, a_native)


def test_streaming_resampling_is_scipys_one_shot_resample_poly_across_block_boundaries() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 10.0, (3, 250 * 24))
    framer = Framer(3, 250.0)
    out: list[np.ndarray] = []
    start = 0
    for size in np.resize([1, 37, 250, 5, 611], 100):  # odd block sizes, across frame and chunk boundaries
        chunk = x[:, start : start + int(size)]
        out += framer.push(Block(chunk, np.arange(start, start + chunk.shape[1]) / 250.0))
        start += chunk.shape[1]
    got = np.concatenate(out, axis=1)
    reference = resample_poly(x, 64, 125, axis=1)  # the whole signal at once
    offset = framer.margin * 64 // 125  # the warm-up: outputs before a full filter support are not emitted
    assert got.shape[1] == 256 * 11  # 24 s at 128 Hz: 3072 samples, less the warm-up and the look-ahead
    np.testing.assert_allclose(got, reference[:, offset : offset + got.shape[1]].astype(np.float32), atol=1e-4)


def test_content_above_64_hz_is_attenuated_not_folded_back() -> None:
    t = np.arange(250 * 16) / 250.0
    x = (100.0 * np.sin(2 * np.pi * 100.0 * t))[None, :]  # 100 Hz at 250 Hz: would alias to 28 Hz at 128 Hz
    out = np.concatenate(list(frames([Block(x, t)], n_channels=1, rate_hz=250.0)), axis=1)[0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size))) / (out.size / 4)
    freqs = np.fft.rfftfreq(out.size, 1 / 128.0)
    assert spectrum[(freqs > 25) & (freqs < 31)].max() < 1.0  # below 1 uV of the 100 uV: > 40 dB down


@pytest.mark.parametrize(
    ("rate", "factors"),
    [(128.0, (1, 1)), (256, (1, 2)), (250.0, (64, 125)), (200.0, (16, 25)), (1000.0 / 3, (48, 125)), (100, (32, 25))],
)
def test_resampling_factors(rate: float, factors: tuple[int, int]) -> None:
    assert resampling_factors(rate) == factors


@pytest.mark.parametrize("rate", [127.9, 1e9, 0.0, -250.0, float("nan"), float("inf"), 128.0001, True])
def test_rates_without_a_small_rational_ratio_to_128_are_refused(rate: float) -> None:
    with pytest.raises(UnsupportedRateError, match=r"rate|Hz"):
        resampling_factors(rate)
    with pytest.raises(UnsupportedRateError):
        Framer(1, rate)


def test_the_optional_high_pass_removes_an_offset_and_keeps_a_10_hz_sine() -> None:
    """A 250 Hz stream of 150 uV offset + a 10 Hz, 20 uV sine, in blocks of 37 samples: high-passed at
    0.5 Hz, the frames after the first carry no offset (|mean| < 0.5 uV) and the sine (amplitude
    within 2 %, measured by a least-squares fit written here, not the framer's code)."""
    rate, n = 250.0, 250 * 12
    t = np.arange(n) / rate
    x = (150.0 + 20.0 * np.sin(2 * np.pi * 10.0 * t))[None, :]
    blocks = [Block(x[:, i : i + 37], t[i : i + 37]) for i in range(0, n, 37)]
    plain = list(frames(blocks, n_channels=1, rate_hz=rate))
    passed = list(frames(blocks, n_channels=1, rate_hz=rate, highpass_hz=0.5))
    assert len(plain) == len(passed) >= 4
    assert abs(float(plain[2].mean()) - 150.0) < 0.5  # without it the offset stays
    tt = np.arange(256) / 128.0
    basis = np.stack([np.sin(2 * np.pi * 10 * tt), np.cos(2 * np.pi * 10 * tt), np.ones(256)], axis=1)
    for frame in passed[2:]:
        (a, b, c), *_ = np.linalg.lstsq(basis, frame[0].astype(np.float64), rcond=None)
        assert abs(c) < 0.5 and abs(np.hypot(a, b) - 20.0) < 0.4, (a, b, c)
    for bad in (0.0, -1.0, 25.0, float("nan"), True, "0.5"):
        with pytest.raises(InvalidArgumentError, match="highpass_hz"):
            Framer(1, 128.0, highpass_hz=bad)  # type: ignore[arg-type]


def test_a_gap_drops_the_frame_in_progress_and_is_counted() -> None:
    t = np.arange(128 * 3) / 128.0
    x = np.ones((2, t.size))
    counter = FrameCounter()
    framer = Framer(2, 128.0, counter=counter)
    assert len(framer.push(Block(x[:, :300], t[:300]))) == 1  # one frame, 44 samples in progress
    assert framer.push(Block(x[:, 300:], t[300:], gap_before=True)) == []  # 84 samples: the 44 were dropped
    assert counter.gaps == 1 and counter.frames_dropped == 1 and framer.pending == 84
    more = framer.push(Block(x[:, :200], t[:200] + 10.0))  # contiguous after the gap: 84 + 200 -> one frame
    assert len(more) == 1 and counter.frames == 2


def test_a_gap_in_a_resampled_stream_restarts_the_filter() -> None:
    rate = 250.0
    t = np.arange(int(rate * 12)) / rate
    x = np.sin(2 * np.pi * 10.0 * t)[None, :] * 50.0
    half = x.shape[1] // 2
    counter = FrameCounter()
    blocks = [Block(x[:, :half], t[:half]), Block(x[:, half:], t[half:] + 5.0, gap_before=True)]
    out = list(frames(blocks, n_channels=1, rate_hz=rate, counter=counter))
    assert counter.gaps == 1 and counter.frames_dropped == 1
    for frame in out:  # no frame straddles the gap: each is a clean 10 Hz sine of 50 uV
        f, a = _tone(frame[0].astype(np.float64), 128.0)
        assert abs(f - 10.0) < 0.3 and abs(a - 50.0) < 2.5


# --- EDF and BDF --------------------------------------------------------------------------------


def test_edf_channels_by_label_and_all_signals() -> None:
    with open_spec(f"edf:{GENERATOR_EDF}") as src:
        assert len(src.labels) == 11 and src.labels[4] == "sine 1 Hz" and src.rate_hz == 200.0
        assert src.kind == "edf" and src.name == "edf:test_generator.edf"
    with open_spec(f"edf:{GENERATOR_EDF}#sine 15 Hz,SQUAREWAVE") as src:
        assert src.labels == ("sine 15 Hz", "squarewave")  # order kept, labels matched without case
        block = next(iter(src.blocks()))
        assert block.samples.shape[0] == 2 and block.timestamps[1] == pytest.approx(1 / 200)
    with open_spec(f"edf:{DATA / 'test_legacy.edf'}") as src:  # its annotation signal is not a channel
        assert "EDF Annotations" not in src.labels and len(src.labels) == 11


def test_bdf_all_selected_channels_must_share_one_rate() -> None:
    with pytest.raises(SourceError, match=r"do not share one sampling rate \(sine 5Hz 1000 Hz, square 13Hz 800 Hz"):
        open_spec(f"bdf:{BDF_1000}")
    with open_spec(f"bdf:{BDF_1000}#sine 5Hz") as src:
        assert src.labels == ("sine 5Hz",) and src.rate_hz == 1000.0 and src.kind == "bdf" and not src.live


# --- XDF ----------------------------------------------------------------------------------------


def _chunk(tag: int, content: bytes) -> bytes:
    return b"\x04" + struct.pack("<IH", len(content) + 2, tag) + content


def write_xdf(path: Path, rate: float, data: np.ndarray, stamps: np.ndarray, labels: list[str]) -> None:
    """A minimal XDF 1.0 file (the specification's chunks: file header, stream header, samples,
    stream footer) holding one float32 stream named EEG-amp."""
    channels = "".join(f"<channel><label>{x}</label><unit>microvolts</unit></channel>" for x in labels)
    header = (
        f"<?xml version='1.0'?><info><name>EEG-amp</name><type>EEG</type><channel_count>{len(labels)}"
        f"</channel_count><nominal_srate>{rate}</nominal_srate><channel_format>float32</channel_format>"
        f"<created_at>0</created_at><desc><channels>{channels}</channels></desc></info>"
    ).encode()
    marker = "<?xml version='1.0'?><info><name>Markers</name><type>Markers</type><channel_count>1</channel_count>"
    marker += "<nominal_srate>0</nominal_srate><channel_format>float32</channel_format></info>"
    body = bytearray(b"XDF:")
    body += _chunk(1, b"<?xml version='1.0'?><info><version>1.0</version></info>")
    body += _chunk(2, struct.pack("<I", 1) + header)
    body += _chunk(2, struct.pack("<I", 2) + marker.encode())
    for start in range(0, data.shape[1], 100):
        n = min(100, data.shape[1] - start)
        samples = b"".join(
            b"\x08" + struct.pack("<d", stamps[start + i]) + data[:, start + i].astype("<f4").tobytes()
            for i in range(n)
        )
        body += _chunk(3, struct.pack("<I", 1) + b"\x04" + struct.pack("<I", n) + samples)
    footer = f"<?xml version='1.0'?><info><first_timestamp>{stamps[0]}</first_timestamp><last_timestamp>"
    footer += f"{stamps[-1]}</last_timestamp><sample_count>{data.shape[1]}</sample_count></info>"
    body += _chunk(6, struct.pack("<I", 1) + footer.encode())
    path.write_bytes(bytes(body))


def test_xdf_replays_one_stream_with_its_labels_and_its_gaps(tmp_path: Path) -> None:
    rate = 256.0
    t = np.arange(int(rate * 8)) / rate
    stamps = np.where(t < 4.0, t, t + 1.0) + 100.0  # one second missing after 4 s
    data = np.stack([20.0 * np.sin(2 * np.pi * 10.0 * t), 10.0 * np.sin(2 * np.pi * 6.0 * t)])
    path = tmp_path / "session.xdf"
    write_xdf(path, rate, data, stamps, ["C3", "C4"])
    counter = FrameCounter()
    with open_spec(f"xdf:{path}#EEG-amp") as src:
        assert src.labels == ("C3", "C4") and src.rate_hz == 256.0
        got = list(frames(src, counter=counter))
    assert counter.gaps == 1 and counter.frames_dropped == 1 and len(got) >= 2
    f, a = _tone(got[0][0].astype(np.float64), 128.0)
    assert abs(f - 10.0) < 0.3 and abs(a - 20.0) < 1.0
    with open_spec(f"xdf:{path}#type=EEG") as src:
        assert src.labels == ("C3", "C4")
    with pytest.raises(SourceError, match=r"0 streams with name='nope', need one; it has: EEG-amp \(type EEG\)"):
        open_spec(f"xdf:{path}#nope")
    with pytest.raises(SourceError, match="irregular rate"):
        open_spec(f"xdf:{path}#Markers")
    garbage = tmp_path / "garbage.xdf"
    garbage.write_bytes(b"XDF:" + os.urandom(64))
    with pytest.raises(SourceError, match="0 streams with name='EEG-amp', need one; it has: none"):
        open_spec(f"xdf:{garbage}#EEG-amp")


# --- bad specs ----------------------------------------------------------------------------------

BAD_SPECS = [
    ("", SourceSpecError, "non-empty string"),
    ("bluetooth:hr", SourceSpecError, r"unknown source kind 'bluetooth'.*kinds: synthetic, edf, bdf, brainflow, lsl"),
    ("synthetic:channels=0", SourceSpecError, "channels must be from 1 to 256"),
    ("synthetic:channels=eight", SourceSpecError, "channels must be an integer"),
    ("synthetic:rate=nan", SourceSpecError, "rate must be from 1 to 100000"),
    ("synthetic:rate=127.9", UnsupportedRateError, "1280/1279"),  # refused when framed (below)
    ("synthetic:colour=red", SourceSpecError, r"unknown option 'colour'; valid keys: channels, rate, seed"),
    ("synthetic:seed=1,seed=2", SourceSpecError, "given twice"),
    ("synthetic:seed", SourceSpecError, "expected KEY=VALUE"),
    ("edf:", SourceSpecError, "no file path"),
    ("edf:/nonexistent/x.edf", SourceError, "no EDF/BDF file at"),
    (f"edf:{GENERATOR_EDF}#Fp1", SourceError, r"no channel 'Fp1'; available: squarewave, ramp"),
    (f"edf:{GENERATOR_EDF}#ramp,,pulse", SourceSpecError, "an empty channel label"),
    (f"edf:{GENERATOR_EDF}#ramp,ramp", SourceError, "selected twice"),
    ("bdf", SourceSpecError, "bdf needs a file"),
    ("brainflow:", SourceSpecError, "no board"),
    ("brainflow:nosuchboard", SourceSpecError, r"no BrainFlow board 'nosuchboard'; .*synthetic"),
    ("brainflow:9999", SourceSpecError, "no BrainFlow board with id 9999"),
    ("brainflow:streaming", SourceSpecError, "STREAMING_BOARD is refused"),
    ("brainflow:-2", SourceSpecError, "STREAMING_BOARD is refused"),
    ("brainflow:playback?file=x.csv&master_board=streaming_board", SourceSpecError, "STREAMING_BOARD is refused"),
    ("brainflow:playback?file=x.csv", SourceSpecError, "needs the recorded file and the board that recorded it"),
    ("brainflow:synthetic?colour=red", SourceSpecError, r"unknown option 'colour'; valid keys: .*serial_port"),
    ("brainflow:synthetic?ip_port=http", SourceSpecError, "ip_port must be an integer"),
    ("brainflow:synthetic#Fp1", SourceError, r"no channel 'Fp1'; available: Fz, C3, Cz"),
    ("lsl:", SourceSpecError, "name exactly one of name, type, source_id"),
    ("lsl:type=EEG,name=X", SourceSpecError, "name exactly one of"),
    ("lsl:type=EEG,timeout=-1", SourceSpecError, "timeout must be from 0.01 to 600"),
    ("lsl:kind=EEG", SourceSpecError, "unknown option 'kind'"),
    ("xdf:session.xdf", SourceSpecError, "names its file and one stream"),
    ("xdf:/nonexistent/session.xdf#EEG", SourceError, "no XDF file at"),
]


@pytest.mark.parametrize(("spec", "error", "message"), BAD_SPECS, ids=[s[0] or "empty" for s in BAD_SPECS])
def test_every_bad_spec_is_a_specific_error_that_says_what_is_valid(
    spec: str, error: type[CortexError], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        src = open_spec(spec)
        try:
            next(frames(src))
        finally:
            src.close()
    assert isinstance(caught.value, SourceError) and isinstance(caught.value, ValueError)


def test_a_spec_that_is_not_a_string_is_refused() -> None:
    for spec in (None, 3, b"synthetic"):
        with pytest.raises(SourceSpecError, match="must be a non-empty string"):
            open_spec(spec)  # type: ignore[arg-type]


def test_a_missing_optional_package_names_the_extra_to_install() -> None:
    with pytest.raises(SourceDependencyError, match=r"pip install 'cortex-sal\[lsl\]'"):
        require("pylsl_not_installed_here", "lsl")
    # the real thing, in a child where pyedflib, brainflow, pylsl and pyxdf cannot be imported
    code = (
        "import sys\n"
        "for name in ('pyedflib', 'brainflow', 'pylsl', 'pyxdf'): sys.modules[name] = None\n"
        "from cortex_sal.sources import open_spec\n"
        "from cortex_sal.errors import SourceDependencyError\n"
        "for spec, extra in [('edf', 'edf'), ('edf:x.edf', 'edf'), ('brainflow:synthetic', 'brainflow'),\n"
        "                    ('lsl:type=EEG', 'lsl'), ('xdf:x.xdf#s', 'xdf')]:\n"
        "    try:\n"
        "        open_spec(spec)\n"
        "    except SourceDependencyError as exc:\n"
        '        assert f"cortex-sal[{extra}]" in str(exc), exc\n'
        "    else:\n"
        "        raise SystemExit(spec + ' opened')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=env,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "ok\n", done.stdout + done.stderr
    assert bundled_edf_path() is not None  # here pyedflib is installed


# --- the command line ---------------------------------------------------------------------------


def test_sources_list_shows_installed_versions_and_every_spec_form(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["sources", "list"]) == 0
    out = capsys.readouterr().out
    for kind, package in (("edf", "pyedflib"), ("bdf", "pyedflib"), ("brainflow", "brainflow"), ("lsl", "pylsl"),
                          ("xdf", "pyxdf")):  # fmt: skip
        assert f"{kind}: {package} {version(package)}\n" in out
    for example in ("synthetic:channels=8,rate=250,seed=3", "edf:recording.edf#Fp1,Fp2", "brainflow:synthetic",
                    "brainflow:cyton?serial_port=/dev/ttyUSB0", "lsl:type=EEG", "lsl:name=X,timeout=5",
                    "brainflow:playback?file=rec.csv&master_board=synthetic", "xdf:session.xdf#EEG-amp"):  # fmt: skip
        assert f"--source '{example}'" in out


def test_the_examples_of_sources_list_that_need_no_device_open() -> None:
    with open_spec("synthetic:channels=8,rate=250,seed=3") as src:
        assert next(frames(src)).shape == (8, 256)
    assert isinstance(open_spec("synthetic"), SyntheticSource)


def test_the_demo_in_process_streams_the_synthetic_and_the_bundled_edf() -> None:
    from cortex_sal.cli.demo import run_demo

    out = io.StringIO()
    assert run_demo(Console(file=out, width=160), frames=3, delay_s=0.0, use_edf=True) == 0
    text = out.getvalue()
    assert "real scalp EEG, channel Fp1, 128 Hz" in text and "synthetic EEG (alpha + theta + noise)" in text
    assert "keys purged" in text


def test_the_sensors_seed_option_seeds_a_synthetic_spec_without_a_seed_of_its_own() -> None:
    from cortex_sal.cli.gateway import open_source

    want = _digest(frames(open_spec("synthetic:seed=5"), max_frames=2))
    for spec in ("synthetic", "synthetic:", "synthetic:rate=128"):
        assert _digest(frames(open_source(spec, 5), max_frames=2)) == want
    assert _digest(frames(open_source("synthetic:seed=3", 5), max_frames=4)) == SYNTHETIC_SEED3_4  # the spec's own wins
    assert _digest(frames(open_source("synthetic", 1), max_frames=8)) == SYNTHETIC_SEED1_8


def test_the_building_blocks_refuse_bad_arguments() -> None:
    from cortex_sal.errors import InvalidArgumentError

    with pytest.raises(SourceError, match=r"samples \(C, n\) and timestamps \(n,\), got \(2, 3\) and \(4,\)"):
        Block(np.zeros((2, 3)), np.zeros(4))
    with pytest.raises(SourceError, match=r"got \(3,\) and \(3,\)"):
        Block(np.zeros(3), np.zeros(3))
    for bad in (0, 1025, 2.0, True, "8"):
        with pytest.raises(InvalidArgumentError, match="n_channels must be an int from 1 to 1024"):
            Framer(bad, 128.0)  # type: ignore[arg-type]
    framer = Framer(2, 128.0)
    with pytest.raises(SourceError, match=r"does not have the framer's 2 channels"):
        framer.push(Block(np.zeros((3, 10)), np.arange(10.0)))
    with pytest.raises(InvalidArgumentError, match="needs n_channels and rate_hz"):
        next(frames([Block(np.zeros((1, 10)), np.arange(10.0))]))
    for bad_max in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="max_frames must be a positive int"):
            next(frames(open_spec("synthetic"), max_frames=bad_max))  # type: ignore[arg-type]
    for kwargs in ({"channels": 0}, {"channels": 257}, {"rate_hz": 0.5}, {"rate_hz": "128"}, {"seed": -1},
                   {"seed": 1.5}, {"n_blocks": 0}):  # fmt: skip
        with pytest.raises(InvalidArgumentError):
            SyntheticSource(**kwargs)  # type: ignore[arg-type]
    for n in (0, -3, 2.0, True):
        with pytest.raises(InvalidArgumentError, match="n_frames must be a positive int"):
            synthetic_eeg(n)  # type: ignore[arg-type]


def test_every_source_in_docs_sources_md_opens_or_fails_only_for_want_of_its_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``--source`` values of docs/sources.md's commands, as written (``$DATA`` as the doc sets it):
    each opens, or (a Cyton, an XDF recording, a playback file the doc records first) is refused for
    the missing device or file, never for its spec. LSL specs are left out: resolving one from this
    process would query the network (the LSL tests resolve in a namespace of their own)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "sources.md").read_text(encoding="utf-8")
    text = "\n".join(re.findall(r"```sh\n(.*?)```", doc, re.S))  # the shell blocks
    monkeypatch.chdir(tmp_path)  # no rec.csv here: the doc records it first
    specs = [a or b or c for a, b, c in re.findall(r"--source (?:'([^']+)'|\"([^\"]+)\"|([^\s'\"]+))", text)]
    assert len(specs) >= 10
    missing = {"brainflow:cyton": "UNABLE_TO_OPEN_PORT", "xdf:": "no XDF file", "brainflow:playback": "did not start"}
    opened = []
    for written in specs:
        spec = written.replace("$DATA", str(DATA))
        if spec.startswith("lsl:"):
            continue
        want = next((why for prefix, why in missing.items() if spec.startswith(prefix)), None)
        if want is None:
            with open_spec(spec) as src:
                opened.append(src.kind)
                if not src.live:
                    assert next(frames(src)).shape[1] == 256
        else:
            with pytest.raises(SourceError, match=want) as caught:
                open_spec(spec).close()
            assert not isinstance(caught.value, SourceSpecError)
    assert {"synthetic", "edf", "bdf", "brainflow"} <= set(opened)
