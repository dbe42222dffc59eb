"""Governance state at rest: node keys, node registries, proposals, signatures, bundles.

Formats (all JSON written as RFC 8785 canonical JSON, read strictly):

* a node key directory: ``node.json`` (:meth:`GovernanceNode.to_dict`: node id, public key,
  institution, jurisdiction, active) and ``seed.key`` (mode 0600: the 32 raw bytes of the Ed25519
  seed). A key file on disk is outside the custody promise of the secure arena (locked,
  dump-excluded memory): whoever can read the file can sign as the node. Keep it on an encrypted
  volume or token;
* ``registry.json``: :meth:`NodeRegistry.to_json`;
* ``proposal.json``: :meth:`Proposal.to_dict`;
* ``sig.json``: :meth:`Signature.to_dict` plus ``proposal_hash`` (informational only: the
  signature is checked against the proposal at enactment);
* ``bundle.json``: :meth:`EnactedBundle.to_json`.

Every refusal is a :class:`~cortex_sal.errors.CliInputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..crypto.ed25519 import SEED_SIZE, Ed25519SigningKey
from ..errors import CliInputError
from ..governance.quorum import EnactedBundle, GovernanceNode, NodeRegistry, Proposal, Signature, canonical_json
from ..securemem import SecureKeyBuffer
from .files import (
    Undo,
    create_public_file,
    create_secret_file,
    read_json,
    read_secret_file,
    read_text,
    replace_public_file,
)

__all__ = [
    "NODE_FILE",
    "SEED_FILE",
    "create_node_key",
    "load_bundle",
    "load_node",
    "load_proposal",
    "load_registry",
    "load_seed",
    "load_signature",
    "save_registry",
    "write_document",
]

NODE_FILE = "node.json"
SEED_FILE = "seed.key"


def write_document(path: str | Path, document: object) -> None:
    """Write ``document`` as canonical JSON, atomically (temporary file, fsync, rename)."""
    replace_public_file(path, canonical_json(document) + b"\n", "file", CliInputError)


def load_node(path: str | Path) -> GovernanceNode:
    """A ``node.json`` file, or the one in a key directory."""
    p = Path(path)
    if p.is_dir():
        p = p / NODE_FILE
    return GovernanceNode.from_dict(read_json(p, "node file", CliInputError))


def load_registry(path: str | Path) -> NodeRegistry:
    return NodeRegistry.from_json(read_text(path, "registry", CliInputError))


def save_registry(registry: NodeRegistry, path: str | Path) -> None:
    """Write atomically (temporary file, fsync, rename): readers see the old registry or the new one."""
    replace_public_file(path, registry.to_json().encode("utf-8"), "registry", CliInputError)


def load_proposal(path: str | Path) -> Proposal:
    return Proposal.from_dict(read_json(path, "proposal", CliInputError))


def load_signature(path: str | Path) -> Signature:
    doc: Any = read_json(path, "signature", CliInputError)
    if isinstance(doc, dict):
        doc.pop("proposal_hash", None)
    return Signature.from_dict(doc)


def load_bundle(path: str | Path) -> EnactedBundle:
    return EnactedBundle.from_json(read_text(path, "bundle", CliInputError))


def load_seed(path: str | Path) -> SecureKeyBuffer:
    """The 32-byte seed, read straight into locked memory; a file others can read is refused."""
    return read_secret_file(path, SEED_SIZE, "seed file", CliInputError)


def create_node_key(directory: str | Path, institution: str, jurisdiction: str) -> GovernanceNode:
    """Create a node key in ``directory``: ``seed.key`` (secret, 0600) and ``node.json`` (public).

    The seed is drawn into locked memory and written from there (no copy in the heap). An existing
    key is never overwritten; on any failure nothing is left behind.
    """
    out = Path(directory)
    node_path, seed_path = out / NODE_FILE, out / SEED_FILE
    if node_path.exists() or seed_path.exists():
        raise CliInputError(f"{out} already holds a node key; refusing to overwrite it")
    undo = Undo()
    try:
        with SecureKeyBuffer() as seed, Ed25519SigningKey(seed) as key:
            node = GovernanceNode(key.public_key(), institution, jurisdiction)
            try:
                undo.mkdir(out)
            except OSError as e:
                raise CliInputError(f"cannot create {out}: {e}") from None
            create_secret_file(seed_path, seed, "seed file", CliInputError)
            undo.created(seed_path)
        create_public_file(node_path, canonical_json(node.to_dict()) + b"\n", "node file", CliInputError)
    except BaseException:
        undo.rollback()
        raise
    return node
