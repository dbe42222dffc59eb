"""The fuzzing harness shared by the hypothesis property tests and the atheris entry points.

One *target* per parser or state machine that takes outside bytes. A target knows a few
valid inputs, how to mutate them with awareness of their structure (fields, integer fields
and interesting values, alternates such as low-order X25519 points), and an *oracle*
(:meth:`Target.run`) that feeds one input and checks, for every input:

* only the exceptions the code documents for that entry point are raised (the specific
  ``CortexError`` subclasses; anything else - ``ValueError``, ``IndexError``,
  ``struct.error``, ``RecursionError``, a warning under ``-W error`` - propagates and fails
  the run);
* what is accepted is exactly what a model of the format says is acceptable (where the
  format allows such a model: sizes, known hashes, freshness, low-order points,
  authenticated bytes);
* a refused input changes nothing (or exactly what is documented: a v1 handshake that fails
  is terminal and purges its keys; a frame whose tag fails compromises a session whose
  ``compromise_on_auth_failure`` is on) and leaves no secure buffer behind; the entry point
  still accepts the next valid input.

``tests/test_fuzz_*.py`` drive the targets with hypothesis (:func:`plans`, 10,000 examples
each in CI); ``fuzz/fuzz_<target>.py`` drive them with atheris (:func:`main`), decoding the
fuzzer's bytes into the same :class:`Plan` (:func:`decode_plan`). A violation raises
:class:`OracleViolation` (an ``AssertionError``).

The package is split by library layer, each module holding its targets and importing only the
layer it fuzzes and those below:

* :mod:`fuzzlib.plan` - plans, their decoder and the mutations (shared, no ``cortex_sal``);
* :mod:`fuzzlib.oracle` - the oracle's tools and the :class:`Target` base class (shared);
* :mod:`fuzzlib.crypto`, :mod:`fuzzlib.keros`, :mod:`fuzzlib.sal`, :mod:`fuzzlib.governance` -
  the targets of each layer (``securemem`` has none: its API takes Python values, not outside
  bytes, and ``tests/test_fuzz_securemem.py`` fuzzes its arguments with hypothesis alone).

This module holds the registry (:data:`TARGETS`), the atheris driver (:func:`main`) and the
tests' :class:`TargetCache`, and re-exports the names the tests use.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from fuzzlib.crypto import AeadOpenTarget, Ed25519VerifyTarget, HmacVerifyTarget, X25519PeerTarget
from fuzzlib.governance import BundleTarget, NodeRegistryTarget
from fuzzlib.keros import (
    CertificateTarget,
    CertificationTarget,
    FrameTarget,
    GatewayAckTarget,
    GatewayHelloTarget,
    NoiseHandshakeTarget,
    NoiseTransportTarget,
    RecordStreamTarget,
    RevocationListTarget,
    SensorTeeHelloTarget,
    V1MessageTarget,
    _IndependentFrames,
    cut,
    oracle_records,
    predict_frame,
    read_records,
    wire_record,
)
from fuzzlib.oracle import OracleViolation, Target, c_public, live_slots, paused_gc, refusal, require
from fuzzlib.plan import Mutation, Plan, Spec, decode_plan, message, mutate, plans
from fuzzlib.sal import (
    ClinicalOpenTarget,
    ResearchPayloadTarget,
    RouterBatchTarget,
    RouterTarget,
    ShieldFrameTarget,
    ShieldRawTarget,
)
from fuzzlib.store import AuditDbTarget, AuditJsonlTarget, CliLoaderTarget, RegistryFileTarget

__all__ = [
    "PENDING",
    "TARGETS",
    "Mutation",
    "OracleViolation",
    "Plan",
    "Spec",
    "Target",
    "TargetCache",
    "_IndependentFrames",
    "c_public",
    "cut",
    "decode_plan",
    "live_slots",
    "main",
    "message",
    "mutate",
    "oracle_records",
    "paused_gc",
    "plans",
    "predict_frame",
    "read_records",
    "refusal",
    "require",
    "wire_record",
]

TARGETS: dict[str, Callable[[], Target]] = {
    "v1_hello": lambda: V1MessageTarget("hello"),
    "v1_tee_hello": lambda: V1MessageTarget("tee_hello"),
    "v1_ack": lambda: V1MessageTarget("ack"),
    "gateway_hello": GatewayHelloTarget,
    "gateway_ack": GatewayAckTarget,
    "sensor_tee_hello": SensorTeeHelloTarget,
    "frames_lenient": lambda: FrameTarget(lenient=True),
    "frames_strict": lambda: FrameTarget(lenient=False),
    "sensor_registry": RegistryFileTarget,
    "certification": CertificationTarget,
    "router": RouterTarget,
    "router_batch": RouterBatchTarget,
    "research_payload": ResearchPayloadTarget,
    "shield_frame": ShieldFrameTarget,
    "shield_raw": lambda: ShieldRawTarget(batch=False),
    "shield_batch": lambda: ShieldRawTarget(batch=True),
    "clinical": ClinicalOpenTarget,
    "bundle": BundleTarget,
    "node_registry": NodeRegistryTarget,
    "cli_node": lambda: CliLoaderTarget("node"),
    "cli_proposal": lambda: CliLoaderTarget("proposal"),
    "cli_signature": lambda: CliLoaderTarget("signature"),
    "audit_jsonl": AuditJsonlTarget,
    "audit_db": AuditDbTarget,
    "x25519_peer": X25519PeerTarget,
    "ed25519_verify": Ed25519VerifyTarget,
    "aead_decrypt": AeadOpenTarget,
    "hmac_verify": HmacVerifyTarget,
    "records": RecordStreamTarget,
    "certificate": CertificateTarget,
    "noise_handshake": NoiseHandshakeTarget,
    "noise_transport": NoiseTransportTarget,
    "revocation_list": RevocationListTarget,
}

# Entry points that take outside input and have no target yet, each with the reason (checked
# 2026-12-01; fuzz/README.md lists them too). A name here must not be in TARGETS.
PENDING: dict[str, str] = {
    "noise_hello": "GatewayV2.receive_sensor_hello (message 1): docs/protocol.md gives its size (32 bytes) and "
    "says a v1 hello is refused before anything changes, but not what any other size gives (refused "
    "unchanged, or FAILED); the rule goes into the document before an oracle is written from it",
    "ca_files": "store.keros.load_root / load_ca / load_identity / load_trust (RootCA.from_json, key and "
    "certificate files of a CA directory): files an operator writes, covered by the plain refusals of "
    "tests/test_ca_cli.py; a target in fuzzlib/store.py is not written yet",
}


def main(name: str) -> None:
    """The atheris entry point of target ``name`` (see fuzz/README.md).

    ``--replay FILE...`` decodes each file into its plan, prints the plan and runs it once
    (with a full traceback), for turning a crash into a regression test.
    """
    if "--replay" in sys.argv:
        files = sys.argv[sys.argv.index("--replay") + 1 :]
        target = TARGETS[name]()
        for path in files:
            plan = decode_plan(Path(path).read_bytes())
            print(f"{path}: {plan!r}")
            print("outcome:", target(plan))
        return

    import atheris

    target = TARGETS[name]()

    def one_input(data: bytes) -> None:
        target(decode_plan(data))

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


class TargetCache:
    """A test module's targets, each built on first use and closed together at the end
    (``target = TargetCache()``; ``target(name)``; a module fixture calls ``target.close()``)."""

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}

    def __call__(self, name: str) -> Target:
        if name not in self._targets:
            self._targets[name] = TARGETS[name]()
        return self._targets[name]

    def close(self) -> None:
        for t in self._targets.values():
            t.close()
        self._targets.clear()
