"""``CognitiveShield``: the orchestrator of the SAL pipeline (SYSTEM.md "Shield pipeline").

Per frame: raw samples in locked memory -> Phase A features -> bridge bounds -> coherency
and state label -> LIMES liveness -> Phase B obfuscation -> drift (CDI) -> ETHOS consent ->
router. Only the obfuscated five-value tensor leaves, and only while consent is active.
Raw samples are zeroed the moment the frame is processed; every session key is purged by
``destroy_session()``. The session log holds truncated hashes, never a raw identifier or
sample.

Results are typed (:mod:`cortex_sal.sal.results`): :class:`Released`, :class:`Refused` with a
:class:`RefusalReason`, :class:`Registered`, :class:`CustodyReport`, :class:`DestroyReport`.
A caller's programming error (wrong type or shape, an unregistered sensor, a closed channel)
raises a specific :class:`~cortex_sal.errors.CortexError`; a data-driven outcome about a frame
or a sensor (a broken or hostile frame, a sensor the registry refuses, the bridge, drift or
consent gate) is a returned :class:`Refused`. The seed's dict-shaped results live only at the
seed's edge (:mod:`cortex_sal.sal.seed`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import (
    CortexError,
    FrameAuthError,
    FrameFormatError,
    InvalidArgumentError,
    ReplayAttackError,
    SensorBusError,
    SensorNotCertifiedError,
    SessionExpiredError,
    ShieldError,
    WrongTypeError,
)
from ..governance import DEFAULT_THRESHOLDS, ClinicalThresholds, truncated_hash
from ..governance.policy import AppliedBundle, PolicyInForce
from ..governance.quorum import EnactedBundle, NodeRegistry, apply_bundle
from ..keros import SecureBusSession, SensorRegistry, establish_in_process
from ..keros.certificate import VerifiedCertificate
from ..keros.channel import Channel, check_channel
from ..keros.registry import FRAME_RATE_HZ, MAX_CHANNELS, SensorModel
from ..securemem import SecureKeyBuffer, SecureTensorBuffer
from .consent import ANY_APP, DEFAULT_APP, ConsentLedger
from .drift import DriftDetector
from .features import (
    bridge_check,
    bridge_check_batch,
    coherency,
    coherency_batch,
    phase_a,
    phase_a_batch,
    phase_a_channels,
    spectral_bins,
    spectral_bins_batch,
    state_label,
    state_label_batch,
)
from .frame import SAMPLES_PER_FRAME, RawBiometricFrame, sample_array
from .liveness import LivenessProver
from .obfuscation import obfuscate, obfuscate_batch, obfuscate_channels
from .quality import channel_faults, fault_detail
from .results import (
    CustodyReport,
    DestroyReport,
    FrameResult,
    RefusalReason,
    Refused,
    Registered,
    RegisterResult,
    Released,
)
from .router import TelemetryRouter

log = logging.getLogger("cortex_sal.sal")

# when no channel of a frame passes, the frame's reason is the first of these its channels have
_PRECEDENCE = (
    RefusalReason.NON_FINITE,
    RefusalReason.OUT_OF_RANGE,
    RefusalReason.FLAT_LINE,
    RefusalReason.SATURATED,
    RefusalReason.BRIDGE_BOUNDS,
)

SESSION_LOG_LIMIT = 10_000  # the newest entries of the session log; older ones are dropped
LOG_ID_HEX = 16  # the session log keeps the first 8 bytes of SHA-256(sensor id), in hex
_ALREADY_REGISTERED = "sensor is already registered in this session"

# the refusal reason of each error a channel raises for a frame (most specific first)
_CHANNEL_REFUSALS: tuple[tuple[type[SensorBusError], RefusalReason], ...] = (
    (FrameFormatError, RefusalReason.FRAME_FORMAT),
    (FrameAuthError, RefusalReason.FRAME_AUTH),
    (ReplayAttackError, RefusalReason.REPLAY),
    (SessionExpiredError, RefusalReason.CHANNEL_EXPIRED),
)


def _channel_refusal(exc: SensorBusError) -> RefusalReason:
    for cls, reason in _CHANNEL_REFUSALS:
        if isinstance(exc, cls):
            return reason
    return RefusalReason.CHANNEL_ERROR


@dataclass(eq=False)
class _Sensor:
    sensor_id: str
    id_hash: bytes
    log_id: str
    gateway: Channel  # the shield's end: a v1 session (register_sensor) or any channel (attach_sensor)
    endpoint: SecureBusSession | None  # the sensor's side, for in-process sensors (demo, tests)
    drift: DriftDetector
    model: SensorModel
    frame_seq: int = 0
    blocked: bool = False
    keys: list[SecureKeyBuffer] = field(default_factory=list)


class CognitiveShield:
    """Registers sensors, runs the pipeline on their frames, destroys sessions on demand."""

    def __init__(
        self,
        *,
        thresholds: ClinicalThresholds | None = None,
        registry: SensorRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        gateway_id: str = "cortex-sal-gateway",
        consent_scopes: Sequence[str] = ("biometric",),
        policy: PolicyInForce | None = None,
        consent: ConsentLedger | None = None,
        audit: Callable[..., object] | None = None,
    ) -> None:
        """``thresholds``: any policy object, for tests and benchmarks; a deployment passes
        ``policy`` instead (the verified policy in force read back from the store, which says
        which bundle put it in force), never both. ``consent``: the wearer's consent ledger (the
        store's, durable); without it the shield keeps its own, granting ``consent_scopes`` to
        each sensor it registers and revoking them when the session is destroyed. ``audit``: called
        as ``audit(event, **details)`` for every sensor admitted or refused (the store's audit
        chain; the details are pseudonymous)."""
        if policy is not None:
            if not isinstance(policy, PolicyInForce):
                raise WrongTypeError(f"policy must be a PolicyInForce, got {type(policy).__name__}")
            if thresholds is not None:
                raise InvalidArgumentError("give the policy in force or thresholds, not both")
            thresholds = policy.thresholds
        elif thresholds is None:
            thresholds = DEFAULT_THRESHOLDS
        if not isinstance(thresholds, ClinicalThresholds):
            raise WrongTypeError(f"thresholds must be ClinicalThresholds, got {type(thresholds).__name__}")
        if consent is not None and not isinstance(consent, ConsentLedger):
            raise WrongTypeError(f"consent must be a ConsentLedger, got {type(consent).__name__}")
        self._thresholds = thresholds
        self._policy = policy if policy is not None else PolicyInForce(thresholds)
        self._applied_digests: set[bytes] = set(self._policy.applied_digests)
        if registry is None:
            registry = SensorRegistry.default()  # a fresh copy: the minima below are this shield's
            registry.min_snr_db = float(thresholds.min_snr_db)
            registry.min_bits = int(thresholds.min_bits)
        self.registry = registry
        self._clock = clock
        self._gateway_id = gateway_id
        self._scopes = tuple(consent_scopes)
        self._sensors: dict[str, _Sensor] = {}
        self._salt = SecureKeyBuffer()  # Phase B key, rotated by destroy_session()
        self._liveness = LivenessProver(thresholds=thresholds, clock=clock)
        self._owns_consent = consent is None
        if audit is not None and not callable(audit):
            raise WrongTypeError(f"audit must be callable, got {type(audit).__name__}")
        self._audit = audit
        self._consent = ConsentLedger(thresholds=thresholds, clock=clock) if consent is None else consent
        self._consent_app: str | None = DEFAULT_APP if consent is None else ANY_APP
        self._router = TelemetryRouter(clock=clock)
        self._work = SecureTensorBuffer((SAMPLES_PER_FRAME,), np.float64)  # normalised samples
        self._works: dict[int, SecureTensorBuffer] = {}  # (C, 256) work buffers of multi-channel models
        self._log: deque[dict[str, Any]] = deque(maxlen=SESSION_LOG_LIMIT)  # bounded: a gateway runs for months
        self._issued_keys: list[SecureKeyBuffer] = []
        self._attached: list[Channel] = []  # channels of attach_sensor: their keys are the channel's own
        self._detached = (0, 0)  # (channels, of which closed) already detached: counted, not kept
        self.sessions_opened = 0
        self.sessions_closed = 0

    # -- the policy in force ---------------------------------------------------------

    @property
    def thresholds(self) -> ClinicalThresholds:
        """The clinical thresholds in force (read-only: only :meth:`apply_policy` replaces them)."""
        return self._thresholds

    @property
    def consent(self) -> ConsentLedger:
        """The consent ledger the shield asks on every frame (the store's durable one, or its own)."""
        return self._consent

    @property
    def policy(self) -> PolicyInForce:
        """The policy in force and the bundles that put it in force (``origin``; ``None``: the defaults
        or thresholds given at construction)."""
        return self._policy

    def apply_policy(
        self, bundle: EnactedBundle, registry: NodeRegistry, *, now: float | None = None
    ) -> ClinicalThresholds:
        """Verify an enacted clinical threshold bundle against ``registry`` and put it in force.

        The shield checks the bundle itself (:func:`~cortex_sal.governance.quorum.apply_bundle`:
        quorum, distinct active signers, jurisdictions, validity window at ``now``, default the
        shield's clock) and refuses a bundle it has already applied. All-or-nothing: the new
        policy is fully built before anything changes; on any failure the shield keeps the
        policy it had. On success the thresholds, the sensor registry's minima (``min_snr_db``,
        ``min_bits``), the drift detectors of the sensors already registered and the liveness
        and consent lifetimes all follow the new policy for every frame from then on (a frame
        already being processed finishes under the policy it started with).
        """
        when = self._clock.time() if now is None else now
        new = apply_bundle(self._thresholds, bundle, registry, when, enacted_digests=self._applied_digests)
        digest = bundle.proposal.digest()
        # ``new`` is a validated ClinicalThresholds: none of the setters below can refuse it
        self._applied_digests.add(digest)
        self._thresholds = new
        applied = AppliedBundle(bundle, registry, float(when), new)
        self._policy = PolicyInForce(new, (*self._policy.history, applied))
        self.registry.min_snr_db = float(new.min_snr_db)
        self.registry.min_bits = int(new.min_bits)
        for state in self._sensors.values():
            state.drift.apply_thresholds(new)
        self._liveness.set_ttl(new.liveness_ttl_s)
        self._consent.set_ttl(new.consent_ttl_s)
        self._log.append({"event": "policy_applied", "proposal": digest.hex()[:LOG_ID_HEX]})
        return new

    # -- registration ----------------------------------------------------------------

    def register_sensor(self, sensor_id: str, snr: float, bits: int) -> RegisterResult:
        """Admit the sensor and run a real v1 handshake (both sides, in process).

        :class:`Registered`, or :class:`Refused` with ``ALREADY_REGISTERED``, ``NOT_CERTIFIED``
        (unknown model, revoked, SNR or bits below the minima) or ``HANDSHAKE_FAILED``. A
        ``sensor_id`` that is not a non-empty ``str`` raises ``WrongTypeError``."""
        if not isinstance(sensor_id, str) or not sensor_id:
            raise WrongTypeError(f"sensor_id must be a non-empty str, got {type(sensor_id).__name__}")
        return self._audited(sensor_id, self._register(sensor_id, snr, bits))

    def _register(self, sensor_id: str, snr: float, bits: int) -> RegisterResult:
        if sensor_id in self._sensors:
            return Refused(RefusalReason.ALREADY_REGISTERED, _ALREADY_REGISTERED)
        try:
            model = self.registry.admit(sensor_id, snr_db=snr, bits=bits)
        except SensorNotCertifiedError as exc:
            return Refused(RefusalReason.NOT_CERTIFIED, str(exc))
        try:
            endpoint, gateway_session = establish_in_process(
                sensor_id, self._gateway_id, registry=self.registry, sensor_ids=[sensor_id], clock=self._clock
            )
        except CortexError as exc:
            return Refused(RefusalReason.HANDSHAKE_FAILED, f"handshake failed: {exc}")
        state = self._add_sensor(sensor_id, gateway_session, endpoint, model)
        for session in (gateway_session, endpoint):
            state.keys += session.owned_keys()
        self._issued_keys += state.keys
        return Registered(sensor_id, state.log_id, gateway_session.session_id.hex()[:16])

    def attach_sensor(self, channel: Channel, peer: VerifiedCertificate) -> RegisterResult:
        """Attach a sensor whose channel was established elsewhere (the gateway's KEROS v2 handshake).

        ``peer`` is the sensor's verified certificate (``GatewayV2.peer``); its ``MODEL/SERIAL``
        is the sensor's id, and the shield's own registry must admit it (model known, capability
        minima of the policy in force, not revoked). The shield takes ownership of ``channel``:
        a refusal (past the type checks) closes it, and :meth:`destroy_session` purges it. Returns
        :class:`Registered` (its ``sensor_id`` is the id for :meth:`ingest_frame`), or :class:`Refused`
        with ``ALREADY_REGISTERED`` or ``NOT_CERTIFIED``. Not a channel, not a sensor's certificate
        or a closed channel raise (``WrongTypeError``, ``InvalidArgumentError``).
        """
        channel = check_channel(channel)
        if not isinstance(peer, VerifiedCertificate):
            raise WrongTypeError(f"peer must be a sensor's VerifiedCertificate, got {type(peer).__name__}")
        sensor_id = peer.sensor_id  # MODEL/SERIAL; None for a gateway's certificate
        if sensor_id is None:
            raise InvalidArgumentError(f"peer must be a sensor's certificate, got a {peer.kind.name.lower()}'s")
        if not channel.is_open:
            raise InvalidArgumentError("the channel is closed: attach an established channel")
        return self._audited(sensor_id, self._attach(sensor_id, channel))

    def _attach(self, sensor_id: str, channel: Channel) -> RegisterResult:
        if sensor_id in self._sensors:
            channel.close()
            return Refused(RefusalReason.ALREADY_REGISTERED, _ALREADY_REGISTERED)
        try:
            model = self.registry.admit(sensor_id)
        except SensorNotCertifiedError as exc:
            channel.close()
            return Refused(RefusalReason.NOT_CERTIFIED, str(exc))
        state = self._add_sensor(sensor_id, channel, None, model)
        self._attached.append(channel)
        return Registered(sensor_id, state.log_id)

    def _audited(self, sensor_id: str, result: RegisterResult) -> RegisterResult:
        """Audit an admission or a refusal (pseudonymous) when the shield has an audit sink.

        If the entry cannot be written, an admitted sensor is detached again (its channel closed)
        and the error propagates: no admission the audit trail does not record."""
        if self._audit is None:
            return result
        subject = truncated_hash(sensor_id)  # the pseudonym the log, the store and the gateway use
        try:
            if isinstance(result, Registered):
                self._audit("sensor_admitted", subject_hash=subject, model=sensor_id.split("/", 1)[0][:64])
            else:
                self._audit("sensor_refused", subject_hash=subject, reason=result.reason.value)
        except CortexError:
            state = self._sensors.pop(sensor_id, None) if isinstance(result, Registered) else None
            if state is not None:
                state.gateway.close()
                if state.endpoint is not None:
                    state.endpoint.close()
                self.sessions_closed += 1
            raise
        return result

    def _add_sensor(
        self, sensor_id: str, channel: Channel, endpoint: SecureBusSession | None, model: SensorModel
    ) -> _Sensor:
        id_hash = hashlib.sha256(sensor_id.encode("utf-8")).digest()
        state = _Sensor(
            sensor_id=sensor_id,
            id_hash=id_hash,
            log_id=id_hash.hex()[:LOG_ID_HEX],
            gateway=channel,
            endpoint=endpoint,
            drift=DriftDetector(thresholds=self._thresholds, clock=self._clock),
            model=model,
        )
        self.sessions_opened += 1
        self._sensors[sensor_id] = state
        if self._owns_consent:
            self._consent.grant(state.log_id, self._scopes)
        self._log.append({"event": "registered", "sensor": state.log_id})
        return state

    def detach_sensor(self, sensor_id: str) -> bool:
        """End one sensor's session: close its channel (every key of it purged) and forget it.

        What a gateway does when the sensor's connection ends. Returns ``False`` for a sensor not
        registered (already detached, or never); the session stays counted in the custody report."""
        state = self._sensors.pop(sensor_id, None) if isinstance(sensor_id, str) else None
        if state is None:
            return False
        state.gateway.close()
        if state.endpoint is not None:
            state.endpoint.close()
        self.sessions_closed += 1
        if any(c is state.gateway for c in self._attached):
            self._attached = [c for c in self._attached if c is not state.gateway]
            self._detached = (self._detached[0] + 1, self._detached[1] + (not state.gateway.is_open))
        self._log.append({"event": "detached", "sensor": state.log_id})
        return True

    def sensor_endpoint(self, sensor_id: str) -> SecureBusSession:
        """The sensor side of a registered sensor's session (for in-process sensors)."""
        endpoint = self._sensor(sensor_id).endpoint
        if endpoint is None:
            raise ShieldError("this sensor was attached with a channel of its own: it has no in-process endpoint")
        return endpoint

    def _sensor(self, sensor_id: str) -> _Sensor:
        state = self._sensors.get(sensor_id) if isinstance(sensor_id, str) else None
        if state is None:
            raise ShieldError("unknown sensor: register it first (or the session was destroyed)")
        return state

    # -- ingestion -------------------------------------------------------------------

    def ingest_frame(self, sensor_id: str, frame: bytes) -> FrameResult:
        """Decrypt an encrypted frame straight into locked memory and run the pipeline.

        The frame holds the sensor model's C channels (``C x 1024`` payload bytes). :class:`Released`,
        or :class:`Refused`: the channel's refusal of the message (``FRAME_FORMAT`` - also for a frame
        of another channel count, the detail naming the count expected -, ``FRAME_AUTH``, ``REPLAY``,
        ``CHANNEL_EXPIRED``, ``CHANNEL_ERROR``; the detail names the error class), ``NON_FINITE``
        for a frame that opened but none of whose channels is finite, or a gate of the pipeline (see
        :meth:`_process`). A ``frame`` that is not ``bytes`` raises ``WrongTypeError``, an unknown
        sensor ``ShieldError``."""
        state = self._sensor(sensor_id)
        if not isinstance(frame, bytes):
            raise WrongTypeError(f"frame must be bytes, got {type(frame).__name__}")
        started = time.perf_counter()
        channels = state.model.channels
        try:
            raw = RawBiometricFrame.from_channel(state.gateway, frame, channels)
        except SensorBusError as exc:
            self._log.append({"event": "frame_refused", "sensor": state.log_id, "error": type(exc).__name__})
            return Refused(
                _channel_refusal(exc),
                f"{type(exc).__name__}: {exc}",
                consent_active=self._consent.is_active(state.log_id, "biometric", self._consent_app),
                processing_time_ms=_elapsed_ms(started),
            )
        with raw:
            view = raw.channels_view
            result: FrameResult
            try:
                # bytes off a wire: refused, not raised; a frame none of whose channels is finite never
                # reaches the pipeline (one channel: the rule of the one-channel frame, unchanged)
                if not np.isfinite(view).all(axis=1).any():
                    refused = {label: RefusalReason.NON_FINITE for label in state.model.labels}
                    result = self._refuse(
                        state, RefusalReason.NON_FINITE, "a NaN or infinite sample", started, refused=refused
                    )
                else:
                    result = self._process(state, view, started)
            finally:
                del view  # no view of the locked samples may outlive the frame: its slot would be retired
        return result

    def ingest_raw_data(self, sensor_id: str, raw: npt.ArrayLike, *, rate_hz: float | None = None) -> FrameResult:
        """The seed's entry: one frame of raw samples, copied once into locked memory.

        ``raw`` is 256 samples (a one-channel model) or ``(C, 256)`` (C channels, channel-major).
        Samples that are not a finite numeric array of that shape raise ``InvalidArgumentError`` (the
        caller's own array, not bytes off a wire), except that a well-formed frame of another channel
        count than the sensor's model is refused (``CHANNEL_COUNT``), and so is one declared at a
        ``rate_hz`` other than the frames' 128 Hz (``RATE_MISMATCH``: resample at the source). The
        result is as :meth:`ingest_frame`'s."""
        state = self._sensor(sensor_id)
        started = time.perf_counter()
        arr = sample_array(raw)
        n = 1 if arr.shape == (SAMPLES_PER_FRAME,) else arr.shape[0] if arr.ndim == 2 else 0
        if not 1 <= n <= MAX_CHANNELS or arr.shape[-1] != SAMPLES_PER_FRAME:
            raise InvalidArgumentError(
                f"a frame holds {SAMPLES_PER_FRAME} samples per channel ((256,) or (channels, 256)), "
                f"got shape {arr.shape}"
            )
        if arr.dtype.kind not in "iuf":
            raise InvalidArgumentError(f"raw samples must be numeric, got dtype {arr.dtype}")
        rate = None if rate_hz is None else _rate(rate_hz)
        model = state.model
        if n != model.channels or (rate is not None and rate != FRAME_RATE_HZ):
            state.frame_seq += 1
            if n != model.channels:
                detail = f"the model {model.model_id!r} has {model.channels} channel(s), the frame {n}"
                return self._refuse(state, RefusalReason.CHANNEL_COUNT, detail, started)
            detail = f"frames are {FRAME_RATE_HZ:g} Hz, these samples {rate:g} Hz (resample at the source)"
            return self._refuse(state, RefusalReason.RATE_MISMATCH, detail, started)
        with RawBiometricFrame.from_samples(arr) as frame:
            return self._process(state, frame.channels_view, started)

    def _process(self, state: _Sensor, samples: np.ndarray[Any, Any], started: float) -> FrameResult:
        """The pipeline of one frame of ``(C, 256)`` samples: refused with ``DRIFT_BLOCKED``, a
        bad-sample reason (``NON_FINITE``, ``OUT_OF_RANGE``, ``FLAT_LINE``, ``SATURATED``) or
        ``BRIDGE_BOUNDS`` when no channel passes, or ``CONSENT_INACTIVE``; else released."""
        t = self._thresholds  # read once: a frame sees one policy, even if apply_policy runs meanwhile
        state.frame_seq += 1
        if state.blocked:
            return self._refuse(state, RefusalReason.DRIFT_BLOCKED, "drift: sensor blocked", started)
        faults = channel_faults(samples)
        if samples.shape[0] == 1:
            return self._process_one(state, samples[0], faults[0], t, started)
        return self._process_many(state, samples, faults, t, started)

    def _process_one(
        self,
        state: _Sensor,
        samples: np.ndarray[Any, Any],
        fault: RefusalReason | None,
        t: ClinicalThresholds,
        started: float,
    ) -> FrameResult:
        """One channel: the design's pipeline, exactly as before multi-channel (tensor (5,))."""
        label0 = state.model.labels[0]
        if fault is not None:
            return self._refuse(state, fault, fault_detail(fault), started, refused={label0: fault})
        work = self._work.array
        try:
            features = phase_a(samples, work)
        finally:
            work[...] = 0.0
        bins = spectral_bins(samples)
        reason = bridge_check(features, t)
        if reason is not None:
            return self._refuse(
                state, RefusalReason.BRIDGE_BOUNDS, f"bridge: {reason}", started,
                refused={label0: RefusalReason.BRIDGE_BOUNDS},
            )  # fmt: skip
        c = coherency(features)
        label = state_label(c, t)
        gate = self._gate(state, features, c, label, started)
        if isinstance(gate, Refused):
            return gate
        live, capacity = gate
        tensor = obfuscate(features, state.id_hash, self._salt)
        routed = self._router.ingest_from_bridge(
            {
                "features": tensor,
                "coherency": c,
                "polyvagal_state": label,
                "timestamp": self._clock.time(),
                "frame_seq": state.frame_seq,
                "sensor_id_hash": state.log_id,
                "spectral_bins": bins,
            }
        )
        norm = float(np.linalg.norm(tensor))
        return self._release(
            state, c, label, live, capacity, tensor, norm, routed.get("research_payload"), started,
            channels=(label0,), channel_coherency=(c,), channel_states=(label,),
        )  # fmt: skip

    def _process_many(
        self,
        state: _Sensor,
        samples: np.ndarray[Any, Any],
        faults: list[RefusalReason | None],
        t: ClinicalThresholds,
        started: float,
    ) -> FrameResult:
        """C > 1 channels (docs/sal.md "Multi-channel"): Phase A, bridge, coherency and labels per
        channel, vectorised across channels; a channel with bad samples or past the bridge releases
        nothing and is named; liveness and drift run once per frame over the mean of the channels
        that passed; Phase B keys each row by its channel."""
        labels = state.model.labels
        refused: dict[str, RefusalReason] = {labels[i]: f for i, f in enumerate(faults) if f is not None}
        notes = [f"{labels[i]} {f.value}" for i, f in enumerate(faults) if f is not None]
        ok = np.array([f is None for f in faults], dtype=bool)
        if not ok.any():
            return self._refuse_all(state, refused, notes, started)
        work = self._work_for(samples.shape).array
        features, bins = phase_a_channels(samples, work, ok)  # zeroes work on return
        rows = np.flatnonzero(ok)
        bridge = bridge_check_batch(features[rows], t)
        passed: list[int] = []
        for i, why in zip(rows.tolist(), bridge, strict=True):
            if why is None:
                passed.append(i)
            else:
                refused[labels[i]] = RefusalReason.BRIDGE_BOUNDS
                notes.append(f"{labels[i]} bridge ({why})")
        if not passed:
            return self._refuse_all(state, refused, notes, started)
        kept = features[passed]
        coh = coherency_batch(kept)
        states = state_label_batch(coh, t)
        c = math.fsum(coh.tolist()) / len(passed)
        label = state_label(c, t)
        gate = self._gate(state, kept.mean(axis=0), c, label, started, refused=refused)
        if isinstance(gate, Refused):
            return gate
        live, capacity = gate
        tensor = obfuscate_channels(kept, state.id_hash, self._salt, passed)
        routed = self._router.ingest_from_bridge(
            {
                "features": tensor.mean(axis=0),
                "coherency": c,
                "polyvagal_state": label,
                "timestamp": self._clock.time(),
                "frame_seq": state.frame_seq,
                "sensor_id_hash": state.log_id,
                "spectral_bins": bins[passed].mean(axis=0),
            }
        )
        bins[...] = 0.0
        norm = float(np.linalg.norm(tensor))
        return self._release(
            state, c, label, live, capacity, tensor, norm, routed.get("research_payload"), started,
            channels=tuple(labels[i] for i in passed), channel_coherency=tuple(coh.tolist()),
            channel_states=tuple(states), refused_channels=refused,
        )  # fmt: skip

    def _refuse_all(
        self, state: _Sensor, refused: dict[str, RefusalReason], notes: list[str], started: float
    ) -> Refused:
        """No channel of the frame passed: refused with the first reason of ``_PRECEDENCE`` present."""
        reason = next(r for r in _PRECEDENCE if r in refused.values())
        return self._refuse(state, reason, "no channel passed: " + ", ".join(notes), started, refused=refused)

    def _work_for(self, shape: tuple[int, ...]) -> SecureTensorBuffer:
        """The locked (C, 256) float64 work buffer of a channel count (one per count, reused)."""
        buf = self._works.get(shape[0])
        if buf is None:
            buf = self._works[shape[0]] = SecureTensorBuffer(shape, np.float64)
        return buf

    def _gate(
        self,
        state: _Sensor,
        features: np.ndarray[Any, Any],
        c: float,
        label: str,
        started: float,
        refused: dict[str, RefusalReason] | None = None,
        live: bool | None = None,
    ) -> tuple[bool, str] | Refused:
        """Liveness (unless the batch path proved it already: ``live``), drift and consent for one
        frame past the bridge: ``(liveness, capacity)``, or the refusal when consent is no longer active."""
        if live is None:
            live = self._liveness.verify(features, self._liveness.prove(features))
        drift = state.drift.update(c)
        state.blocked = drift.blocked
        self._consent.report_capacity(state.log_id, drift.capacity)
        if not self._consent.is_active(state.log_id, "biometric", self._consent_app):
            return self._refuse(
                state,
                RefusalReason.CONSENT_INACTIVE,
                f"consent not active (capacity {drift.capacity})",
                started,
                label=label,
                refused=refused,
            )
        return live, drift.capacity

    def _release(
        self,
        state: _Sensor,
        c: float,
        label: str,
        live: bool,
        capacity: str,
        tensor: np.ndarray[Any, Any],
        norm: float,
        research_payload: bytes | None,
        started: float,
        *,
        channels: tuple[str, ...],
        channel_coherency: tuple[float, ...],
        channel_states: tuple[str, ...],
        refused_channels: dict[str, RefusalReason] | None = None,
    ) -> Released:
        """Log a released frame (truncated hash and label only) and build its result."""
        self._log.append({"event": "frame", "sensor": state.log_id, "seq": state.frame_seq, "state": label})
        return Released(
            c, label, live, capacity, tensor, norm, research_payload, _elapsed_ms(started),
            channels=channels, channel_coherency=channel_coherency, channel_states=channel_states,
            refused_channels=MappingProxyType(dict(refused_channels or {})),
        )  # fmt: skip

    def _refuse(
        self,
        state: _Sensor,
        reason: RefusalReason,
        detail: str,
        started: float,
        label: str | None = None,
        refused: dict[str, RefusalReason] | None = None,
    ) -> Refused:
        self._log.append({"event": "refused", "sensor": state.log_id, "seq": state.frame_seq, "reason": detail})
        active = self._consent.is_active(state.log_id, "biometric", self._consent_app)
        return Refused(
            reason, detail, label, active, _elapsed_ms(started), refused_channels=MappingProxyType(dict(refused or {}))
        )

    # -- batch -----------------------------------------------------------------------

    def ingest_batch(self, sensor_ids: Sequence[str], raw: npt.ArrayLike) -> list[FrameResult]:
        """Many sensors at once: row i of ``raw`` (n, 256) is one frame of ``sensor_ids[i]``.

        Phase A, spectral bins, bridge, coherency, labels and Phase B run vectorised along
        the sensor axis with the same rule functions as the single path (``features``'
        ``*_batch``); the per-sensor state (drift, consent, liveness, router) is updated
        row by row. Results equal the single path's, row for row (the bad-sample rules included).
        The batch is for one-channel sensors (the many-sensor fan-in): a sensor whose model has more
        channels raises ``InvalidArgumentError`` (give its frames to :meth:`ingest_raw_data`).
        """
        if isinstance(sensor_ids, str) or not isinstance(sensor_ids, Iterable):
            raise WrongTypeError(f"sensor_ids must be a sequence of sensor ids, got {type(sensor_ids).__name__}")
        states = [self._sensor(s) for s in sensor_ids]
        if len({id(s) for s in states}) != len(states):
            raise InvalidArgumentError("a batch holds at most one frame per sensor")
        wide = next((s.model for s in states if s.model.channels != 1), None)
        if wide is not None:
            raise InvalidArgumentError(
                f"ingest_batch takes one-channel sensors; model {wide.model_id!r} has {wide.channels} channels "
                "(give its frames to ingest_raw_data or ingest_frame)"
            )
        arr = sample_array(raw)
        if arr.shape != (len(states), SAMPLES_PER_FRAME):
            raise InvalidArgumentError(f"batch must have shape ({len(states)}, {SAMPLES_PER_FRAME}), got {arr.shape}")
        if arr.dtype.kind not in "iuf":  # as the single path (RawBiometricFrame.from_samples)
            raise InvalidArgumentError(f"raw samples must be numeric, got dtype {arr.dtype}")
        started = time.perf_counter()
        t = self._thresholds  # read once: a frame sees one policy, even if apply_policy runs meanwhile
        with SecureTensorBuffer(arr.shape, np.float32) as buffer:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused just below
                np.copyto(buffer.array, arr, casting="unsafe")
            if not np.isfinite(buffer.array).all():
                raise InvalidArgumentError(
                    "raw samples must be finite (NaN or infinity found, or a value beyond float32)"
                )
            faults = channel_faults(buffer.array)
            features = phase_a_batch(buffer.array)
            bins = spectral_bins_batch(buffer.array)
        tensors = obfuscate_batch(features, [s.id_hash for s in states], self._salt)
        bridge = bridge_check_batch(features, t)
        coh = coherency_batch(features)
        labels = state_label_batch(coh, t)
        norms = np.sqrt(np.einsum("ij,ij->i", tensors, tensors))
        results: list[FrameResult | None] = [None] * len(states)
        released: list[tuple[int, bool, str]] = []
        # the rows that reach the gate (each sensor once per batch, so known before the loop):
        # their liveness proofs made and checked in one pass
        gated = [i for i, s in enumerate(states) if not s.blocked and faults[i] is None and bridge[i] is None]
        live_of = dict(zip(gated, self._liveness.prove_and_verify_batch(features[gated]), strict=True))
        for i, state in enumerate(states):
            state.frame_seq += 1
            if state.blocked:
                results[i] = self._refuse(state, RefusalReason.DRIFT_BLOCKED, "drift: sensor blocked", started)
                continue
            label0 = state.model.labels[0]
            fault = faults[i]
            if fault is not None:
                results[i] = self._refuse(state, fault, fault_detail(fault), started, refused={label0: fault})
                continue
            reason = bridge[i]
            if reason is not None:
                results[i] = self._refuse(
                    state, RefusalReason.BRIDGE_BOUNDS, f"bridge: {reason}", started,
                    refused={label0: RefusalReason.BRIDGE_BOUNDS},
                )  # fmt: skip
                continue
            gate = self._gate(state, features[i], float(coh[i]), labels[i], started, live=live_of[i])
            if isinstance(gate, Refused):
                results[i] = gate
                continue
            released.append((i, *gate))
        if released:
            rows = [i for i, _, _ in released]
            routed = self._router.ingest_batch(
                tensors[rows],
                coh[rows],
                [labels[i] for i in rows],
                self._clock.time(),
                [states[i].frame_seq for i in rows],
                [states[i].log_id for i in rows],
                bins[rows],
            )
            for (i, live, capacity), route in zip(released, routed, strict=True):
                results[i] = self._release(
                    states[i], float(coh[i]), labels[i], live, capacity, tensors[i], float(norms[i]),
                    route.get("research_payload"), started, channels=(states[i].model.labels[0],),
                    channel_coherency=(float(coh[i]),), channel_states=(labels[i],),
                )  # fmt: skip
        return [r for r in results if r is not None]

    # -- the end -----------------------------------------------------------------------

    def destroy_session(self) -> DestroyReport:
        """Rotate the salt, revoke consent, clear the log, purge every session key."""
        closed = 0
        for state in self._sensors.values():
            state.gateway.close()
            if state.endpoint is not None:
                state.endpoint.close()
            closed += 1
        self.sessions_closed += closed
        self._sensors.clear()
        if self._owns_consent:  # the store's ledger is the wearer's: it outlives the session
            self._consent.revoke_all("session destroyed")
        self._router.clear()
        self._log.clear()
        self._liveness.rotate()
        self._salt.secure_purge()
        self._salt = SecureKeyBuffer()
        return DestroyReport(closed, *self._key_counts())

    def close(self) -> None:
        """Destroy the session and purge the shield's own secrets (salt, LIMES master, work buffer)."""
        self.destroy_session()
        self._salt.secure_purge()
        self._liveness.purge()
        self._work.secure_purge()
        for buf in self._works.values():
            buf.secure_purge()
        self._works.clear()

    def __enter__(self) -> CognitiveShield:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- introspection -----------------------------------------------------------------

    @property
    def session_log(self) -> list[dict[str, Any]]:
        """A copy of the log (its newest :data:`SESSION_LOG_LIMIT` entries): truncated hashes and labels only."""
        return [dict(entry) for entry in self._log]

    def custody_report(self) -> CustodyReport:
        """Sessions opened and closed so far, and the session keys issued and purged."""
        return CustodyReport(self.sessions_opened, self.sessions_closed, *self._key_counts())

    def _key_counts(self) -> tuple[int, int, int, int]:
        """``(keys_purged, keys_total, channels_attached, channels_closed)``: v1 sessions' keys one
        by one; an attached channel's keys count as purged once the channel is closed (closing
        purges all of them)."""
        return (
            sum(k.is_purged for k in self._issued_keys),
            len(self._issued_keys),
            self._detached[0] + len(self._attached),
            self._detached[1] + sum(not c.is_open for c in self._attached),
        )


def _rate(rate_hz: object) -> float:
    """A declared sample rate: a finite real > 0 (not a bool), else a specific error."""
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, int | float):
        raise WrongTypeError(f"rate_hz must be a real number of Hz, got {type(rate_hz).__name__}")
    rate = float(rate_hz)
    if not math.isfinite(rate) or rate <= 0:
        raise InvalidArgumentError(f"rate_hz must be finite and > 0, got {rate_hz!r}")
    return rate


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
