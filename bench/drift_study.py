"""The design's drift rule on real EEG (issue #15 item 5, ``[OI-drift-semantics]``, docs/sal.md).

Runs the real ``CognitiveShield`` (one channel, ``register_sensor`` + ``ingest_raw_data``, a
``ManualClock`` advanced 2 s per frame so the 60 s drift window is in data time) over frames of
256 samples at 128 Hz, under the design's default thresholds and under the proposal
docs/proposals/drift-resting-eeg.json:

* ``real``: the one-channel Fp1 scalp EEG at 128 Hz, 698 s, that pyedflib ships
  (``tests/data/test_subsecond.edf``, ``cortex_sal.sources.bundled_edf_path``; ``test_utf8.edf``
  holds the same samples): 349 frames, start to end.
* ``synthetic``: BrainFlow's ``SYNTHETIC_BOARD``, EEG row 1 (Fz), captured once for 256 s at
  250 Hz into docs/data/ (``--capture``), resampled to 128 Hz with
  ``scipy.signal.resample_poly(x, 64, 125)``: 128 frames.
* ``pushed``: the real recording with a 10 Hz rhythm crossfaded in (:func:`pushed`): untouched
  for the first 120 s, then ``(1 - r) * eeg + r * 24 uV * sin(2 pi 10 t)`` with ``r`` rising
  linearly from 0 at 120 s to 1 at 600 s and held to the end. It pushes the frames' coherency
  up toward the "sympathetic (focused)" label while staying within the bridge bounds.
* information rows: ``attenuated`` (the real recording times a gain falling linearly from 1 at
  120 s to 0.4 at 600 s: a push down toward "calm") and ``synthetic-dc`` (the synthetic capture
  minus its mean, which the shield does not do: it shows what the bridge hides).

For each: the per-frame coherency (percentiles), the frames refused by each rule (bridge std /
p75 / peak, the consent refusal at the block, drift-blocked after it) as the shield's own
``RefusalReason`` says, the violations the drift detector counted (a ``DriftDetector`` fed the
same readings on the same clock, checked against the shield's refusals frame by frame) and the
data time of the first violation and of the block. Then two sweeps around the proposal.

Usage (numpy, scipy and pyedflib; ``--plot`` needs matplotlib, ``--capture`` brainflow):

    PYTHONPATH=src .venv/bin/python -W error bench/drift_study.py            # tables, a few seconds
    PYTHONPATH=src .venv/bin/python -W error bench/drift_study.py --plot     # + docs/drift-study.png
    PYTHONPATH=src .venv/bin/python -W error bench/drift_study.py --capture  # re-record (real time, ~260 s)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "docs" / "data"
CAPTURE_NPY = DATA_DIR / "brainflow-synthetic-ch1-250hz.npy"
CAPTURE_JSON = DATA_DIR / "brainflow-synthetic-ch1-250hz.json"
PROPOSAL = ROOT / "docs" / "proposals" / "drift-resting-eeg.json"
PLOT = ROOT / "docs" / "drift-study.png"

RATE_HZ = 128
FRAME = 256
FRAME_S = FRAME / RATE_HZ  # 2 s
BOARD_RATE_HZ = 250
CAPTURE_S = 256  # 64,000 samples at 250 Hz = 32,768 at 128 Hz = 128 frames of 2 s
SKIP_S = 2  # the first seconds after start_stream are dropped
MODEL = "eeg_fp1_certified_v1"  # a certified one-channel model (35 dB, 16 bits)

# the pushed stream (see pushed())
PUSH_START_S = 120.0
PUSH_FULL_S = 600.0
PUSH_AMP_UV = 24.0
PUSH_FREQ_HZ = 10.0
ATTENUATE_TO = 0.4

OUTCOMES = ("released", "bridge_std", "bridge_p75", "bridge_peak", "consent", "drift_blocked")
_OUT_OF_REACH = 10**9


# -- streams -------------------------------------------------------------------------------------


def real_signal() -> np.ndarray:
    """The 698 s Fp1 recording pyedflib ships, float32 microvolts at 128 Hz (89,344 samples)."""
    from cortex_sal.sources import EdfSource, bundled_edf_path, frames

    path = bundled_edf_path()
    if path is None:
        raise SystemExit("the real EEG needs pyedflib (pip install 'cortex-sal[edf]')")
    with EdfSource(path) as source:  # 128 Hz: passed through the framer untouched
        return np.concatenate([frame[0] for frame in frames(source)])


def synthetic_signal(path: Path = CAPTURE_NPY) -> np.ndarray:
    """The synthetic board's capture, resampled 250 -> 128 Hz, float32 microvolts."""
    import scipy.signal

    x = np.load(path, allow_pickle=False)
    y = scipy.signal.resample_poly(x.astype(np.float64), 64, 125)
    return np.asarray(y, dtype=np.float32)


def _ramp(n: int, start_s: float = PUSH_START_S, full_s: float = PUSH_FULL_S) -> np.ndarray:
    t = np.arange(n) / RATE_HZ
    return np.asarray(np.clip((t - start_s) / (full_s - start_s), 0.0, 1.0))


def pushed(eeg: np.ndarray) -> np.ndarray:
    """``eeg`` with a 10 Hz rhythm crossfaded in: ``(1 - r) * eeg + r * 24 uV * sin(2 pi 10 t)``.

    ``r`` is 0 up to 120 s (the stream is the recording itself), rises linearly to 1 at 600 s
    and stays there: a rhythm (entrainment, a stimulation, a tampered stream) progressively
    replacing the wearer's EEG. A sine's low crest factor raises the frame's envelope
    variation (its coherency) while its 24 uV peaks stay within the bridge bounds: a 24 uV
    sine alone has coherency 0.313 ("sympathetic (focused)") and p75 0.691 (bound 0.7).
    """
    x = eeg.astype(np.float64)
    t = np.arange(x.size) / RATE_HZ
    r = _ramp(x.size)
    return np.asarray((1.0 - r) * x + r * PUSH_AMP_UV * np.sin(2 * np.pi * PUSH_FREQ_HZ * t), dtype=np.float32)


def attenuated(eeg: np.ndarray) -> np.ndarray:
    """``eeg`` times a gain falling linearly from 1 at 120 s to 0.4 at 600 s (held): a push down."""
    g = 1.0 - (1.0 - ATTENUATE_TO) * _ramp(eeg.size)
    return np.asarray(eeg.astype(np.float64) * g, dtype=np.float32)


def frames_of(signal: np.ndarray) -> np.ndarray:
    n = signal.size // FRAME
    return np.ascontiguousarray(signal[: n * FRAME].reshape(n, FRAME), dtype=np.float32)


# -- policies ------------------------------------------------------------------------------------


def proposed_change(path: Path = PROPOSAL) -> dict[str, object]:
    """The proposal's threshold change, read with the project's own parser."""
    from cortex_sal.store.governance import load_proposal

    return dict(load_proposal(path).content)


def policy(change: dict[str, object] | None = None) -> Any:
    """The default thresholds with ``change`` applied (as ``apply_bundle`` builds them)."""
    from cortex_sal.governance import DEFAULT_THRESHOLDS, ClinicalThresholds

    values = {name: getattr(DEFAULT_THRESHOLDS, name) for name in DEFAULT_THRESHOLDS.__dataclass_fields__}
    values.update(change or {})
    return ClinicalThresholds(**values)


def _never_blocking(thresholds: Any) -> Any:
    from cortex_sal.governance import ClinicalThresholds

    values = {name: getattr(thresholds, name) for name in thresholds.__dataclass_fields__}
    values.update(hard_violations_to_block=_OUT_OF_REACH, soft_violations_to_block=_OUT_OF_REACH)
    return ClinicalThresholds(**values)


# -- one run of the shield -------------------------------------------------------------------------


@dataclass
class Row:
    """One frame: its end in data time, its coherency, what the shield did, what drift counted."""

    t_end: float
    coherency: float
    outcome: str
    label: str
    bridge: str | None  # the bridge's reason from the frame's features (the shield may never ask: blocked)
    window_sum: float | None = None  # after this frame's drift update (None: no drift update)
    event: str = ""  # "hard", "soft", "hard+soft", "recovery" (and "+block" on the blocking frame)
    free_sum: float | None = None  # a never-blocking detector over every frame within the bridge


@dataclass
class Run:
    stream: str
    policy: str
    limit: float
    rows: list[Row] = field(default_factory=list)


def run(stream: str, frames: np.ndarray, thresholds: Any, policy_name: str) -> Run:
    """Every frame through a fresh shield; each row checked against a mirror drift detector."""
    from cortex_sal.clock import ManualClock
    from cortex_sal.sal.drift import DriftDetector
    from cortex_sal.sal.features import bridge_check, coherency_batch, phase_a_batch, state_label
    from cortex_sal.sal.results import RefusalReason, Refused, Registered, Released
    from cortex_sal.sal.shield import CognitiveShield

    clock = ManualClock()
    features = phase_a_batch(frames)  # bit-identical to the shield's single path (docs/sal.md)
    coh = coherency_batch(features)
    mirror = DriftDetector(thresholds, clock)  # fed what the shield's detector is fed
    free = DriftDetector(_never_blocking(thresholds), clock)
    out = Run(stream, policy_name, float(thresholds.max_coherency_sum_per_minute))
    with CognitiveShield(thresholds=thresholds, clock=clock) as shield:
        if not isinstance(shield.register_sensor(MODEL, 35.0, 16), Registered):
            raise RuntimeError("the certified model was not admitted")
        for i, x in enumerate(frames):
            was_blocked = mirror.blocked
            result = shield.ingest_raw_data(MODEL, x)
            c = float(coh[i])
            bridge = bridge_check(features[i], thresholds)
            row = Row((i + 1) * FRAME_S, c, "released", state_label(c, thresholds), bridge)
            if isinstance(result, Released):
                if result.coherency_index != c:
                    raise RuntimeError(f"frame {i}: the shield's coherency {result.coherency_index!r} != {c!r}")
            elif isinstance(result, Refused):
                if result.reason is RefusalReason.BRIDGE_BOUNDS:
                    if bridge is None or result.detail != f"bridge: {bridge}":
                        raise RuntimeError(f"frame {i}: bridge refusal {result.detail!r}, features say {bridge!r}")
                    row.outcome = "bridge_" + bridge.split()[0]
                elif result.reason is RefusalReason.CONSENT_INACTIVE:
                    row.outcome = "consent"
                elif result.reason is RefusalReason.DRIFT_BLOCKED:
                    row.outcome = "drift_blocked"
                else:
                    raise RuntimeError(f"frame {i}: unexpected refusal {result.reason}: {result.detail}")
            if (row.outcome == "drift_blocked") != was_blocked:
                raise RuntimeError(
                    f"frame {i}: the shield says {row.outcome}, the mirror detector blocked={was_blocked}"
                )
            if row.outcome in ("released", "consent"):  # the shield's detector ran on this frame
                before = mirror.state
                after = mirror.update(c)
                row.window_sum = after.window_sum
                kinds = []
                if after.hard_violations > before.hard_violations:
                    kinds.append("hard")
                if after.soft_violations > before.soft_violations:
                    kinds.append("soft")
                if after.hard_violations < before.hard_violations:
                    kinds.append("recovery")
                if after.blocked:
                    kinds.append("block")
                row.event = "+".join(kinds)
                if (row.outcome == "consent") != after.blocked:
                    raise RuntimeError(f"frame {i}: {row.outcome} but the mirror detector blocked={after.blocked}")
            if bridge is None:
                row.free_sum = free.update(c).window_sum
            out.rows.append(row)
            clock.advance(FRAME_S)
    return out


# -- figures -------------------------------------------------------------------------------------


def _first(rows: Sequence[Row], pred: Any) -> Row | None:
    return next((r for r in rows if pred(r)), None)


def summary(r: Run) -> dict[str, Any]:
    rows = r.rows
    n = len(rows)
    counts = {k: sum(row.outcome == k for row in rows) for k in OUTCOMES}
    c_all = np.array([row.coherency for row in rows])
    c_in = np.array([row.coherency for row in rows if row.bridge is None])
    first_v = _first(rows, lambda row: "hard" in row.event or "soft" in row.event)
    block = _first(rows, lambda row: "block" in row.event)
    sums = [row.window_sum for row in rows if row.window_sum is not None]
    free = [row.free_sum for row in rows if row.free_sum is not None]
    released = [row for row in rows if row.outcome == "released"]

    def pct(a: np.ndarray) -> list[float]:
        return [round(float(v), 3) for v in np.percentile(a, [5, 25, 50, 75, 95, 100])] if a.size else []

    def kind(row: Row | None) -> str | None:
        if row is None:
            return None
        return "+".join(k for k in ("hard", "soft") if k in row.event)

    return {
        "stream": r.stream,
        "policy": r.policy,
        "limit": r.limit,
        "frames": n,
        **counts,
        "released_pct": round(100.0 * counts["released"] / n, 1),
        "within_bridge": int(c_in.size),
        "hard_violations": sum("hard" in row.event for row in rows),
        "soft_violations": sum("soft" in row.event for row in rows),
        "recoveries": sum("recovery" in row.event for row in rows),
        "first_violation_s": None if first_v is None else first_v.t_end,
        "first_violation": kind(first_v),
        "block_s": None if block is None else block.t_end,
        "block_by": kind(block),
        "coherency_pct_all": pct(c_all),
        "coherency_pct_within_bridge": pct(c_in),
        "max_window_sum": round(max(sums), 3) if sums else None,
        "max_free_window_sum": round(max(free), 3) if free else None,
        "focused_share_of_released_pct": round(
            100.0 * sum(row.label.startswith("sympathetic") for row in released) / len(released), 1
        )
        if released
        else None,
    }


def _t(v: float | None) -> str:
    return "never" if v is None else f"{v:.0f} s"


def outcome_table(sums: Sequence[dict[str, Any]]) -> str:
    head = (
        "| stream | policy | frames | released | bridge std / p75 / peak | consent (at block) | drift-blocked "
        "| hard / soft violations | first violation | block |"
    )
    lines = [head, "|" + "---|" * 10]
    for s in sums:
        fv = "none" if s["first_violation_s"] is None else f"{s['first_violation_s']:.0f} s ({s['first_violation']})"
        blk = "never" if s["block_s"] is None else f"{s['block_s']:.0f} s ({s['block_by']})"
        lines.append(
            f"| {s['stream']} | {s['policy']} | {s['frames']} | {s['released']} ({s['released_pct']} %) "
            f"| {s['bridge_std']} / {s['bridge_p75']} / {s['bridge_peak']} | {s['consent']} | {s['drift_blocked']} "
            f"| {s['hard_violations']} / {s['soft_violations']} | {fv} | {blk} |"
        )
    return "\n".join(lines)


def coherency_table(sums: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| stream | frames | coherency p5 / p25 / p50 / p75 / p95 / max (all frames) "
        "| the same, frames within the bridge | max window sum (60 s) |",
        "|---|---|---|---|---|",
    ]
    for s in sums:
        a = " / ".join(f"{v:.3f}" for v in s["coherency_pct_all"])
        b = " / ".join(f"{v:.3f}" for v in s["coherency_pct_within_bridge"]) or "(none)"
        m = "-" if s["max_free_window_sum"] is None else f"{s['max_free_window_sum']:.2f}"
        lines.append(f"| {s['stream']} | {s['frames']} | {a} | {b} ({s['within_bridge']} frames) | {m} |")
    return "\n".join(lines)


def sweep(streams: dict[str, np.ndarray], base: dict[str, object], name: str, values: Sequence[object]) -> str:
    """One field of the proposal varied, the others held: released share, violations, block."""
    cols = ("real", "synthetic-dc", "pushed")
    lines = [
        f"| {name} | " + " | ".join(f"{c}: released, hard / soft, block" for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for v in values:
        t = policy({**base, name: v})
        cells = []
        for stream in cols:
            s = summary(run(stream, streams[stream], t, "sweep"))
            blk = _t(s["block_s"]) + (f" ({s['block_by']})" if s["block_by"] else "")
            cells.append(f"{s['released_pct']} %, {s['hard_violations']} / {s['soft_violations']}, {blk}")
        mark = " (proposed)" if base.get(name) == v else ""
        lines.append(f"| {v!r}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def minute_before(rows: Sequence[Row], t_end: float) -> tuple[int, float, int]:
    """In the 60 s up to ``t_end``: frames within the bridge, their mean coherency, how many were "focused"."""
    window = [r for r in rows if t_end - 60.0 < r.t_end <= t_end and r.bridge is None]
    mean = float(np.mean([r.coherency for r in window])) if window else 0.0
    return len(window), mean, sum(r.label.startswith("sympathetic") for r in window)


# -- the plot ------------------------------------------------------------------------------------

_STYLE = {  # outcome: (marker, colour, size, legend)
    "released": ("o", "#1f77b4", 9, "released"),
    "bridge_std": ("^", "#8c564b", 22, "bridge: std"),
    "bridge_p75": ("s", "#ff7f0e", 18, "bridge: p75"),
    "bridge_peak": ("v", "#d62728", 22, "bridge: peak"),
    "consent": ("X", "#e377c2", 60, "consent (block)"),
    "drift_blocked": ("o", "#bbbbbb", 7, "drift-blocked"),
}


def plot(runs: dict[tuple[str, str], Run], path: Path = PLOT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = ("real", "synthetic", "synthetic-dc", "pushed")
    titles = {
        "real": "real Fp1 EEG (pyedflib)",
        "synthetic": "BrainFlow synthetic board",
        "synthetic-dc": "synthetic board, mean removed (info)",
        "pushed": "pushed: 10 Hz crossfade from 120 s",
    }
    policies = ("default", "proposed")
    fig, axes = plt.subplots(
        4, len(streams), figsize=(20, 12), sharex="col", height_ratios=[3, 2, 3, 2], layout="constrained"
    )
    for j, stream in enumerate(streams):
        for k, pol in enumerate(policies):
            r = runs[(stream, pol)]
            ax_c, ax_s = axes[2 * k, j], axes[2 * k + 1, j]
            t = np.array([row.t_end for row in r.rows])
            for outcome, (marker, colour, size, legend) in _STYLE.items():
                sel = [i for i, row in enumerate(r.rows) if row.outcome == outcome]
                if sel:
                    ax_c.scatter(t[sel], [r.rows[i].coherency for i in sel], s=size, marker=marker,
                                 color=colour, label=legend, linewidths=0)  # fmt: skip
            for y, text in ((0.3, "calm | focused"), (0.7, "focused | rest")):
                ax_c.axhline(y, color="#999999", lw=0.6, ls=":")
                ax_c.text(t[-1], y, text, fontsize=7, ha="right", va="bottom", color="#777777")
            ax_c.set_ylim(0.0, 0.85)
            ax_c.set_ylabel(f"coherency\n({pol} thresholds)")
            ax_c.set_title(f"{titles[stream]}: {pol}", fontsize=10)
            free_t = [row.t_end for row in r.rows if row.free_sum is not None]
            free_v = [row.free_sum for row in r.rows if row.free_sum is not None]
            ax_s.plot(free_t, free_v, color="#aaaaaa", lw=1.0, ls="--", label="window sum, never blocking")
            st = [row.t_end for row in r.rows if row.window_sum is not None]
            sv = [row.window_sum for row in r.rows if row.window_sum is not None]
            ax_s.plot(st, sv, color="#1f77b4", lw=1.4, label="window sum, the shield's detector")
            ax_s.axhline(r.limit, color="#d62728", lw=1.0, ls="-.", label=f"limit {r.limit:g}")
            for ev, marker, colour, legend in (("hard", "o", "#d62728", "hard violation"),
                                               ("soft", "D", "#9467bd", "soft violation")):  # fmt: skip
                hits = [row for row in r.rows if ev in row.event]
                if hits:
                    ys = [(row.window_sum or 0.0) if ev == "hard" else 0.3 for row in hits]
                    ax_s.scatter(
                        [row.t_end for row in hits], ys, marker=marker, s=22, color=colour, label=legend, zorder=3
                    )
            block = _first(r.rows, lambda row: "block" in row.event)
            for ax in (ax_c, ax_s):
                if stream == "pushed":
                    ax.axvspan(PUSH_START_S, t[-1], color="#2ca02c", alpha=0.06, lw=0)
                if block is not None:
                    ax.axvline(block.t_end, color="black", lw=1.0)
            if block is not None:
                ax_c.text(block.t_end, 0.82, f" block {block.t_end:.0f} s", fontsize=8, va="top")
            elif not st:
                ax_c.text(t[0], 0.82, " no frame within the bridge: drift never runs", fontsize=8, va="top")
                ax_s.text(t[0], 6.0, " no drift reading (every frame refused at the bridge)", fontsize=8)
            else:
                ax_c.text(t[0], 0.82, " never blocked", fontsize=8, va="top")
            ax_s.set_ylim(0.0, max(12.0, r.limit * 1.2))
            ax_s.set_ylabel("sum over 60 s")
            if j == 0:
                ax_c.legend(fontsize=7, loc="upper right", ncols=2, markerscale=1.2)
                ax_s.legend(fontsize=7, loc="upper right", ncols=2)
        axes[3, j].set_xlabel("data time (s), frames of 2 s")
    fig.suptitle("The design's drift rule on real EEG: coherency per frame, refusals by rule, window sum vs limit "
                 "(top: default thresholds, bottom: docs/proposals/drift-resting-eeg.json)", fontsize=11)  # fmt: skip
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# -- capture -------------------------------------------------------------------------------------


def capture(seconds: int = CAPTURE_S) -> Path:
    """Record one EEG row of BrainFlow's SYNTHETIC_BOARD in real time and write it under docs/data/."""
    import importlib.metadata

    from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams  # type: ignore[import-untyped]

    board_id = BoardIds.SYNTHETIC_BOARD
    BoardShim.disable_board_logger()
    rate = BoardShim.get_sampling_rate(board_id)
    if rate != BOARD_RATE_HZ:
        raise SystemExit(f"the synthetic board runs at {rate} Hz, expected {BOARD_RATE_HZ}")
    row = BoardShim.get_eeg_channels(board_id)[0]
    name = BoardShim.get_eeg_names(board_id)[0]
    need = (seconds + SKIP_S) * rate
    board = BoardShim(board_id, BrainFlowInputParams())
    board.prepare_session()
    try:
        board.start_stream(need + 10 * rate)
        started = time.time()
        while board.get_board_data_count() < need:
            time.sleep(1.0)
        data = board.get_board_data()
        board.stop_stream()
    finally:
        board.release_session()
    x = data[row, SKIP_S * rate : SKIP_S * rate + seconds * rate].astype(np.float32)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    np.save(CAPTURE_NPY, x, allow_pickle=False)
    meta = {
        "what": "one EEG row of BrainFlow's SYNTHETIC_BOARD, float32 microvolts at 250 Hz",
        "board": "BoardIds.SYNTHETIC_BOARD",
        "brainflow": importlib.metadata.version("brainflow"),
        "row": row,
        "eeg_name": name,
        "rate_hz": rate,
        "samples": int(x.size),
        "seconds": seconds,
        "dropped_first_s": SKIP_S,
        "captured_utc": datetime.datetime.fromtimestamp(started, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "made_by": "python bench/drift_study.py --capture",
    }
    CAPTURE_JSON.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return CAPTURE_NPY


# -- main ----------------------------------------------------------------------------------------


def streams() -> dict[str, np.ndarray]:
    eeg = real_signal()
    synth = synthetic_signal()
    return {
        "real": frames_of(eeg),
        "synthetic": frames_of(synth),
        "pushed": frames_of(pushed(eeg)),
        "attenuated": frames_of(attenuated(eeg)),
        "synthetic-dc": frames_of(synth - np.float32(synth.astype(np.float64).mean())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", action="store_true", help="re-record the synthetic board first (~260 s)")
    parser.add_argument("--plot", action="store_true", help=f"write {PLOT.relative_to(ROOT)} (matplotlib)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweeps around the proposal")
    args = parser.parse_args()
    if args.capture:
        path = capture()
        print(f"wrote {path} ({os.path.getsize(path)} bytes) and {CAPTURE_JSON.name}")
    started = time.perf_counter()
    data = streams()
    change = proposed_change()
    policies = {"default": policy(), "proposed": policy(change)}
    print(f"proposal {PROPOSAL.relative_to(ROOT)}: {json.dumps(change, sort_keys=True)}")
    runs = {(s, p): run(s, data[s], t, p) for s in data for p, t in policies.items()}
    sums = [summary(r) for r in runs.values()]
    print("\n## Refusals by rule (data time at the end of the frame)\n")
    print(outcome_table(sums))
    print("\n## Coherency per frame (the same under both policies)\n")
    print(coherency_table([s for s in sums if s["policy"] == "default"]))
    free_max = max(runs[("real", "proposed")].rows, key=lambda row: row.free_sum or 0.0)
    n, mean, _ = minute_before(runs[("real", "proposed")].rows, free_max.t_end)
    print(f"\nreal: the largest window sum, {free_max.free_sum:.2f} at {free_max.t_end:.0f} s: {n} frames within the "
          f"bridge in that minute, mean coherency {mean:.3f}")  # fmt: skip
    block = _first(runs[("pushed", "proposed")].rows, lambda row: "block" in row.event)
    if block is not None:
        share = min(max((block.t_end - PUSH_START_S) / (PUSH_FULL_S - PUSH_START_S), 0.0), 1.0)
        n, mean, focused = minute_before(runs[("pushed", "proposed")].rows, block.t_end)
        print(
            f"pushed, proposed: blocked at {block.t_end:.0f} s, the rhythm's share r = {share:.2f} "
            f"({share * PUSH_AMP_UV:.1f} uV of the {PUSH_AMP_UV:g} uV sine); in the minute before: {n} frames "
            f"within the bridge, mean coherency {mean:.3f}, {focused} labelled focused"
        )
    full = [r for r in runs[("pushed", "default")].rows if r.t_end > PUSH_FULL_S and r.bridge is None]
    if full:
        print(
            f"pushed, fully crossfaded (after {PUSH_FULL_S:.0f} s): {len(full)} frames within the bridge, "
            f"coherency {min(r.coherency for r in full):.3f}-{max(r.coherency for r in full):.3f}, "
            f"{sum(r.label.startswith('sympathetic') for r in full)} labelled focused"
        )
    if not args.no_sweep:
        print("\n## Sweep: max_coherency_sum_per_minute (the rest of the proposal held)\n")
        print(sweep(data, change, "max_coherency_sum_per_minute", (4.0, 5.0, 6.0, 7.5, 9.0)))
        print("\n## Sweep: soft_z_score (the rest of the proposal held)\n")
        print(sweep(data, change, "soft_z_score", (3.0, 4.0, 5.0, 6.0)))
        print("\n## Sweep: baseline_frames (the rest of the proposal held)\n")
        print(sweep(data, change, "baseline_frames", (7, 15, 30, 60)))
    if args.json is not None:
        args.json.write_text(json.dumps(sums, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    if args.plot:
        print(f"wrote {plot(runs)}")
    print(f"\n({time.perf_counter() - started:.1f} s; every frame checked against a mirror drift detector)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
