"""``cortex-sal governance``: node keys, registry, proposals, signatures, enactment, audit, apply.

The file formats and their loaders are in :mod:`cortex_sal.store.governance`; the audit trail
is :class:`cortex_sal.store.audit.AuditTrail`.

Every command exits 0 on success and 2 with a one-line message (no traceback) on bad input
or a refusal.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..crypto.ed25519 import Ed25519SigningKey
from ..errors import CliInputError
from ..governance.quorum import DecisionType, NodeRegistry, Proposal, enact, sign_proposal
from ..governance.thresholds import DEFAULT_THRESHOLDS
from ..governance.trail_hook import trail_hook
from ..store.audit import AuditTrail, jsonl_entry_count, verify_jsonl
from ..store.files import replace_public_file
from ..store.governance import (
    NODE_FILE,
    SEED_FILE,
    create_node_key,
    load_bundle,
    load_node,
    load_proposal,
    load_registry,
    load_seed,
    load_signature,
    save_registry,
    write_document,
)
from ._common import guarded, timestamp_arg

__all__ = ["add_governance_parser"]

_NODE_ID_RE = re.compile(r"[0-9a-f]{16}")


def _now(args: argparse.Namespace) -> float:
    return time.time() if args.now is None else args.now


# --- commands ------------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace, console: Console) -> int:
    out = Path(args.out)
    node = create_node_key(out, args.institution, args.jurisdiction)
    console.print(f"node {node.node_id} ({node.institution}, {node.jurisdiction})")
    console.print(f"public: {out / NODE_FILE}")
    console.print(f"seed (secret, mode 0600): {out / SEED_FILE}")
    return 0


def cmd_registry_add(args: argparse.Namespace, console: Console) -> int:
    out = Path(args.out)
    registry = load_registry(out) if out.exists() else NodeRegistry()
    for path in args.nodes:
        node = load_node(path)
        registry.add(node)
        console.print(f"registered {node.node_id} ({node.institution}, {node.jurisdiction})")
    save_registry(registry, out)
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
        proposer = load_node(proposer).node_id
    created = _now(args)
    proposal = Proposal(DecisionType(args.type), content, tuple(args.cite or ()), proposer, created)
    write_document(args.out, proposal.to_dict())
    console.print(f"proposal {proposal.digest().hex()} ({proposal.type.value})")
    console.print(f"expires {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(proposal.expires))}")
    return 0


def cmd_sign(args: argparse.Namespace, console: Console) -> int:
    proposal = load_proposal(args.proposal)
    key_dir = Path(args.key)
    node = load_node(key_dir / NODE_FILE)
    with load_seed(key_dir / SEED_FILE) as seed, Ed25519SigningKey(seed) as key:
        sig = sign_proposal(proposal, key, node)
    doc = {**sig.to_dict(), "proposal_hash": proposal.digest().hex()}
    write_document(args.out, doc)
    console.print(f"node {node.node_id} signed proposal {proposal.digest().hex()[:16]}")
    return 0


def _enacted_prefixes(trail: AuditTrail) -> set[str]:
    return {str(e.details.get("proposal_hash")) for e in trail.entries() if e.event == "proposal_enacted"}


def _audit_path(args: argparse.Namespace) -> Path:
    """``--audit FILE``, or the audit chain of the store in ``--data-dir`` (one of them)."""
    if (args.audit is None) == (args.data_dir is None):
        raise CliInputError("give --audit FILE or --data-dir DIR (the store's audit chain), one of them")
    if args.audit is not None:
        return Path(args.audit)
    from ..store.sqlite import SqliteStore

    with SqliteStore(args.data_dir) as store:  # created or migrated: its database holds the chain
        return store.path


def cmd_enact(args: argparse.Namespace, console: Console) -> int:
    proposal = load_proposal(args.proposal)
    signatures = [load_signature(p) for p in args.signatures]
    registry = load_registry(args.registry)
    digest = proposal.digest()
    with AuditTrail(_audit_path(args)) as trail:
        enacted: set[bytes] = set()
        recorded = _enacted_prefixes(trail)  # full digests, and the 16-hex prefixes of older entries
        if digest.hex() in recorded or digest.hex()[:16] in recorded:
            enacted.add(digest)  # this audit trail already records its enactment
        try:
            bundle = enact(
                proposal, signatures, registry, now=_now(args), enacted_digests=enacted, audit=trail_hook(trail)
            )
        finally:
            head = trail.head()
    replace_public_file(args.out, (bundle.to_json() + "\n").encode("utf-8"), "bundle", CliInputError)
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
        count = jsonl_entry_count(path)
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


def _thresholds_table(title: str, new: Any, before: Any) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("threshold")
    table.add_column("value")
    table.add_column("was" if before is not None else "default")
    for name in DEFAULT_THRESHOLDS.__dataclass_fields__:
        value = getattr(new, name)
        old = getattr(before if before is not None else DEFAULT_THRESHOLDS, name)
        changed = value != old
        table.add_row(name, f"[bold]{value!r}[/bold]" if changed else repr(value), repr(old) if changed else "")
    return table


def cmd_apply(args: argparse.Namespace, console: Console) -> int:
    from ..sal.shield import CognitiveShield
    from ..store.runtime import open_shield
    from ..store.sqlite import SqliteStore

    bundle = load_bundle(args.bundle)
    registry = load_registry(args.registry)
    store = SqliteStore(args.data_dir) if args.data_dir is not None else None
    try:
        with open_shield(store) if store is not None else CognitiveShield() as shield:
            before = shield.thresholds
            new = shield.apply_policy(bundle, registry, now=args.now)
            origin = shield.policy.origin
        if store is not None and origin is not None:
            store.record_policy(origin)  # durable, with its policy_applied audit entry
    finally:
        if store is not None:
            store.close()
    if args.audit is not None:
        with AuditTrail(args.audit) as trail:
            trail.append("policy_applied", proposal_hash=bundle.proposal.digest().hex())
    console.print(
        _thresholds_table(f"Clinical thresholds after proposal {bundle.proposal.digest().hex()}", new, before)
    )
    console.print("bundle verified by the shield; policy applied")
    if store is not None:
        console.print(f"stored as the policy in force in {args.data_dir}")
    return 0


def cmd_policy(args: argparse.Namespace, console: Console) -> int:
    """A new shield built from the store: the policy it runs under and the bundle that put it in force."""
    from ..store.runtime import open_shield
    from ..store.sqlite import SqliteStore

    with SqliteStore(args.data_dir) as store, open_shield(store) as shield:
        policy = shield.policy
    console.print(
        _thresholds_table(
            "Clinical thresholds in force (replayed and re-verified from the store)", policy.thresholds, None
        )
    )
    console.print(policy.describe())
    return 0


# --- parser ---------------------------------------------------------------------------------------


def _guarded(func: Callable[[argparse.Namespace, Console], int]) -> Callable[[argparse.Namespace, Console], int]:
    return guarded(func, CliInputError)


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
    p.add_argument("--now", type=timestamp_arg, help="creation time (epoch seconds; default now)")
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
    p.add_argument("--audit", help="SQLite audit trail (created if missing)")
    p.add_argument("--data-dir", type=Path, help="audit into this data directory's store instead (docs/store.md)")
    p.add_argument("--now", type=timestamp_arg, help="decision time (epoch seconds; default now)")
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
    p.add_argument("--now", type=timestamp_arg, help="verification time (epoch seconds; default now)")
    p.add_argument("--data-dir", type=Path, help="store it as the policy in force of this data directory")
    p.set_defaults(func=_guarded(cmd_apply))

    p = gsub.add_parser("policy", help="the policy a shield started from the store runs under, and its origin")
    p.add_argument("--data-dir", type=Path, help="the store's directory (default ~/.local/share/cortex-sal)")
    p.set_defaults(func=_guarded(cmd_policy))
