"""``cortex-sal demo``: one sensor session end to end, on embedded defaults.

A sensor (synthetic EEG, and the real scalp EEG shipped inside pyedflib when it is
installed) registers, runs the v1 handshake, streams encrypted frames through a
``SecureBusSession`` into the shield; a live table shows each frame's state label,
coherency, consent and liveness; a custody report closes the run.

The shield is started from a store (``--data-dir``, or a temporary directory removed at the
end) as the gateway starts one: under the stored, verified policy, with the wearer's consent
granted for the demo application through the durable ledger (a signed receipt for it).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..clock import ManualClock
from ..sal.frame import SAMPLE_DTYPE
from ..sal.results import RefusalReason, Refused, Released
from ..sal.shield import CognitiveShield
from ..securemem import status
from ..sources import EdfSource, Source, SyntheticSource, bundled_edf_path
from ..sources import frames as source_frames
from ..store.base import subject_of
from ..store.runtime import open_shield
from ..store.sqlite import SqliteStore

DEMO_APP = "cortex-sal-demo"

VISIBLE_ROWS = 12


def _frames_table(rows: list[tuple[Any, ...]], title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("frame", "state label", "coherency", "consent", "liveness", "tensor norm", "ms"):
        table.add_column(col)
    for row in rows[-VISIBLE_ROWS:]:
        table.add_row(*row)
    return table


def _row(seq: int, result: Released | Refused) -> tuple[str, ...]:
    if isinstance(result, Refused):
        return (str(seq), f"[red]refused: {result.detail}[/red]", "-", _flag(result.consent_active), "-", "-",
                f"{result.processing_time_ms:.2f}")  # fmt: skip
    return (
        str(seq),
        result.state_label,
        f"{result.coherency_index:.3f}",
        _flag(result.consent_active),
        _flag(result.liveness_proven),
        f"{result.tensor_norm:.4f}",
        f"{result.processing_time_ms:.2f}",
    )


def _flag(value: object) -> str:
    return "[green]yes[/green]" if value else "[red]no[/red]"


def sensor_model(source: Source) -> str:
    """The certified model the demo registers a source as (the registry's two one-channel EEG models)."""
    return "eeg_fp1_certified_v1" if source.labels in (("Fp1",), ("synthetic",)) else "eeg_occipital_certified_v1"


def _description(source: Source) -> str:
    if isinstance(source, EdfSource):
        return f"real scalp EEG, channel {', '.join(source.labels)}, {source.rate_hz:.0f} Hz"
    return "synthetic EEG (alpha + theta + noise), 128 Hz"


def stream(shield: CognitiveShield, source: Source, n_frames: int, clock: ManualClock, console: Console,
           delay_s: float, grant: Callable[[str], str]) -> dict[str, int]:  # fmt: skip
    model_id = sensor_model(source)
    model = shield.registry.admit(model_id)
    sensor_id = f"{model_id}/demo-{source.name.split(':')[0]}"
    reg = shield.register_sensor(sensor_id, model.snr_db, model.bits)
    if isinstance(reg, Refused):
        console.print(f"[bold]{_description(source)}[/bold] -> sensor ?: refused ({reg.detail})")
        return {"ok": 0, "refused": 0}
    console.print(f"[bold]{_description(source)}[/bold] -> sensor {reg.log_id}: registered, session {reg.session}")
    console.print(f"consent for {DEMO_APP} (biometric): receipt {grant(sensor_id)}")
    endpoint = shield.sensor_endpoint(sensor_id)
    rows: list[tuple[str, ...]] = []
    counts = {"ok": 0, "refused": 0}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    task = progress.add_task(f"encrypted frames from {source.name}", total=n_frames)
    title = f"{source.name}: frames through the shield (only obfuscated features leave)"
    with Live(Group(progress, _frames_table(rows, title)), console=console, refresh_per_second=12) as live:
        for seq, samples in enumerate(source_frames(source, max_frames=n_frames), start=1):
            payload = np.asarray(samples, dtype=SAMPLE_DTYPE).tobytes()  # the sensor device's own buffer
            result = shield.ingest_frame(sensor_id, endpoint.encrypt_frame(payload))
            counts["ok" if isinstance(result, Released) else "refused"] += 1
            rows.append(_row(seq, result))
            progress.advance(task)
            live.update(Group(progress, _frames_table(rows, title)))
            clock.advance(samples.shape[-1] / 128.0)  # the shield's clock follows the data (frames are 128 Hz)
            if delay_s:
                time.sleep(delay_s)
            if seq >= n_frames:
                break
    reasons = sorted({r[1] for r in rows if r[1].startswith("[red]")})
    console.print(
        f"released {counts['ok']}, refused {counts['refused']}" + (f": {', '.join(reasons)}" if reasons else "")
    )
    return counts


def run_demo(
    console: Console, *, frames: int = 24, delay_s: float = 0.03, use_edf: bool = True, data_dir: Path | None = None
) -> int:
    clock = ManualClock(start=time.time())
    sources: list[Source] = [SyntheticSource()]
    edf = bundled_edf_path() if use_edf else None
    if edf is not None:
        sources.append(EdfSource(edf))
    else:
        console.print("[dim](install the optional pyedflib to also stream the real scalp EEG it ships)[/dim]")
    with tempfile.TemporaryDirectory(prefix="cortex-sal-demo-") as scratch:
        directory = data_dir if data_dir is not None else Path(scratch) / "data"
        with SqliteStore(directory, exclusive=True, clock=clock) as store, open_shield(store, clock=clock) as shield:
            console.print(f"store {directory}; {shield.policy.describe()}")

            def grant(sensor_id: str) -> str:
                ledger = shield.consent
                record = ledger.grant(subject_of(sensor_id), ["biometric"], 3600, app=DEMO_APP,
                                      purpose="cortex-sal demo: a live view of the released features")  # fmt: skip
                return record.receipt_id

            totals = {"ok": 0, "refused": 0}
            for source in sources:
                with source:
                    for key, value in stream(shield, source, frames, clock, console, delay_s, grant).items():
                        totals[key] += value
            destroyed = shield.destroy_session()
            report = shield.custody_report()
            check = store.check()
    st = status()
    table = Table(title="Custody report", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value")
    table.add_row("frames released / refused", f"{totals['ok']} / {totals['refused']}")
    table.add_row("sessions opened / closed", f"{report.sessions_opened} / {report.sessions_closed}")
    purged_ok = destroyed.keys_purged == destroyed.keys_total > 0
    colour = "green" if purged_ok else "red"
    table.add_row("session keys", f"[{colour}]keys purged {destroyed.keys_purged}/{destroyed.keys_total}[/{colour}]")
    table.add_row("arena (from /proc/self/smaps)",
                  f"locked {_flag(st.locked)}, dump-excluded {_flag(st.dump_excluded)}, "
                  f"wiped on fork {_flag(st.wipe_on_fork)}, VmLck {st.vm_lck_kb} kB")  # fmt: skip
    table.add_row("secure slots still live", f"{st.slots_live} (the per-thread HMAC state, zeroed after each use)")
    table.add_row("store", f"audit chain {'verified' if check.audit.ok else 'NOT intact'}: {check.audit_head.count} "
                  f"entries; {check.counts['receipts']} signed receipts")  # fmt: skip
    console.print(table)
    console.print(f"keys purged {destroyed.keys_purged}/{destroyed.keys_total}")
    return 0 if purged_ok and check.ok else 1


# --- the real thing: a gateway on loopback, sensor processes, a subscriber ------------------------


def _quiet_cli(*argv: str) -> None:
    """Run a ``cortex-sal`` subcommand in this process with its output discarded (the demo's set-up)."""
    import io

    from . import build_parser

    args = build_parser().parse_args(list(argv))
    if args.func(args, Console(file=io.StringIO())) != 0:  # pragma: no cover - the set-up's own commands
        raise RuntimeError(f"demo set-up failed: cortex-sal {' '.join(argv)}")


def _released_table(rows: list[tuple[str, ...]], title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("source", "the app's sensor id", "seq", "state label", "coherency", "liveness", "features (C x 5)"):
        table.add_column(col)
    for row in rows[-VISIBLE_ROWS:]:
        table.add_row(*row)
    return table


def run_network_demo(
    console: Console,
    *,
    frames: int = 24,
    speed: float = 32.0,
    use_edf: bool = True,
    data_dir: Path | None = None,
) -> int:
    """Throwaway CAs, identities and store; a gateway on 127.0.0.1; one sensor process per source;
    the released results as a subscriber receives them; a clean stop and the custody report.

    ``speed``: the sensor processes play their sources this many times faster than real time, and
    the gateway's clock runs as fast (``ScaledClock``), so the shield sees the data's own timing.
    ``speed <= 0``: as fast as possible, on the real clock."""
    import asyncio
    import sys

    from ..client import Client, Features
    from ..clock import SYSTEM_CLOCK, Clock, ScaledClock
    from ..gateway.server import Gateway
    from ..store.keros import load_identity, load_trust
    from ..store.runtime import durable_ledger

    sources = [("synthetic", "eeg_fp1_certified_v1", "synthetic EEG (alpha + theta + noise)")]
    edf = bundled_edf_path() if use_edf else None
    if edf is not None:
        with EdfSource(edf) as opened:
            model = sensor_model(opened)
        sources.append(("edf", model, "the real scalp EEG shipped inside pyedflib"))
    else:
        console.print("[dim](install the optional pyedflib to also stream the real scalp EEG it ships)[/dim]")
    clock: Clock = ScaledClock(speed) if speed > 0 else SYSTEM_CLOCK
    with tempfile.TemporaryDirectory(prefix="cortex-sal-demo-") as scratch:
        root = Path(scratch)
        data = data_dir if data_dir is not None else root / "data"
        _quiet_cli("ca", "init", "--kind", "manufacturer", "--name", "Demo Devices", "--out", str(root / "maker"))
        _quiet_cli("ca", "init", "--kind", "site", "--name", "Demo Site", "--out", str(root / "site"))
        _quiet_cli("ca", "issue-gateway", "--ca", str(root / "site"), "--name", "demo-gateway", "--days", "1",
                   "--out", str(root / "gateway"))  # fmt: skip
        _quiet_cli("apps", "add", DEMO_APP, "--data-dir", str(data), "--out", str(root))
        subjects = {}
        for name, model, _ in sources:
            serial = f"DEMO-{name.upper()}"
            _quiet_cli("ca", "issue-sensor", "--ca", str(root / "maker"), "--model", model, "--serial", serial,
                       "--days", "1", "--out", str(root / f"sensor-{name}"))  # fmt: skip
            subjects[name] = subject_of(f"{model}/{serial}")
        with SqliteStore(data, clock=clock) as store:  # the wearers' consent, before the gateway owns the store
            ledger = durable_ledger(store, store.policy_in_force().thresholds, clock)
            for name, subject in subjects.items():
                record = ledger.grant(subject, ["biometric"], 3600, app=DEMO_APP,
                                      purpose="cortex-sal demo: a live view of the released features")  # fmt: skip
                console.print(f"consent of {name} sensor {subject} for {DEMO_APP}: receipt {record.receipt_id}")
        trust = load_trust(root / "maker", root / "site")
        key, certificate = load_identity(root / "gateway")

        async def session() -> tuple[dict[str, int], dict[str, float], list[str]]:
            store = SqliteStore(data, exclusive=True, clock=clock)
            try:
                gw = Gateway(store=store, static_key=key, certificate=certificate, trust=trust, clock=clock)
            except BaseException:
                store.close()
                raise
            host, port = await gw.start("127.0.0.1", 0)
            api_host, api_port = await gw.serve_api("127.0.0.1", 0)
            console.print(f"gateway 'demo-gateway' listening on {host}:{port}, applications' API on "
                          f"ws://{api_host}:{api_port}; {gw.shield.policy.describe()}")  # fmt: skip
            app = Client(f"ws://{api_host}:{api_port}", root / f"{DEMO_APP}.key")
            await app.__aenter__()
            try:
                names = {gw.store.pairwise_id(DEMO_APP, subject): name for name, subject in subjects.items()}
                into: asyncio.Queue[Any] = asyncio.Queue()
                for entry in await app.list_sensors():  # subscribed before the sensors stream: nothing missed
                    await app.open_subscription(entry.sensor, ["features"], into)
                console.print(f"application {DEMO_APP!r} authorised with its Ed25519 key; it sees {len(names)} "
                              "sensor(s) under its own pairwise ids, and subscribes to 'features'")  # fmt: skip
                pace = ["--speed", str(speed)] if speed > 0 else ["--as-fast-as-possible"]
                procs = []
                for name, _, description in sources:
                    console.print(f"[bold]{description}[/bold]: a sensor process streams {frames} frames")
                    procs.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "cortex_sal.cli", "sensor", "--gateway", f"{host}:{port}",
                        "--identity", str(root / f"sensor-{name}"), "--trust", str(root / "maker"), "--trust",
                        str(root / "site"), "--source", name, "--frames", str(frames), *pace,
                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    ))  # fmt: skip
                rows: list[tuple[str, ...]] = []
                title = "what the application receives over the API (only obfuscated features ever leave)"
                waits = [asyncio.ensure_future(p.communicate()) for p in procs]
                with Live(_released_table(rows, title), console=console, refresh_per_second=12) as live:
                    settle = None
                    while True:
                        try:
                            msg = await asyncio.wait_for(into.get(), 0.1)
                        except TimeoutError:
                            msg = None
                        if isinstance(msg, Features):
                            features = " ".join(f"{x:.3f}" for x in msg.tensor[0])
                            rows.append((names.get(msg.sensor, "?"), msg.sensor[:12], str(msg.seq), msg.state,
                                         f"{msg.coherency:.3f}", _flag(msg.liveness), features))  # fmt: skip
                            live.update(_released_table(rows, title))
                        elif all(w.done() for w in waits):
                            released = int(gw.metrics.value("cortex_sal_frames_total", outcome="released"))
                            settle = settle if settle is not None else time.monotonic()
                            if len(rows) >= released or time.monotonic() - settle > 2.0:
                                break
                if not console.is_terminal:
                    console.line()  # the live table's last frame ends without one
                console.print(f"the application received {len(rows)} features messages")
            finally:
                await app.close()
            lines = []
            for proc, wait in zip(procs, waits, strict=True):
                out, err = wait.result()
                text = out.decode(errors="replace").strip() or err.decode(errors="replace").strip()[-300:]
                lines.append(f"sensor exit {proc.returncode}: {text}")
            await gw.shutdown()
            m = gw.metrics
            counts = {
                "released": int(m.value("cortex_sal_frames_total", outcome="released")),
                "received": int(sum(m.value("cortex_sal_frames_total", outcome=o.value) for o in RefusalReason))
                + int(m.value("cortex_sal_frames_total", outcome="released")),
            }
            return counts, {k: float(v) for k, v in gw.custody().items()}, lines

        try:
            counts, custody, lines = asyncio.run(session())
        finally:
            key.purge()
        for line in lines:
            console.print(line)
        with SqliteStore(data, clock=clock) as store:
            check = store.check()
    st = status()
    attached, closed = int(custody["channels_attached"]), int(custody["channels_closed"])
    purged_ok = attached > 0 and closed == attached and all(line.startswith("sensor exit 0") for line in lines)
    colour = "green" if purged_ok else "red"
    table = Table(title="Custody report", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value")
    table.add_row("frames received / released", f"{counts['received']} / {counts['released']}")
    table.add_row("sessions opened / closed", f"{int(custody['sessions_opened'])} / {int(custody['sessions_closed'])}")
    table.add_row("session keys (gateway)", f"[{colour}]keys purged {closed}/{attached}[/{colour}] (every session's "
                  "transport keys and handshake state)")  # fmt: skip
    table.add_row("arena (from /proc/self/smaps)",
                  f"locked {_flag(st.locked)}, dump-excluded {_flag(st.dump_excluded)}, "
                  f"wiped on fork {_flag(st.wipe_on_fork)}, VmLck {st.vm_lck_kb} kB")  # fmt: skip
    table.add_row("store", f"audit chain {'verified' if check.audit.ok else 'NOT intact'}: {check.audit_head.count} "
                  f"entries; {check.counts['receipts']} signed receipts")  # fmt: skip
    console.print(table)
    console.print(f"keys purged {closed}/{attached}")
    return 0 if purged_ok and check.ok else 1
