"""What the kernel says about the arena's mappings, read from outside the arena's own bookkeeping.

* ``mmap`` backend: every data mapping of every region carries ``lo`` (mlocked), ``dd``
  (``MADV_DONTDUMP``) and ``wf`` (``MADV_WIPEONFORK``) in ``/proc/<pid>/smaps`` with
  ``Locked:`` equal to its size; the guard pages are ``---p``, dump-excluded, not locked.
  ``VmLck`` grows by exactly a region's data size when a region is added and falls back when
  a dedicated region is released.
* ``memfd_secret`` backend (where the kernel has it): ``lo`` comes from the kernel mapping
  the pages ``VM_LOCKED`` (no ``mlock`` call), ``dc`` (``MADV_DONTFORK``) replaces ``wf``,
  ``VmLck`` grows by the whole mapping (guards included), and - the strongest check - the
  parent cannot read the pages through ``/proc/<pid>/mem`` at all, so the residue harness
  sees nothing there (an ``mmap`` child is the control: there it reads the key).

Each case runs in a fresh child so that ``VmLck`` has nothing else in it.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from cortex_sal.securemem import _libc
from cortex_sal.testing.residue import read_maps, scan

PAGE = os.sysconf("SC_PAGE_SIZE")


def _memfd_secret_available() -> bool:
    fd = _libc.memfd_secret()
    if fd < 0:
        return False
    os.close(fd)
    return True


MEMFD_SECRET = _memfd_secret_available()
needs_memfd_secret = pytest.mark.skipif(not MEMFD_SECRET, reason="this kernel has no memfd_secret(2)")

PROLOGUE = """
import json, os, sys
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer, configure, status
from cortex_sal.securemem.arena import arena

def vm_lck():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmLck:"):
                return int(line.split()[1])

def smaps():
    out, cur = [], None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            parts = line.split()
            if parts and "-" in parts[0] and not parts[0].endswith(":"):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = {"start": lo, "end": hi, "perms": parts[1]}
            elif parts and parts[0] == "Locked:":
                cur["locked_kb"] = int(parts[1])
            elif parts and parts[0] == "VmFlags:":
                cur["flags"] = parts[1:]
                out.append(cur)
    return out

def regions():
    return [{"base": r.base, "total": r.total, "data": r.data, "size": r.size, "backend": r.backend,
             "dedicated": r.dedicated, "problems": r.problems} for r in arena().regions()]

def say(obj):
    os.write(1, (json.dumps(obj) + "\\n").encode())

result = {}
"""


def run_child(body: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_SAL_")}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", PROLOGUE + textwrap.dedent(body) + "\nsay(result)\n", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def overlapping(maps: list[dict], lo: int, hi: int) -> list[dict]:
    return [m for m in maps if m["start"] < hi and m["end"] > lo]


# -- mmap backend: flags and Locked on every mapping ------------------------------------------


def test_every_arena_mapping_carries_lo_dd_wf() -> None:
    result = run_child(
        """
        keys = [SecureKeyBuffer() for _ in range(2000)]  # two shared regions
        big = SecureBuffer(40 * 1024)  # one dedicated region
        result["regions"] = regions()
        result["smaps"] = smaps()
        s = status()
        result["status"] = [[r.start, r.size, r.locked, r.dump_excluded, r.wipe_on_fork] for r in s.regions]
        """
    )
    regions, maps = result["regions"], result["smaps"]
    assert [(r["dedicated"], r["backend"]) for r in regions] == [(False, "mmap"), (False, "mmap"), (True, "mmap")]
    for r in regions:
        lo, hi = r["data"], r["data"] + r["size"]
        assert r["base"] + PAGE == lo and hi + PAGE == r["base"] + r["total"]
        data_maps = overlapping(maps, lo, hi)
        assert sum(min(m["end"], hi) - max(m["start"], lo) for m in data_maps) == r["size"]
        for m in data_maps:
            assert m["perms"] == "rw-p", m
            assert {"lo", "dd", "wf"} <= set(m["flags"]), m
        assert sum(m["locked_kb"] for m in data_maps) * 1024 == r["size"]  # every page, and nothing else
        for glo in (r["base"], hi):  # the two guard pages
            (guard,) = overlapping(maps, glo, glo + PAGE)
            assert guard["start"] <= glo and guard["end"] >= glo + PAGE
            assert guard["perms"] == "---p"
            assert "dd" in guard["flags"] and "lo" not in guard["flags"]
            assert guard["locked_kb"] == 0
        assert r["problems"] == []
    # status() reports the same from its own reading of smaps
    assert result["status"] == [[r["data"], r["size"], True, True, True] for r in regions]


BACKENDS = ["mmap", pytest.param("memfd_secret", marks=needs_memfd_secret)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmlck_accounts_for_every_region(backend: str) -> None:
    result = run_child(
        """
configure(backend=sys.argv[1], lock_policy="strict")
steps = [("start", vm_lck())]
keys = [SecureKeyBuffer()]
steps.append(("first region", vm_lck()))
big = SecureBuffer(64 * 1024)
steps.append(("dedicated region", vm_lck()))
while len(arena().regions()) < 3:
    keys.append(SecureKeyBuffer())
steps.append(("second shared region", vm_lck()))
result["status_vm_lck"] = status().vm_lck_kb
result["vm_lck"] = vm_lck()
result["regions"] = regions()
big.secure_purge()
steps.append(("dedicated released", vm_lck()))
result["steps"] = steps
""",
        backend,
    )
    first, dedicated, second = result["regions"]
    assert (first["dedicated"], dedicated["dedicated"], second["dedicated"]) == (False, True, False)
    assert {r["backend"] for r in result["regions"]} == {backend}
    # mlock() locks the data pages; memfd_secret's mmap() makes the whole mapping VM_LOCKED
    charged = "size" if backend == "mmap" else "total"
    steps = dict(result["steps"])
    assert steps["first region"] - steps["start"] == first[charged] // 1024
    assert steps["dedicated region"] - steps["first region"] == dedicated[charged] // 1024
    assert steps["second shared region"] - steps["dedicated region"] == second[charged] // 1024
    assert steps["dedicated released"] == steps["second shared region"] - dedicated[charged] // 1024
    assert result["status_vm_lck"] == result["vm_lck"] == steps["second shared region"]
    assert all(r["problems"] == [] for r in result["regions"])


# -- memfd_secret: the parent cannot read the pages at all ------------------------------------

HOLDER = """
configure(backend=sys.argv[1], lock_policy="strict")
key = SecureKeyBuffer.from_fd(0)
say({"address": key._address(), "regions": regions()})
os.read(0, 3)  # paused while the parent reads this process's memory
key.secure_purge()
"""


@pytest.mark.parametrize("backend", ["mmap", pytest.param("memfd_secret", marks=needs_memfd_secret)])
def test_parent_reads_of_the_arena_through_proc_pid_mem(backend: str) -> None:
    key = os.urandom(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_SAL_")}
    proc = subprocess.Popen(
        [sys.executable, "-W", "error", "-c", PROLOGUE + HOLDER, backend],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(key)
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else b""
        info = json.loads(line)
        ranges = [(r["data"], r["data"] + r["size"]) for r in info["regions"]]
        assert [r["backend"] for r in info["regions"]] == [backend]
        try:
            with open(f"/proc/{proc.pid}/mem", "rb", buffering=0) as mem:
                mem.seek(info["address"])
                seen: bytes | int = mem.read(32)
        except OSError as exc:
            seen = exc.errno or -1
        report = scan(proc.pid, {"key": key}, ranges, "held")
        data_maps = [m for m in read_maps(proc.pid) if any(m.start < hi and m.end > lo for lo, hi in ranges)]
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert data_maps
    if backend == "mmap":  # the control: root reads the locked key where it lies
        assert seen == key
        assert report.counts["key"]["arena"]["exact"] == 1, report.table()
        assert not any(f"{lo:#x}" in u for lo, _ in ranges for u in report.unreadable)
        for m in data_maps:
            assert {"lo", "dd", "wf"} <= m.flags and m.perms == "rw-p"
    else:  # not even root gets the bytes: the pages are out of the kernel's direct map
        assert seen == errno.EIO
        assert report.total(secret="key") == 0, report.table()
        assert any(f"{m.start:#x}-" in u for m in data_maps for u in report.unreadable), report.unreadable
        for m in data_maps:
            # VM_LOCKED from the mmap itself, dump-excluded, DONTFORK instead of WIPEONFORK, shared
            assert {"lo", "dd", "dc", "sh"} <= m.flags and "wf" not in m.flags and m.perms == "rw-s", m
        assert info["regions"][0]["problems"] == []  # no mlock(2) was needed, none failed
