"""Lab Streaming Layer inlets through the optional pylsl: ``pip install 'cortex-sal[lsl]'``.

**Machine scope, always.** liblsl's default discovery multicasts to the site network (scope
``site``: 239.255.172.215, TTL 24, and IPv6 groups). Before pylsl is first imported,
:func:`use_machine_scope` points the ``LSLAPICFG`` environment variable at the configuration file
shipped in this package (``lsl_machine.cfg``): ``[ports] IPv6 = disable``, ``[multicast]
ResolveScope = machine`` with ``MachineAddresses = {127.0.0.1}``, ``ListenAddress = 127.0.0.1``
and ``TTLOverride = 0``, ``[lab] KnownPeers = {127.0.0.1}``. liblsl reads its configuration once
per process, at first use, and ``LSLAPICFG`` takes precedence over every other file and over
``lsl_set_config_filename`` (liblsl ``src/api_config.cpp``, ``api_config::api_config``). Queries
then go to 127.0.0.1 only, nothing joins a multicast group, and an outlet's discovery responder
listens on 127.0.0.1. (An outlet's TCP data server and UDP time server bind the wildcard address
whatever the configuration says: liblsl ``tcp_server.cpp``, ``socket_utils.cpp``. This source
only reads; the tests run their outlets in a network namespace of their own.)

The function refuses (:class:`SourceError`) when ``LSLAPICFG`` already names another file, or when
pylsl is already imported without it: liblsl may then have read another configuration, and a
second one is never read in the same process.

A stream is resolved by ``name``, ``type`` or ``source_id`` (one of them) within ``timeout``
seconds; its labels and units come from the stream's description (``desc/channels/channel``),
``ch1``.. and microvolts when absent. Timestamps are in this machine's clock (the inlet's
``time_correction()`` added); a jump of more than 1.5 sample periods is a gap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import Block, Source, require, select_channels, split_at_gaps, unit_scale

__all__ = ["MACHINE_CONFIG", "LslSource", "use_machine_scope"]

MACHINE_CONFIG = Path(__file__).with_name("lsl_machine.cfg")
PROPS = ("name", "type", "source_id")
CHUNK = 1024


def use_machine_scope() -> Path:
    """Point ``LSLAPICFG`` at the machine-scope configuration; call before pylsl is imported."""
    path = str(MACHINE_CONFIG)
    current = os.environ.get("LSLAPICFG")
    if current is not None and os.path.realpath(current) != os.path.realpath(path):
        raise SourceError(
            f"LSLAPICFG names another liblsl configuration ({current!r}): cortex-sal uses LSL only on the "
            f"machine scope ({path}); unset LSLAPICFG or point it there"
        )
    if current is None and "pylsl" in sys.modules:
        raise SourceError(
            "pylsl was imported before cortex_sal.sources.lsl.use_machine_scope(): liblsl may already have read "
            "its default configuration (site-wide multicast). Call use_machine_scope() before importing pylsl"
        )
    if not MACHINE_CONFIG.is_file():
        raise SourceError(f"the machine-scope liblsl configuration is missing from the package: {path}")
    os.environ["LSLAPICFG"] = path
    return MACHINE_CONFIG


def _pylsl() -> Any:
    use_machine_scope()
    return require("pylsl", "lsl")


class LslSource(Source):
    """One LSL stream, resolved by ``prop`` (name, type or source_id) equal to ``value``."""

    kind = "lsl"
    live = True

    def __init__(self, prop: str, value: str, *, timeout: float = 5.0, channels: Sequence[str] | None = None) -> None:
        if prop not in PROPS:
            raise SourceError(f"an LSL stream is resolved by one of {', '.join(PROPS)}, not {prop!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
            raise SourceError(f"the LSL resolve timeout must be from 0 to 600 seconds, got {timeout!r}")
        pylsl = _pylsl()
        found = pylsl.resolve_byprop(prop, value, 1, float(timeout))
        if not found:
            raise SourceError(f"no LSL stream with {prop}={value!r} on this machine within {timeout:g} s")
        info = found[0]
        rate = float(info.nominal_srate())
        what = f"LSL stream {info.name()!r}"
        if rate <= 0:
            raise SourceError(f"{what} has an irregular rate (nominal_srate 0): only regular EEG streams are framed")
        if info.channel_format() in (pylsl.cf_string, getattr(pylsl, "cf_undefined", 0)):
            raise SourceError(f"{what} is not numeric")
        inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False)
        try:
            full = inlet.info(timeout=float(timeout))
            count = int(full.channel_count())
            labels = full.get_channel_labels() or []
            units = full.get_channel_units() or []
            labels = [str(x) if x else f"ch{i + 1}" for i, x in enumerate(labels)] or [
                f"ch{i + 1}" for i in range(count)
            ]
            units = [str(u) if u else "" for u in units] or [""] * count
            if len(labels) != count or len(units) != count:
                raise SourceError(f"{what} describes {len(labels)} channels but carries {count}")
            self._picked = select_channels(labels, channels, what=what)
            scales = [unit_scale(units[i], what=f"{what} channel {labels[i]!r}") for i in self._picked]
            self._scale = np.array(scales)[:, None]
            inlet.open_stream(timeout=float(timeout))
            self._offset = float(inlet.time_correction(timeout=float(timeout)))
        except pylsl.util.TimeoutError:
            inlet.close_stream()
            raise SourceError(f"{what} did not answer within {timeout:g} s") from None
        except BaseException:
            inlet.close_stream()
            raise
        self._inlet: Any = inlet
        self._timeout = float(timeout)
        self._pylsl = pylsl
        super().__init__(
            name=f"lsl:{info.name()}",
            labels=[labels[i] for i in self._picked],
            rate_hz=rate,
            description=f"LSL stream {info.name()} ({info.type()}), {len(self._picked)} channel(s), {rate:g} Hz",
        )

    def blocks(self) -> Iterator[Block]:
        last: float | None = None
        while not self.closed:
            try:
                data, stamps = self._inlet.pull_chunk(timeout=0.2, max_samples=CHUNK)
            except self._pylsl.util.LostError:
                raise SourceError(f"{self.name}: the stream was lost (its outlet closed or went away)") from None
            if len(stamps) == 0:
                continue
            samples = np.asarray(data, dtype=np.float64).T[self._picked] * self._scale
            ts = np.asarray(stamps, dtype=np.float64) + self._offset
            yield from split_at_gaps(samples, ts, self.rate_hz, last)
            last = float(ts[-1])

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._inlet.close_stream()
            self._inlet = None
