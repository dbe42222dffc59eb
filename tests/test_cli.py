"""``cortex-sal status``: the report a newcomer sees first must tell the truth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cortex_sal.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "cortex_sal", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_status_reports_the_protections_in_force() -> None:
    result = _run("status", "--strict-exit")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for label in (
        "locked (mlock, VmFlags lo)",
        "dump-excluded (MADV_DONTDUMP, dd)",
        "wiped on fork (MADV_WIPEONFORK, wf)",
    ):
        line = next(line for line in out.splitlines() if label in line)
        assert "yes" in line and "NO" not in line, line
    assert "libsodium 1.0.20" in out
    assert result.stderr == ""


def test_status_table_matches_smaps_of_the_child() -> None:
    # the region row's address must be a locked mapping of that process: check it in-process
    from cortex_sal.securemem import status
    from cortex_sal.securemem.status import read_smaps

    st = status()
    maps = read_smaps()
    for region in st.regions:
        covering = [m for m in maps if m.start < region.start + region.size and m.end > region.start]
        assert covering and all({"lo", "dd", "wf"} <= m.flags for m in covering)


def test_status_degraded_strict_exit() -> None:
    # a child whose memlock limit is 0 and that lacks CAP_IPC_LOCK reports the refusal and exits 1
    # (without CAP_SETPCAP the prctl fails harmlessly: such a process has no CAP_IPC_LOCK anyway)
    code = (
        "import ctypes, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.prctl(24, 14, 0, 0, 0)\n"  # PR_CAPBSET_DROP CAP_IPC_LOCK: takes effect at exec
        "import os\n"
        "os.execv(sys.executable, [sys.executable, '-W', 'error', '-m', 'cortex_sal', 'status', '--strict-exit'])\n"
    )
    env = dict(os.environ, COLUMNS="200")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NO" in result.stdout and "mlock" in result.stdout
    assert "Warning" not in result.stderr


def test_unknown_command_is_refused() -> None:
    try:
        main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("argparse should refuse an unknown command")


def test_console_script_is_declared() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'cortex-sal = "cortex_sal.cli:main"' in text


# -- cortex-sal selftest ------------------------------------------------------------------


def test_selftest_runs_the_known_answer_suites() -> None:
    result = _run("selftest")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "103 passed, 0 failed" in result.stdout  # the SAL vectors
    assert "FAIL" not in result.stdout


def test_selftest_residue_prints_the_table_and_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "cortex_sal", "selftest", "--residue",
         "--scenario", "x25519_hkdf", "--scenario", "leak_control"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "x25519_hkdf" in line]
    assert [r.split("│")[2].strip() for r in rows] == ["session", "after_purge", "end"]
    assert all(r.split("│")[-2].strip() == "ok" for r in rows), rows
    assert "found (control)" in result.stdout
    assert "no residue in 1 scenario(s)" in result.stdout


def _fake_report(checkpoint: str, heap_hits: int):
    from cortex_sal.testing.residue import CLASSES, KINDS, ResidueReport

    counts = {"key": {cls: dict.fromkeys(KINDS, 0) for cls in CLASSES}}
    counts["key"]["heap"]["exact"] = heap_hits
    return ResidueReport(checkpoint, counts, 2**20)


def test_selftest_residue_exits_non_zero_on_residue(monkeypatch, capsys) -> None:
    from cortex_sal.testing import residue

    def run(scenario):
        leaky = 1 if scenario.name in ("x25519_hkdf", "leak_control") else 0
        return [(_fake_report("session", leaky), True), (_fake_report("end", 0), False)]

    monkeypatch.setattr(residue, "run_scenario", run)
    assert main(["selftest", "--residue", "--scenario", "x25519_hkdf", "--scenario", "leak_control"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "x25519_hkdf: session: key/heap/exact=1" in out


def test_selftest_residue_fails_when_the_control_is_not_seen(monkeypatch, capsys) -> None:
    from cortex_sal.testing import residue

    monkeypatch.setattr(residue, "run_scenario", lambda scenario: [(_fake_report("end", 0), False)])
    assert main(["selftest", "--residue", "--scenario", "aead", "--scenario", "leak_control"]) == 1
    assert "the deliberate leak was not found" in capsys.readouterr().out


def test_selftest_residue_refuses_an_unknown_scenario(capsys) -> None:
    assert main(["selftest", "--residue", "--scenario", "no_such_path"]) == 2
    assert "unknown scenario 'no_such_path'" in capsys.readouterr().out


def test_an_error_message_with_markup_characters_is_printed_verbatim(tmp_path: Path, capsys) -> None:
    """A user-chosen name such as "[/x]" inside an error must not crash rich's markup parser."""
    ca = tmp_path / "ca"
    assert main(["ca", "init", "--kind", "site", "--name", "[/x]", "--out", str(ca)]) == 0
    argv = ["ca", "issue-sensor", "--ca", str(ca), "--model", "eeg_fp1_certified_v1", "--serial", "SN-1",
            "--days", "1", "--out", str(tmp_path / "sensor")]  # fmt: skip
    assert main(argv) == 2  # a site CA cannot issue sensor certificates; its name is in the message
    assert "[/x]" in capsys.readouterr().out
