"""Adapter from :func:`~cortex_sal.governance.quorum.enact`'s ``audit`` callback to an audit trail.

``enact(..., audit=trail_hook(trail))`` appends, for every decision:

* ``signature_invalid`` (``proposal_hash``, ``reason``) before the refusal when a signature
  does not verify;
* ``proposal_refused`` (``proposal_hash``, ``reason``) for any refusal;
* ``proposal_enacted`` (``proposal_hash``, ``signer_count``, ``signers_hash``) on success.

``proposal_hash`` is the full 64-hex proposal digest (audit entries before 2026-12-02 hold its
first 16 hex digits); signer node ids never
enter the trail raw: ``signers_hash`` is :func:`truncated_hash` of their sorted, comma-joined ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .audit import AuditEntry, truncated_hash
from .quorum import AuditHook, Refusal

__all__ = ["AuditSink", "trail_hook"]


class AuditSink(Protocol):
    """Where entries go: :class:`cortex_sal.store.audit.AuditTrail`, or anything that appends the same way."""

    def append(self, event: str, **details: str | int | float | bool) -> AuditEntry: ...


def trail_hook(trail: AuditSink) -> AuditHook:
    """An ``audit`` callback for :func:`enact` that appends to ``trail``."""

    def hook(event: str, details: Mapping[str, object]) -> None:
        proposal_hash = str(details["proposal"])
        if event == "governance.refused":
            reason = details.get("reason")
            text = reason.value if isinstance(reason, Refusal) else str(reason)
            if reason is Refusal.INVALID_SIGNATURE:
                trail.append("signature_invalid", proposal_hash=proposal_hash, reason=text)
            trail.append("proposal_refused", proposal_hash=proposal_hash, reason=text)
        elif event == "governance.enacted":
            signers = sorted(str(s) for s in details.get("signers", ()))  # type: ignore[attr-defined]  # enact passes an iterable of node ids
            trail.append(
                "proposal_enacted",
                proposal_hash=proposal_hash,
                signer_count=len(signers),
                signers_hash=truncated_hash(",".join(signers)),
            )
        else:  # pragma: no cover - enact emits only the two events above
            raise ValueError(f"unknown governance event {event!r}")

    return hook
