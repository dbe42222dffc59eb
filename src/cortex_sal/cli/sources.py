"""``cortex-sal sources list``: which source kinds this installation can open, and every spec form."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..sources import KINDS, installed

__all__ = ["add_sources_parser"]


def cmd_sources_list(args: argparse.Namespace, console: Console) -> int:
    """One line per kind (what it needs, installed or not), then its spec forms with an example each."""
    versions = installed()
    width = max(len(form) for kind in KINDS for form, _ in kind.forms)
    for kind in KINDS:
        if kind.package is None:
            needs = "built in"
        elif versions[kind.package]:
            needs = f"{kind.package} {versions[kind.package]}"
        else:
            needs = f"{kind.package} NOT installed: pip install 'cortex-sal[{kind.extra}]'"
        console.print(escape(f"{kind.name}: {needs}"), soft_wrap=True, highlight=False)
        for form, example in kind.forms:
            console.print(escape(f"  {form:<{width}}  e.g. --source '{example}'"), soft_wrap=True, highlight=False)
    return 0


def add_sources_parser(sub: Any) -> None:
    p = sub.add_parser("sources", help="the sample sources: which are installed, every spec form")
    inner = p.add_subparsers(dest="sources_command", required=True)
    q = inner.add_parser("list", help="which source kinds are installed, with each spec form and an example")
    q.set_defaults(func=cmd_sources_list)
