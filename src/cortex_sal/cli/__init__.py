"""The ``cortex-sal`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import __version__
from ..errors import CortexError

if TYPE_CHECKING:
    from ..testing.scenarios import Scenario


def _yes_no(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[red]NO[/red]"


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    """Print what the kernel really grants the secure arena."""
    from ..crypto import backend_info
    from ..securemem import status

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
    crypto = backend_info()
    summary.add_row("crypto backend", f"libsodium {crypto.version} ({crypto.path})")
    console.print(summary)

    bindings = Table(title="Crypto bindings (one per primitive, chosen at import)", title_justify="left")
    bindings.add_column("primitive")
    bindings.add_column("binding")
    for primitive, binding in crypto.bindings:
        bindings.add_row(primitive, binding)
    console.print(bindings)
    if crypto.note:
        console.print(f"[yellow]crypto bindings: {crypto.note}[/yellow]")

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
    from .demo import run_demo, run_network_demo

    if args.in_process:
        return run_demo(
            console, frames=args.frames, delay_s=0.0 if args.fast else 0.03, use_edf=not args.no_edf,
            data_dir=args.data_dir,
        )  # fmt: skip
    return run_network_demo(
        console, frames=args.frames, speed=0.0 if args.fast else args.speed, use_edf=not args.no_edf,
        data_dir=args.data_dir,
    )  # fmt: skip


def _residue_table(console: Console, scenarios: list[Scenario]) -> tuple[list[str], bool]:
    """Run each residue scenario; print one row per checkpoint. Returns (failures, control_seen)."""
    from ..testing import residue

    table = Table(title="Residue: copies of the secrets in the child's memory", title_justify="left")
    table.add_column("scenario", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    table.add_column("0 in", header_style="bold")
    for cls in residue.CLASSES:
        table.add_column(cls, justify="right")
    table.add_column("result")
    failures: list[str] = []
    control_seen = False
    scanned = 0
    for scenario in scenarios:
        name = scenario.name
        reports = residue.run_scenario(scenario)
        bad = residue.verdict(reports)
        if name == "leak_control":
            control_seen = bool(bad)
        else:
            failures += [f"{name}: {b}" for b in bad]
        for report, live in reports:
            scanned += report.bytes_scanned
            totals = [
                sum(sum(by_class[cls].values()) for by_class in report.counts.values()) for cls in residue.CLASSES
            ]
            if report.hits(outside_arena=live):
                result = "[yellow]found (control)[/yellow]" if name == "leak_control" else "[red]FAIL[/red]"
            else:
                result = "[green]ok[/green]"
            table.add_row(name, report.checkpoint, "non-arena" if live else "all", *map(str, totals), result)
    console.print(table)
    console.print(
        "Counts: exact copies + 8-byte fragments + HMAC pads + hex + base64 of every secret, summed per region; "
        f"'0 in' says where they must be 0. {scanned / 2**30:.1f} GiB read from /proc/<pid>/mem."
    )
    return failures, control_seen


def cmd_selftest(args: argparse.Namespace, console: Console) -> int:
    """Known-answer self-tests, and with ``--residue`` the memory-residue proof."""
    if not args.residue:
        from ..testing.keros_selftest import main as keros_selftest
        from ..testing.sal_selftest import main as sal_selftest

        return 1 if (sal_selftest() | keros_selftest()) else 0
    from ..testing.scenarios import SCENARIOS as LOWER
    from .residue_scenarios import SCENARIOS as OWN

    SCENARIOS = {**LOWER, **OWN}
    try:
        import cryptography  # noqa: F401  (the parent's independent oracle)
    except ImportError:
        console.print("[red]error:[/red] the residue proof needs the test extra: pip install 'cortex-sal[test]'")
        return 2
    unknown = [n for n in args.scenario or () if n not in SCENARIOS]
    if unknown:
        console.print(f"[red]error:[/red] unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
        return 2
    names = args.scenario or [n for n in SCENARIOS if n != "leak_control"] + ["leak_control"]
    console.width = max(console.width, 110)  # the table is unreadable when squeezed
    failures, control_seen = _residue_table(console, [SCENARIOS[n] for n in names])
    for failure in failures:
        console.print(f"[red]residue[/red] {failure}")
    if "leak_control" in names and not control_seen:
        console.print("[red]the deliberate leak was not found: the scan cannot be trusted[/red]")
        return 1
    if failures:
        return 1
    checked = len([n for n in names if n != "leak_control"])
    console.print(f"[green]no residue[/green] in {checked} scenario(s): every count that must be 0 is 0")
    return 0


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
    p_demo.add_argument("--data-dir", type=Path, help="keep the store here (default: a temporary directory)")
    p_demo.add_argument("--speed", type=float, default=32.0, help="play the sources this many times real time")
    p_demo.add_argument("--in-process", action="store_true", help="the shield alone, no gateway and no socket")
    p_demo.set_defaults(func=cmd_demo)
    p_self = sub.add_parser("selftest", help="known-answer self-tests; --residue scans a child's memory for secrets")
    p_self.add_argument("--residue", action="store_true", help="run the residue scenarios and print the table")
    p_self.add_argument("--scenario", action="append", metavar="NAME", help="only this residue scenario (repeatable)")
    p_self.set_defaults(func=cmd_selftest)
    from .governance import add_governance_parser

    add_governance_parser(sub)
    from .ca import add_ca_parser
    from .consent import add_apps_parser, add_consent_parser, add_store_parser

    add_ca_parser(sub)
    add_consent_parser(sub)
    add_apps_parser(sub)
    add_store_parser(sub)
    from .gateway import add_gateway_parsers

    add_gateway_parsers(sub)
    from .sources import add_sources_parser

    add_sources_parser(sub)
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
        console.print(f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
