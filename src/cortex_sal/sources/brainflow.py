"""BrainFlow boards through the optional brainflow package: ``pip install 'cortex-sal[brainflow]'``.

A board by BrainFlow name (``synthetic``, ``cyton``, ``ganglion``, ``playback``, ... any
``BoardIds`` member, with or without ``_board``) or numeric id, with ``BrainFlowInputParams``
from the spec's options. Only the EEG rows are read (``BoardShim.get_eeg_channels``), labelled
with the board's own names (``get_eeg_names``), in microvolts (BrainFlow's unit for EEG). A board
with a package-number row (``get_package_num_channel``) reports a gap wherever that counter
skips (it counts modulo 256); without one, a jump of the board's timestamps over 1.5 sample
periods is a gap.

BrainFlow's ``STREAMING_BOARD`` is refused (as a board and as a playback's master board): it
joins a multicast group on the network. BrainFlow's own logger is disabled when a board is
opened, so nothing reaches standard error or standard output.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SourceError, SourceSpecError
from .base import Block, Source, require, select_channels, split_at_gaps

__all__ = ["PARAMS", "BrainFlowSource", "board_id"]

#: spec options that become ``BrainFlowInputParams`` fields, and their types
PARAMS: dict[str, type] = {
    "serial_port": str,
    "mac_address": str,
    "ip_address": str,
    "ip_address_aux": str,
    "ip_address_anc": str,
    "ip_port": int,
    "ip_port_aux": int,
    "ip_port_anc": int,
    "ip_protocol": int,
    "other_info": str,
    "serial_number": str,
    "file": str,
    "file_aux": str,
    "file_anc": str,
    "master_board": str,  # a board name or id, resolved like the board
    "timeout": int,
}
STREAMING_BOARD_ID = -2
PLAYBACK_BOARD_ID = -3
POLL_S = 0.05
#: seconds without a sample after which a live board is given up
STALL_S = 5.0
#: seconds without a sample after which a playback file has ended
PLAYBACK_END_S = 1.0


def _brainflow() -> Any:
    return require("brainflow.board_shim", "brainflow")


def board_id(name: str | int, *, what: str = "board") -> int:
    """A ``BoardIds`` value from a name (``synthetic``, ``cyton_daisy``, ``PLAYBACK_FILE_BOARD``) or id."""
    ids = _brainflow().BoardIds
    text = str(name).strip()
    value = int(text) if re.fullmatch(r"-?[0-9]{1,6}", text) else None
    if value is None:
        key = text.upper().replace("-", "_")
        aliases = {"PLAYBACK": "PLAYBACK_FILE_BOARD", "STREAMING": "STREAMING_BOARD"}
        key = aliases.get(key, key)
        member = ids.__members__.get(key) or ids.__members__.get(key + "_BOARD")
        if member is None:
            names = sorted(m.name.lower().removesuffix("_board") for m in ids)
            raise SourceSpecError(f"no BrainFlow {what} {text!r}; BrainFlow {ids.__name__} has: {', '.join(names)}")
        value = int(member.value)
    elif value not in {int(m.value) for m in ids}:
        raise SourceSpecError(f"no BrainFlow {what} with id {value}; see BoardIds (e.g. -1 synthetic, 0 cyton)")
    if value == STREAMING_BOARD_ID:
        raise SourceSpecError(
            f"BrainFlow's STREAMING_BOARD is refused as a {what}: it receives over network multicast. "
            "Use a board directly (brainflow:cyton?serial_port=...) or replay a file (brainflow:playback?file=...)"
        )
    return value


class BrainFlowSource(Source):
    """A BrainFlow board, prepared and streaming from construction until :meth:`close`."""

    kind = "brainflow"
    live = True  # a board (also a playback board) delivers in real time

    def __init__(
        self, board: str | int, *, options: Mapping[str, str] | None = None, channels: Sequence[str] | None = None
    ) -> None:
        bf = _brainflow()
        self.board_id = board_id(board)
        params = bf.BrainFlowInputParams()
        master: int | None = None
        for key, value in (options or {}).items():
            if key not in PARAMS:
                raise SourceSpecError(f"unknown BrainFlow option {key!r}; valid: {', '.join(sorted(PARAMS))}")
            if key == "master_board":
                master = board_id(value, what="master board")
                params.master_board = master
            elif PARAMS[key] is int:
                try:
                    setattr(params, key, int(value))
                except ValueError:
                    raise SourceSpecError(f"BrainFlow option {key} must be an integer, got {value!r}") from None
            else:
                setattr(params, key, value)
        if self.board_id == PLAYBACK_BOARD_ID and (master is None or not params.file):
            raise SourceSpecError(
                "brainflow:playback needs the recorded file and the board that recorded it: "
                "brainflow:playback?file=PATH&master_board=synthetic"
            )
        describe = master if self.board_id == PLAYBACK_BOARD_ID and master is not None else self.board_id
        shim = bf.BoardShim
        shim.disable_board_logger()
        try:
            rows = list(shim.get_eeg_channels(describe))
            names = list(shim.get_eeg_names(describe))
        except bf.BrainFlowError as exc:
            raise SourceError(f"BrainFlow board {board!r} describes no EEG channels: {exc}") from None
        try:
            self._package_row: int | None = int(shim.get_package_num_channel(describe))
        except bf.BrainFlowError:
            self._package_row = None
        self._timestamp_row = int(shim.get_timestamp_channel(describe))
        if len(names) != len(rows):
            names = [f"EEG{i + 1}" for i in range(len(rows))]
        picked = select_channels(names, channels, what=f"BrainFlow board {board!r}")
        self._rows = [rows[i] for i in picked]
        self._playback = self.board_id == PLAYBACK_BOARD_ID
        rate = float(shim.get_sampling_rate(describe))
        label = bf.BoardIds(self.board_id).name.lower()
        super().__init__(
            name=f"brainflow:{label}",
            labels=[names[i] for i in picked],
            rate_hz=rate,
            description=f"BrainFlow {label}, {len(picked)} EEG channel(s), {rate:g} Hz",
        )
        self._shim: Any = shim(self.board_id, params)
        try:
            self._shim.prepare_session()
            self._shim.start_stream(max(45000, int(rate * 60)))
        except bf.BrainFlowError as exc:
            try:
                self._release()
            finally:
                self._shim = None
                self._closed = True
            raise SourceError(f"BrainFlow board {label} did not start: {exc}") from None

    def _release(self) -> None:
        bf = _brainflow()
        try:
            if self._shim.is_prepared():
                try:
                    self._shim.stop_stream()
                except bf.BrainFlowError:
                    pass  # never started
                self._shim.release_session()
        except bf.BrainFlowError as exc:
            raise SourceError(f"BrainFlow board did not release: {exc}") from None

    def blocks(self) -> Iterator[Block]:
        last_ts: float | None = None
        last_package: int | None = None
        idle_since = time.monotonic()
        bf = _brainflow()
        while not self.closed:
            try:
                data = self._shim.get_board_data()
            except bf.BrainFlowError as exc:
                raise SourceError(f"{self.name}: the board stopped: {exc}") from None
            if data.shape[1] == 0:
                if time.monotonic() - idle_since > (PLAYBACK_END_S if self._playback else STALL_S):
                    if not self._playback:
                        raise SourceError(f"{self.name}: no sample for {STALL_S:g} s: the board stopped sending")
                    return  # a playback file ended
                time.sleep(POLL_S)
                continue
            idle_since = time.monotonic()
            samples = np.ascontiguousarray(data[self._rows], dtype=np.float64)
            stamps = np.asarray(data[self._timestamp_row], dtype=np.float64)
            if self._package_row is None:
                yield from split_at_gaps(samples, stamps, self.rate_hz, last_ts)
            else:
                packages = data[self._package_row].astype(np.int64)
                steps = np.diff(packages) % 256
                cuts = (np.flatnonzero(steps != 1) + 1).tolist()
                first_gap = last_package is not None and (int(packages[0]) - last_package) % 256 != 1
                bounds = [0, *cuts, packages.size]
                for i in range(len(bounds) - 1):
                    a, b = bounds[i], bounds[i + 1]
                    yield Block(samples[:, a:b], stamps[a:b], gap_before=first_gap if i == 0 else True)
                last_package = int(packages[-1])
            last_ts = float(stamps[-1])

    def close(self) -> None:
        if not self.closed:
            super().close()
            try:
                self._release()
            finally:
                # BrainFlow keys sessions by (board id, parameters) and BoardShim.__del__ releases whatever
                # session has that key: drop the object now, while no later session can share it
                self._shim = None
