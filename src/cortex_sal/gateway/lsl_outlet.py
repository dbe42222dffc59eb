"""An LSL outlet of released features, for lab tools that speak LSL (opt-in: ``--lsl-outlet``).

LSL has no authentication and no encryption (sccn/lsl_archived#246, sccn/liblsl#130): whoever
reaches the outlet reads it. So it carries only what the applications' API would give an app:
the released, obfuscated features, and only for wearers who granted the application id
:data:`LSL_APP` (``cortex-sal consent grant --app lsl --scopes biometric ...``); a sensor without
that consent gets no outlet, and when the consent ends (revoked, expired, capacity NONE) its outlet
is destroyed at the next frame or poll. Never a sample.

One outlet per sensor: name ``cortex-sal features <id>``, type ``Features``, source id ``<id>``
(the sensor's pairwise id for :data:`LSL_APP`: not the sensor's identifier, and not the id any API
application sees), ``5 * C + 1`` float32 channels, ``<label>_<mean|std|p25|p75|max>`` for each of
the model's C channels and ``coherency``, nominal rate 0.5 Hz (one frame per 2 s); a channel the
shield refused in a frame is NaN in that sample. The description holds the model, the pseudonym and
the units (``obfuscated``).

liblsl runs on the machine scope only (:func:`cortex_sal.sources.lsl.use_machine_scope`: no
multicast to the site network, discovery answered on 127.0.0.1). Its data and time servers bind
the wildcard address whatever the configuration says (liblsl ``tcp_server.cpp``): a lab tool on
another host can connect to the outlet's port; firewall it if that is not wanted.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..sources.base import require
from ..sources.lsl import use_machine_scope

log = logging.getLogger("cortex_sal.gateway.lsl")

__all__ = ["LSL_APP", "LslOutlets"]

LSL_APP = "lsl"
FEATURES = ("mean", "std", "p25", "p75", "max")


class LslOutlets:
    """The outlets of one gateway; the gateway calls :meth:`deliver` for every released frame."""

    def __init__(self, gateway: Any) -> None:
        use_machine_scope()
        self._lsl = require("pylsl", "lsl")
        self.gateway = gateway
        self._outlets: dict[str, tuple[Any, tuple[str, ...]]] = {}  # subject -> (outlet, the model's labels)
        self.pushed = 0

    def _active(self, subject: str) -> bool:
        return bool(self.gateway.shield.consent.is_active(subject, "biometric", LSL_APP))

    def deliver(self, subject: str, result: Any, model_id: str, labels: tuple[str, ...]) -> None:
        if not self._active(subject):
            self._drop(subject, "no consent for the LSL outlet")
            return
        held = self._outlets.get(subject)
        if held is None or held[1] != labels:
            held = self._open(subject, model_id, labels)
        outlet, _ = held
        sample = np.full(5 * len(labels) + 1, math.nan, dtype=np.float32)
        rows = np.atleast_2d(np.asarray(result.tensor, dtype=np.float32))
        index = {label: i for i, label in enumerate(labels)}
        for row, label in zip(rows, result.channels, strict=True):
            i = index.get(label)
            if i is not None:
                sample[5 * i : 5 * i + 5] = row
        sample[-1] = float(result.coherency_index)
        outlet.push_sample(sample.tolist())
        self.pushed += 1

    def _open(self, subject: str, model_id: str, labels: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
        self._drop(subject, "the sensor's model changed")
        pseudonym = self.gateway.store.pairwise_id(LSL_APP, subject)
        lsl = self._lsl
        info = lsl.StreamInfo(f"cortex-sal features {pseudonym}", "Features", 5 * len(labels) + 1, 0.5, "float32",
                              pseudonym)  # fmt: skip
        info.set_channel_labels([f"{label}_{f}" for label in labels for f in FEATURES] + ["coherency"])
        info.set_channel_units(["obfuscated"] * (5 * len(labels) + 1))
        desc = info.desc()
        desc.append_child_value("pseudonym", pseudonym)
        desc.append_child_value("model", model_id)
        desc.append_child_value("content", "released, obfuscated features only (cortex-sal docs/api.md)")
        outlet = lsl.StreamOutlet(info)
        self._outlets[subject] = (outlet, labels)
        log.info("LSL outlet opened for sensor %s", pseudonym)
        return outlet, labels

    def _drop(self, subject: str, why: str) -> None:
        held = self._outlets.pop(subject, None)
        if held is not None:
            del held  # the outlet object is the last reference: liblsl destroys it (its servers close)
            log.info("LSL outlet of a sensor closed: %s", why)

    def recheck(self) -> None:
        """Destroy the outlets whose wearer's consent for the LSL outlet ended."""
        for subject in list(self._outlets):
            if not self._active(subject):
                self._drop(subject, "consent ended")

    @property
    def outlets(self) -> int:
        return len(self._outlets)

    def close(self) -> None:
        for subject in list(self._outlets):
            self._drop(subject, "the gateway is stopping")
