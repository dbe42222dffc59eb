"""``cortex-sal governance``: node keys, registry, proposals, signatures, enactment, audit, apply.

File formats (all JSON written as RFC 8785 canonical JSON):

* ``node.json``: :meth:`GovernanceNode.to_dict` (node id, public key, institution, jurisdiction, active);
* the seed file (``seed.key``, mode 0600): the 32 raw bytes of the Ed25519 seed. A key file on
  disk is outside the custody promise of the secure arena (locked, dump-excluded memory):
  whoever can read the file can sign as the node. Keep it on an encrypted volume or token;
* ``registry.json``: :meth:`NodeRegistry.to_json`;
* ``proposal.json``: :meth:`Proposal.to_dict`;
* ``sig.json``: :meth:`Signature.to_dict` plus ``proposal_hash`` (informational only: the
  signature is checked against the proposal at enactment);
* ``bundle.json``: :meth:`EnactedBundle.to_json`.

Every command exits 0 on success and 2 with a one-line message (no traceback) on bad input
or a refusal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..crypto.ed25519 import SEED_SIZE, Ed25519SigningKey
from ..errors import CliInputError, CortexError
from ..securemem import SecureKeyBuffer
from .audit import AuditTrail, verify_jsonl
from .quorum import (
    DecisionType,
    EnactedBundle,
    GovernanceNode,
    NodeRegistry,
    Proposal,
    Signature,
    canonical_json,
    enact,
    sign_proposal,
)
from .thresholds import DEFAULT_THRESHOLDS
from .trail_hook import trail_hook

__all__ = ["add_governance_parser"]

NODE_FILE = "node.json"
SEED_FILE = "seed.key"
_NODE_ID_RE = re.compile(r"[0-9a-f]{16}")


# --- files ------------------------------------------------------------------------------------


def _read_json(path: str | Path, what: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise CliInputError(f"{what} {path}: duplicate JSON key {k!r}")
            out[k] = v
        return out

    def bad_constant(name: str) -> Any:
        raise CliInputError(f"{what} {path}: {name} is not valid JSON")

    text = _read_text(path, what)
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deeply
        raise CliInputError(f"{what} {path} is not valid JSON: {e}") from None


def _read_text(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliInputError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CliInputError(f"cannot read {what} {path}: {e}") from None


def _write_text(path: str | Path, text: str) -> None:
    """Write atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise CliInputError(f"cannot write {path}: {e}") from None


def _load_node(path: str | Path) -> GovernanceNode:
    p = Path(path)
    if p.is_dir():
        p = p / NODE_FILE
    return GovernanceNode.from_dict(_read_json(p, "node file"))


def _load_registry(path: str | Path) -> NodeRegistry:
    return NodeRegistry.from_json(_read_text(path, "registry"))


def _load_proposal(path: str | Path) -> Proposal:
    return Proposal.from_dict(_read_json(path, "proposal"))


def _load_signature(path: str | Path) -> Signature:
    doc = _read_json(path, "signature")
    if isinstance(doc, dict):
        doc.pop("proposal_hash", None)
    return Signature.from_dict(doc)


def _load_bundle(path: str | Path) -> EnactedBundle:
    return EnactedBundle.from_json(_read_text(path, "bundle"))


def _load_seed(path: Path) -> SecureKeyBuffer:
    """Read the 32-byte seed straight into locked memory; refuse a file others can read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise CliInputError(f"seed file {path} does not exist") from None
    except OSError as e:
        raise CliInputError(f"cannot open seed file {path}: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != SEED_SIZE:
            raise CliInputError(f"seed file {path} must be a regular file of exactly {SEED_SIZE} bytes")
        if st.st_mode & 0o077:
            raise CliInputError(f"seed file {path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
        return SecureKeyBuffer.from_fd(fd)  # type: ignore[return-value]
    finally:
        os.close(fd)


def _timestamp_arg(value: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds since the epoch: {value!r}") from None
    if not math.isfinite(t) or t < 0:
        raise argparse.ArgumentTypeError(f"not a finite, non-negative epoch time: {value!r}")
    return t


def _now(args: argparse.Namespace) -> float:
    return time.time() if args.now is None else args.now


# --- commands ------------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace, console: Console) -> int:
    out = Path(args.out)
    node_path, seed_path = out / NODE_FILE, out / SEED_FILE
    if node_path.exists() or seed_path.exists():
        raise CliInputError(f"{out} already holds a node key; refusing to overwrite it")
    with SecureKeyBuffer() as seed, Ed25519SigningKey(seed) as key:
        node = GovernanceNode(key.public_key(), args.institution, args.jurisdiction)
        try:
            out.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(seed_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as e:
            raise CliInputError(f"cannot create {seed_path}: {e}") from None
        try:
            with seed._view() as view:  # written from locked memory: no copy in the heap
                done = 0
                while done < len(view):
                    done += os.write(fd, view[done:])
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            seed_path.unlink(missing_ok=True)
            raise CliInputError(f"cannot write {seed_path}: {e}") from None
        os.close(fd)
    _write_text(node_path, canonical_json(node.to_dict()).decode("utf-8"))
    console.print(f"node {node.node_id} ({node.institution}, {node.jurisdiction})")
    console.print(f"public: {node_path}")
    console.print(f"seed (secret, mode 0600): {seed_path}")
    return 0


def cmd_registry_add(args: argparse.Namespace, console: Console) -> int:
    out = Path(args.out)
    registry = _load_registry(out) if out.exists() else NodeRegistry()
    for path in args.nodes:
        node = _load_node(path)
        registry.add(node)
        console.print(f"registered {node.node_id} ({node.institution}, {node.jurisdiction})")
    registry.save(out)
    jurisdictions = sorted({n.jurisdiction for n in registry.active_nodes()})
    console.print(f"{out}: {len(registry)} nodes, {len(registry.active_nodes())} active in {', '.join(jurisdictions)}")
    return 0


def _parse_value(text: str) -> object:
    try:
        return json.loads(text, parse_constant=lambda name: text)
    except ValueError:
        return text


def cmd_propose(args: argparse.Namespace, console: Console) -> int:
    content: dict[str, object] = {}
    for item in args.set or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise CliInputError(f"--set expects NAME=VALUE, got {item!r}")
        if name in content:
            raise CliInputError(f"--set gives {name} twice")
        content[name] = _parse_value(value.strip())
    proposer = args.proposer
    if not _NODE_ID_RE.fullmatch(proposer):
        proposer = _load_node(proposer).node_id
    created = _now(args)
    proposal = Proposal(DecisionType(args.type), content, tuple(args.cite or ()), proposer, created)
    _write_text(args.out, canonical_json(proposal.to_dict()).decode("utf-8"))
    console.print(f"proposal {proposal.digest().hex()} ({proposal.type.value})")
    console.print(f"expires {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(proposal.expires))}")
    return 0


def cmd_sign(args: argparse.Namespace, console: Console) -> int:
    proposal = _load_proposal(args.proposal)
    key_dir = Path(args.key)
    node = _load_node(key_dir / NODE_FILE)
    with _load_seed(key_dir / SEED_FILE) as seed, Ed25519SigningKey(seed) as key:
        sig = sign_proposal(proposal, key, node)
    doc = {**sig.to_dict(), "proposal_hash": proposal.digest().hex()}
    _write_text(args.out, canonical_json(doc).decode("utf-8"))
    console.print(f"node {node.node_id} signed proposal {proposal.digest().hex()[:16]}")
    return 0


def _enacted_prefixes(trail: AuditTrail) -> set[str]:
    return {str(e.details.get("proposal_hash")) for e in trail.entries() if e.event == "proposal_enacted"}


def cmd_enact(args: argparse.Namespace, console: Console) -> int:
    proposal = _load_proposal(args.proposal)
    signatures = [_load_signature(p) for p in args.signatures]
    registry = _load_registry(args.registry)
    digest = proposal.digest()
    with AuditTrail(args.audit) as trail:
        enacted: set[bytes] = set()
        if digest.hex()[:16] in _enacted_prefixes(trail):
            enacted.add(digest)  # this audit trail already records its enactment
        try:
            bundle = enact(
                proposal, signatures, registry, now=_now(args), enacted_digests=enacted, audit=trail_hook(trail)
            )
        finally:
            head = trail.head()
    _write_text(args.out, bundle.to_json())
    console.print(f"enacted proposal {digest.hex()} with {len(bundle.signatures)} signatures -> {args.out}")
    console.print(f"audit head: count {head.count}, hash {head.last_hash}")
    return 0


def cmd_verify_audit(args: argparse.Namespace, console: Console) -> int:
    path = Path(args.audit)
    if not path.is_file():
        raise CliInputError(f"audit file {path} does not exist")
    if (args.expected_count is None) != (args.expected_hash is None):
        raise CliInputError("give both --expected-count and --expected-hash, or neither")
    expected = None if args.expected_count is None else (args.expected_count, args.expected_hash)
    if path.suffix == ".jsonl":
        result = verify_jsonl(path, expected_head=expected)
        count = sum(1 for line in _read_text(path, "audit file").splitlines() if line.strip())
        head_text = ""
    else:
        with AuditTrail(path) as trail:
            result = trail.verify(expected_head=expected)
            head = trail.head()
            count = head.count
            head_text = f", head {head.last_hash}"
    if not result.ok:
        console.print(f"[red]audit trail {path} is NOT intact:[/red] entry {result.first_bad_index}: {result.reason}")
        return 2
    console.print(f"audit trail {path} intact: {count} entries{head_text}")
    return 0


def cmd_apply(args: argparse.Namespace, console: Console) -> int:
    from ..sal.shield import CognitiveShield

    bundle = _load_bundle(args.bundle)
    registry = _load_registry(args.registry)
    with CognitiveShield() as shield:
        before = shield.thresholds
        new = shield.apply_policy(bundle, registry, now=args.now)
    if args.audit is not None:
        with AuditTrail(args.audit) as trail:
            trail.append("policy_applied", proposal_hash=bundle.proposal.digest().hex())
    table = Table(
        title=f"Clinical thresholds after proposal {bundle.proposal.digest().hex()[:16]}", title_justify="left"
    )
    table.add_column("threshold")
    table.add_column("value")
    table.add_column("was")
    for name in DEFAULT_THRESHOLDS.__dataclass_fields__:
        value, old = getattr(new, name), getattr(before, name)
        changed = value != old
        table.add_row(name, f"[bold]{value!r}[/bold]" if changed else repr(value), repr(old) if changed else "")
    console.print(table)
    console.print("bundle verified by the shield; policy applied")
    return 0


# --- parser ---------------------------------------------------------------------------------------


def _guarded(func: Callable[[argparse.Namespace, Console], int]) -> Callable[[argparse.Namespace, Console], int]:
    """Turn stray OS and value errors of bad input into a clean ``CortexError`` (exit 2)."""

    def run(args: argparse.Namespace, console: Console) -> int:
        try:
            return func(args, console)
        except CortexError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CliInputError(f"{type(e).__name__}: {e}") from None

    run.__doc__ = func.__doc__
    return run


def add_governance_parser(sub: Any) -> None:
    """Register ``governance`` and its subcommands on the top-level subparsers ``sub``."""
    gov = sub.add_parser("governance", help="node keys, proposals, signatures, enactment, audit")
    gsub = gov.add_subparsers(dest="governance_command", required=True)

    p = gsub.add_parser("keygen", help="create a node key: node.json (public) and seed.key (secret, 0600)")
    p.add_argument("--institution", required=True)
    p.add_argument("--jurisdiction", required=True, help="ISO 3166-1 alpha-2 code or EU")
    p.add_argument("--out", required=True, help="directory to create the key in")
    p.set_defaults(func=_guarded(cmd_keygen))

    p = gsub.add_parser("registry", help="maintain a node registry file")
    rsub = p.add_subparsers(dest="registry_command", required=True)
    p = rsub.add_parser("add", help="add node.json files (or key directories) to a registry")
    p.add_argument("nodes", nargs="+", metavar="NODE_JSON")
    p.add_argument("--out", required=True, help="registry file (created or extended)")
    p.set_defaults(func=_guarded(cmd_registry_add))

    p = gsub.add_parser("propose", help="draft a proposal")
    p.add_argument("--type", required=True, choices=[t.value for t in DecisionType])
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="content item (repeatable)")
    p.add_argument("--cite", action="append", metavar="CITATION", help="citation (repeatable)")
    p.add_argument("--proposer", required=True, help="node id, or a node.json / key directory")
    p.add_argument("--now", type=_timestamp_arg, help="creation time (epoch seconds; default now)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_guarded(cmd_propose))

    p = gsub.add_parser("sign", help="sign a proposal with a node key")
    p.add_argument("proposal")
    p.add_argument("--key", required=True, help="key directory made by keygen")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_guarded(cmd_sign))

    p = gsub.add_parser("enact", help="check the quorum, audit the decision, write the bundle")
    p.add_argument("proposal")
    p.add_argument("signatures", nargs="*", metavar="SIG_JSON")
    p.add_argument("--registry", required=True)
    p.add_argument("--audit", required=True, help="SQLite audit trail (created if missing)")
    p.add_argument("--now", type=_timestamp_arg, help="decision time (epoch seconds; default now)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_guarded(cmd_enact))

    p = gsub.add_parser("verify-audit", help="verify an audit trail (SQLite, or an exported .jsonl)")
    p.add_argument("audit")
    p.add_argument("--expected-count", type=int, help="retained head: entry count")
    p.add_argument("--expected-hash", help="retained head: hash of the last entry")
    p.set_defaults(func=_guarded(cmd_verify_audit))

    p = gsub.add_parser("apply", help="have the shield verify a bundle and print the thresholds it puts in force")
    p.add_argument("bundle")
    p.add_argument("--registry", required=True)
    p.add_argument("--audit", help="also append a policy_applied entry to this audit trail")
    p.add_argument("--now", type=_timestamp_arg, help="verification time (epoch seconds; default now)")
    p.set_defaults(func=_guarded(cmd_apply))
