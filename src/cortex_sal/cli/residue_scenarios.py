"""Residue rows of the command line's own code paths (keys generated, stored, loaded, used).

They live here, not in :mod:`cortex_sal.testing.scenarios`, because they run ``cortex-sal``
itself and ``testing`` sits below ``cli``: each :class:`Scenario` names this module as its
``registry``, and the harness's child process imports it to find the child side.
"""

from __future__ import annotations

import hashlib
import os
import time

from ..testing.child import Context
from ..testing.residue import Peer
from ..testing.scenarios import V2_MODEL, Scenario

# -- governance: a node key generated, stored, loaded, used to sign ------------------------


def _ed25519_expanded(seed: bytes) -> dict[str, bytes]:
    expanded = bytearray(hashlib.sha512(seed).digest())  # RFC 8032 5.1.5: scalar || prefix
    expanded[0] &= 248
    expanded[31] &= 127
    expanded[31] |= 64
    return {"scalar": bytes(expanded[:32]), "prefix": bytes(expanded[32:])}


def _governance_parent(peer: Peer) -> None:
    key_dir = peer.receive().decode()
    with open(os.path.join(key_dir, "seed.key"), "rb") as fh:  # the secret at rest, read by the test
        seed = fh.read()
    expanded = _ed25519_expanded(seed)
    peer.know(node_seed=seed, node_scalar=expanded["scalar"], node_prefix=expanded["prefix"])
    peer.checkpoint("after_keygen", session_live=False)
    peer.checkpoint("signing", session_live=True)
    peer.checkpoint("after_sign", session_live=False)


def _governance_child(ctx: Context) -> None:
    import tempfile
    from pathlib import Path

    from ..crypto import Ed25519SigningKey
    from ..store.governance import SEED_FILE, load_seed

    with tempfile.TemporaryDirectory() as tmp:
        keys, proposal = Path(tmp) / "node", Path(tmp) / "proposal.json"
        _cortex_sal("governance", "keygen", "--institution", "Residue Institute", "--jurisdiction", "DE",
                    "--out", str(keys))  # fmt: skip
        ctx.send_public(str(keys).encode())
        ctx.checkpoint("after_keygen")
        with load_seed(keys / SEED_FILE) as seed, Ed25519SigningKey(seed) as key:
            key.sign(b"a proposal digest")
            ctx.checkpoint("signing")
        _cortex_sal("governance", "propose", "--type", "clinical_threshold_change", "--set", "bridge_max_std=0.45",
                    "--cite", "Doe et al. 2024", "--proposer", str(keys), "--out", str(proposal))  # fmt: skip
        _cortex_sal("governance", "sign", str(proposal), "--key", str(keys), "--out", str(Path(tmp) / "sig.json"))
        ctx.checkpoint("after_sign")


# -- the CA tool: a CA key and a sensor's static key generated, stored and loaded -----------


def _ca_keys_parent(peer: Peer) -> None:
    root = peer.receive().decode()
    with open(os.path.join(root, "ca", "ca.key"), "rb") as fh:  # the secrets at rest, read by the test
        ca_seed = fh.read()
    with open(os.path.join(root, "sensor", "static.key"), "rb") as fh:
        static = fh.read()
    expanded = _ed25519_expanded(ca_seed)
    peer.know(ca_seed=ca_seed, ca_scalar=expanded["scalar"], ca_prefix=expanded["prefix"], sensor_static=static)
    peer.checkpoint("after_issue", session_live=False)
    peer.checkpoint("loaded", session_live=True)
    peer.checkpoint("after_purge", session_live=False)


def _ca_keys_child(ctx: Context) -> None:
    import tempfile
    from pathlib import Path

    from ..store.keros import load_ca, load_identity

    with tempfile.TemporaryDirectory() as tmp:
        ca, sensor = Path(tmp) / "ca", Path(tmp) / "sensor"
        _cortex_sal("ca", "init", "--kind", "manufacturer", "--name", "Residue Devices", "--out", str(ca))
        _cortex_sal("ca", "issue-sensor", "--ca", str(ca), "--model", V2_MODEL, "--serial", "SN-1", "--days", "1",
                    "--out", str(sensor))  # fmt: skip
        ctx.send_public(tmp.encode())
        ctx.checkpoint("after_issue")
        authority = load_ca(ca)
        static, _certificate = load_identity(sensor)
        authority.revocation_list(["SN-1"], issued_at=int(time.time()))  # a signature with the loaded key
        ctx.checkpoint("loaded")
        authority.purge()
        static.purge()
        ctx.checkpoint("after_purge")


def _cortex_sal(*argv: str) -> None:
    """The command line's own code path, its output kept off the child's protocol stdout."""
    import contextlib
    import io

    from . import main

    with contextlib.redirect_stdout(io.StringIO()) as out:
        if main(list(argv)) != 0:
            raise RuntimeError(f"cortex-sal {' '.join(argv[:2])} failed: {out.getvalue()}")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("governance_node_key", _governance_parent, _governance_child, registry=__name__),
        Scenario("ca_keys", _ca_keys_parent, _ca_keys_child, registry=__name__),
    ]
}

__all__ = ["SCENARIOS"]
