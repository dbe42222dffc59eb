"""What the store, CLI and gateway tests share (imported by name: ``tests/`` is on ``sys.path``).

* governance: the docs' five nodes in three jurisdictions and :func:`enacted_bundle`, a real bundle
  enacted by five fresh Ed25519 keys;
* the gateway: :func:`grant` (the wearers' consent through the durable ledger), :func:`trust`
  and :func:`start_gateway` over a ``pki`` directory made by ``cortex-sal ca`` (each gateway test
  file makes its own, with the identities it needs).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cortex_sal.crypto.ed25519 import Ed25519SigningKey
from cortex_sal.gateway.server import Gateway, GatewayLimits
from cortex_sal.governance import DEFAULT_THRESHOLDS, DecisionType, Proposal, enact, sign_proposal
from cortex_sal.governance.quorum import EnactedBundle, GovernanceNode, NodeRegistry
from cortex_sal.keros.certificate import TrustStore
from cortex_sal.store.base import subject_of
from cortex_sal.store.keros import load_identity, load_trust
from cortex_sal.store.runtime import durable_ledger
from cortex_sal.store.sqlite import SqliteStore

CITATION = "Doe et al. 2024, J Neural Eng 21:036001"
# (directory, institution, jurisdiction): 5 nodes in 3 jurisdictions, as in docs/governance.md
NODES = [
    ("charite", "Charite Berlin", "DE"),
    ("tum", "TU Munich", "DE"),
    ("aphp", "AP-HP Paris", "FR"),
    ("inserm", "Inserm Lyon", "FR"),
    ("karolinska", "Karolinska Institutet", "SE"),
]
MODEL = "eeg_fp1_certified_v1"


def signed_proposal(
    content: dict[str, object], now: float | None = None
) -> tuple[Proposal, list[object], NodeRegistry, float]:
    """A clinical threshold proposal made at ``now - 10`` and signed by five fresh nodes (keys purged)."""
    when = time.time() if now is None else now
    keys = [Ed25519SigningKey.generate() for _ in range(5)]
    nodes = [
        GovernanceNode(k.public_key(), f"inst {i}", j)
        for i, (k, j) in enumerate(zip(keys, "DE DE FR FR SE".split(), strict=True))
    ]
    registry = NodeRegistry(nodes)
    proposal = Proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, content, (CITATION,), nodes[0].node_id, when - 10)
    sigs: list[object] = [sign_proposal(proposal, k, node) for k, node in zip(keys, nodes, strict=True)]
    for k in keys:
        k.purge()
    return proposal, sigs, registry, when


def enacted_bundle(content: dict[str, object], now: float | None = None) -> tuple[EnactedBundle, NodeRegistry, float]:
    """A bundle enacted at ``now`` (default: the time now) by the five signatures of :func:`signed_proposal`."""
    proposal, sigs, registry, when = signed_proposal(content, now)
    return enact(proposal, sigs, registry, now=when, enacted_digests=set()), registry, when  # type: ignore[arg-type]


def grant(data_dir: Path, *serials: str) -> None:
    with SqliteStore(data_dir) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        for serial in serials:
            ledger.grant(subject_of(f"{MODEL}/{serial}"), ["biometric"], 3600, app="test-app", purpose="tests")


def make_pki(
    d: Path, serials: tuple[str, ...] = ("SN-0001", "SN-0002", "SN-0003"), *, others: tuple[tuple[str, str], ...] = ()
) -> Path:
    """Two CAs, a gateway and sensors (``serials`` of :data:`MODEL`, and ``(model, serial)`` of
    ``others``, each in ``sensors/<serial lowercased>``), made by ``cortex-sal ca`` as in docs/certificates.md."""
    from cortex_sal.cli import main

    def ca(*args: str) -> None:
        assert main(["ca", *args]) == 0, args

    ca("init", "--kind", "manufacturer", "--name", "NeuroStandard GmbH", "--out", str(d / "ca/maker"))
    ca("init", "--kind", "site", "--name", "Ward 3", "--out", str(d / "ca/site"))
    for model, serial in [(MODEL, s) for s in serials] + list(others):
        ca("issue-sensor", "--ca", str(d / "ca/maker"), "--model", model, "--serial", serial, "--days", "30",
           "--out", str(d / f"sensors/{serial.lower()}"))  # fmt: skip
    ca("issue-gateway", "--ca", str(d / "ca/site"), "--name", "gw-ward3", "--days", "30", "--out", str(d / "gw"))
    return d


def cli_argv(*args: str) -> list[str]:
    """``cortex-sal ARGS`` as a child process of this interpreter, warnings as errors."""
    return [sys.executable, "-W", "error", "-m", "cortex_sal.cli", *args]


def trust(pki: Path) -> TrustStore:
    return load_trust(pki / "ca/maker", pki / "ca/site")


async def start_gateway(pki: Path, data_dir: Path, **limits: object) -> Gateway:
    """A gateway on 127.0.0.1:0 over ``data_dir``; its static key is ``gw._test_key`` (the test purges it)."""
    key, cert = load_identity(pki / "gw")
    store = SqliteStore(data_dir, exclusive=True)
    gw = Gateway(store=store, static_key=key, certificate=cert, trust=trust(pki),
                 limits=GatewayLimits(**limits))  # type: ignore[arg-type]  # fmt: skip
    gw._test_key = key  # type: ignore[attr-defined]
    await gw.start()
    return gw
