"""The ``cortex-sal`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import CortexError


def _yes_no(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[red]NO[/red]"


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    """Print what the kernel really grants the secure arena."""
    from .crypto._sodium import sodium
    from .securemem import status

    st = status()
    summary = Table(title="Cortex SAL secure memory", show_header=False, title_justify="left")
    summary.add_column("what")
    summary.add_column("value")
    summary.add_row("backend", st.backend)
    summary.add_row("lock policy", st.lock_policy)
    summary.add_row("locked (mlock, VmFlags lo)", _yes_no(st.locked))
    summary.add_row("dump-excluded (MADV_DONTDUMP, dd)", _yes_no(st.dump_excluded))
    fork_label = "wiped on fork (MADV_WIPEONFORK, wf)" if st.backend == "mmap" else "not inherited (DONTFORK, dc)"
    summary.add_row(fork_label, _yes_no(st.wipe_on_fork))
    summary.add_row("regions", str(len(st.regions)))
    summary.add_row("slots live", f"{st.slots_live} ({st.bytes_live} bytes)")
    summary.add_row("VmLck (process)", f"{st.vm_lck_kb} kB")
    summary.add_row("memfd_secret available", "yes" if st.memfd_secret_available else "no")
    summary.add_row("crypto backend", f"libsodium {sodium.version} ({sodium.path})")
    console.print(summary)

    regions = Table(title="Arena regions (read back from /proc/self/smaps)", title_justify="left")
    for col in ("start", "size", "backend", "kind", "lo", "dd", "wf", "Locked", "problems"):
        regions.add_column(col)
    for r in st.regions:
        regions.add_row(
            f"{r.start:#x}",
            f"{r.size // 1024} KiB",
            r.backend,
            "dedicated" if r.dedicated else "slots",
            _yes_no(r.locked),
            _yes_no(r.dump_excluded),
            _yes_no(r.wipe_on_fork),
            f"{r.locked_kb} kB",
            "; ".join(r.problems) or "-",
        )
    console.print(regions)
    if st.degraded:
        console.print("[yellow]secure memory is degraded: see the problems column[/yellow]")
        return 1 if args.strict_exit else 0
    return 0


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    """Run one shield session end to end on embedded defaults."""
    from .demo import run_demo

    return run_demo(console, frames=args.frames, delay_s=0.0 if args.fast else 0.03, use_edf=not args.no_edf)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cortex-sal", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cortex-sal {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    p_status = sub.add_parser("status", help="what protection the secure arena really has")
    p_status.add_argument("--strict-exit", action="store_true", help="exit 1 when any protection is missing")
    p_status.set_defaults(func=cmd_status)
    p_demo = sub.add_parser("demo", help="stream a sensor through the shield and report custody")
    p_demo.add_argument("--frames", type=int, default=24, help="frames per source (default 24)")
    p_demo.add_argument("--fast", action="store_true", help="no pause between frames")
    p_demo.add_argument("--no-edf", action="store_true", help="synthetic source only")
    p_demo.set_defaults(func=cmd_demo)
    from .governance.cli import add_governance_parser

    add_governance_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    console = Console()
    try:
        return int(args.func(args, console))
    except CortexError as exc:
        console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
