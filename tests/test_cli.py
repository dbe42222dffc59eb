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
