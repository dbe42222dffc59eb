"""Typed results of :class:`~cortex_sal.sal.shield.CognitiveShield` (docs/sal.md "Results").

Every result is a frozen, slotted dataclass:

* :class:`Released` - a frame that went through the whole pipeline: only the obfuscated
  five-value tensor and what may be said about it (coherency, label, capacity, ...);
* :class:`Refused` - a frame or a sensor the shield turned away: a :class:`RefusalReason`
  and a human-readable ``detail`` that never carries a secret, a sample or a key;
* :class:`Registered` - a sensor admitted (by ``register_sensor`` or ``attach_sensor``);
* :class:`CustodyReport` and :class:`DestroyReport` - the session keys issued and purged.

The rule for refuse-vs-raise (the same in every method of the shield):

* a **caller's programming error** - an argument of the wrong type or shape, samples that
  are not finite, a sensor id never registered (or whose session was destroyed), an object
  that is not a channel or a certificate, a closed channel - **raises** a specific
  :class:`~cortex_sal.errors.CortexError` and changes nothing;
* a **data-driven outcome about a frame or a sensor** - bytes off the wire that are broken,
  tampered, replayed or arrive on an expired channel, a sensor the registry does not
  certify or that is already registered, a failed handshake, the bridge bounds, the drift
  block, consent no longer active - is **returned** as a :class:`Refused`.

``processing_time_ms`` is measured, so it is left out of equality: two results that say
the same thing compare equal (``tensor`` is compared by identity, as numpy arrays are).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "CustodyReport",
    "DestroyReport",
    "FrameResult",
    "RefusalReason",
    "Refused",
    "RegisterResult",
    "Registered",
    "Released",
]


class RefusalReason(StrEnum):
    """Why the shield refused a frame or a sensor: one member per cause."""

    FRAME_FORMAT = "frame_format"
    """The message has the wrong size for one raw frame on this channel, or a malformed header
    (``FrameFormatError``)."""
    FRAME_AUTH = "frame_auth"
    """The message does not decrypt: tampered, or of another key (``FrameAuthError``)."""
    REPLAY = "replay"
    """The message's sequence number was already accepted, or is older (``ReplayAttackError``)."""
    CHANNEL_EXPIRED = "channel_expired"
    """The sensor's channel is closed, compromised, past its lifetime or out of sequence
    numbers (``SessionExpiredError``): the sensor must re-handshake."""
    CHANNEL_ERROR = "channel_error"
    """Any other refusal of the sensor's channel (a ``SensorBusError``, e.g. a v2 ``ProtocolError``)."""
    NON_FINITE = "non_finite"
    """The frame the channel opened holds a NaN or an infinite sample: no feature is computed from it.
    The channel itself is sound (the frame was authentic and in sequence)."""
    NOT_CERTIFIED = "not_certified"
    """The sensor registry refused the sensor: unknown model, revoked, or below the minima
    (SNR, bits) of the policy in force (``SensorNotCertifiedError``)."""
    ALREADY_REGISTERED = "already_registered"
    """The sensor is already registered in this session."""
    HANDSHAKE_FAILED = "handshake_failed"
    """The in-process KEROS v1 handshake of ``register_sensor`` failed."""
    DRIFT_BLOCKED = "drift_blocked"
    """The sensor's drift detector blocked it (for good, until the session is destroyed)."""
    BRIDGE_BOUNDS = "bridge_bounds"
    """The frame's features are outside the bridge bounds (std, p75, peak)."""
    CONSENT_INACTIVE = "consent_inactive"
    """Consent is no longer active for the sensor (revoked by drift, expired, capacity NONE)."""
    OUT_OF_RANGE = "out_of_range"
    """A channel holds a sample beyond +/-10,000 uV (10 mV): no scalp EEG is that large (``sal.quality``)."""
    FLAT_LINE = "flat_line"
    """A channel is flat (peak-to-peak <= 0.01 uV): a disconnected electrode or a dead input."""
    SATURATED = "saturated"
    """A channel sits at its maximum or minimum for 16 samples or more: the amplifier at its rail."""
    CHANNEL_COUNT = "channel_count"
    """The samples carry another number of channels than the sensor's model declares."""
    RATE_MISMATCH = "rate_mismatch"
    """The samples are declared at another rate than the frames' 128 Hz (resample at the source)."""


_EMPTY: Mapping[str, RefusalReason] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Released:
    """A frame that went through the whole pipeline and may leave the shield."""

    coherency_index: float
    state_label: str
    liveness_proven: bool
    capacity: str
    tensor: np.ndarray[Any, Any]
    """The obfuscated Phase B tensor, the only thing derived from the samples that leaves: shape (5,)
    for a one-channel model (as before multi-channel), (R, 5) for a model of C > 1 channels, one row
    per released channel (R <= C, in channel order, labelled by ``channels``)."""
    tensor_norm: float
    research_payload: bytes | None
    """The router's 41-byte research payload, or ``None`` when the router has none for the frame."""
    processing_time_ms: float = field(default=0.0, compare=False)
    channels: tuple[str, ...] = ()
    """The electrode labels of the released rows, in the tensor's row order (docs/sal.md "Multi-channel")."""
    channel_coherency: tuple[float, ...] = ()
    """The coherency of each released channel (``coherency_index`` is their mean)."""
    channel_states: tuple[str, ...] = ()
    """The state label of each released channel (``state_label`` is the label of the mean)."""
    refused_channels: Mapping[str, RefusalReason] = field(default_factory=lambda: _EMPTY)
    """Label -> reason of each channel of the frame that released nothing (bad samples, bridge)."""

    @property
    def consent_active(self) -> bool:
        """Always true: a frame is released only while consent is active."""
        return True


@dataclass(frozen=True, slots=True)
class Refused:
    """A frame or a sensor the shield refused, and why."""

    reason: RefusalReason
    detail: str
    """Human-readable: which bound, which error; never a secret, a sample or a key."""
    state_label: str | None = None
    """The frame's label when the refusal came after labelling (consent), else ``None``."""
    consent_active: bool = False
    """Whether consent is still active for the sensor (``False`` for a sensor refused at registration)."""
    processing_time_ms: float = field(default=0.0, compare=False)
    refused_channels: Mapping[str, RefusalReason] = field(default_factory=lambda: _EMPTY)
    """For a frame refused because no channel passed: label -> reason of each channel."""


@dataclass(frozen=True, slots=True)
class Registered:
    """A sensor admitted to the session."""

    sensor_id: str
    """The id to pass to ``ingest_frame`` / ``ingest_raw_data``."""
    log_id: str
    """The first 8 bytes of SHA-256(sensor id) in hex: the sensor's name in the session log."""
    session: str | None = None
    """The first 8 bytes of the v1 session id in hex (``register_sensor``); ``None`` for an attached channel."""


@dataclass(frozen=True, slots=True)
class CustodyReport:
    """Sessions and keys so far. Keys of v1 sessions count one by one; the keys of an
    attached channel are the channel's own and count as purged once it is closed."""

    sessions_opened: int
    sessions_closed: int
    keys_purged: int
    keys_total: int
    channels_attached: int
    channels_closed: int


@dataclass(frozen=True, slots=True)
class DestroyReport:
    """What ``destroy_session`` closed (``sessions_closed``: by this call) and the key counts after it."""

    sessions_closed: int
    keys_purged: int
    keys_total: int
    channels_attached: int
    channels_closed: int


FrameResult = Released | Refused
"""What ``ingest_frame``, ``ingest_raw_data`` and each row of ``ingest_batch`` return."""
RegisterResult = Registered | Refused
"""What ``register_sensor`` and ``attach_sensor`` return."""
