"""Core dumps: a child dumped mid-session holds no copy of any secret, and the arena is not in it.

Two ways of dumping, both scanned the same way:

* ``gcore`` (gdb) on a residue-harness child paused at a checkpoint, while it holds live
  session keys and decrypted samples in the arena;
* the kernel's own core (``core_pattern`` is read: a ``|helper`` pipe or a path outside the
  working directory cannot be collected here and is skipped with the reason), written when
  the child gets ``SIGABRT`` - from the parent while it is paused, or from its own
  ``os.abort()``.

The parent knows every secret (computed with ``cryptography``, or made by itself and sent
through a pipe straight into locked memory) and counts in the core file the residue
harness's patterns (exact, 8-byte fragments, HMAC pads, hex, base64). The core's ELF
program headers must give the arena's pages no bytes in the file (``MADV_DONTDUMP``).
Controls in this module show the scan *can* fail: a secret copied into an ordinary
``bytes`` object in the child is found in the core.

Then :func:`cortex_sal.securemem.harden_process`: after it, ``abort()`` leaves no core at
all (even with ``RLIMIT_CORE`` raised back, which root may do), a same-user non-root process
can neither read ``/proc/<pid>/mem`` nor ``ptrace`` the process, and root's ``gcore`` still
works (``CAP_SYS_PTRACE``) but still finds no arena page.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cortex_sal.errors import ProcessHardeningError, SecureMemoryError, WrongTypeError
from cortex_sal.securemem import _libc
from cortex_sal.testing.residue import Peer, ResidueReport, _FragmentIndex, patterns, scan, spawn

GCORE = shutil.which("gcore")
CORE_PATTERN_PATH = "/proc/sys/kernel/core_pattern"
PT_LOAD = 1
SIGABRT_EXIT = -signal.SIGABRT
NOBODY = 65534


# -- where the kernel writes a core --------------------------------------------------------


def _core_pattern() -> str | None:
    try:
        with open(CORE_PATTERN_PATH) as fh:
            return fh.read().strip()
    except OSError:
        return None


def kernel_core_unavailable() -> str | None:
    """Why a kernel core cannot be collected from a temp working directory, or None."""
    pattern = _core_pattern()
    if pattern is None:
        return f"{CORE_PATTERN_PATH} is unreadable"
    if pattern.startswith("|"):
        return f"core_pattern pipes cores to a helper ({pattern!r}): no core file to scan"
    if "/" in pattern:
        return f"core_pattern writes outside the working directory ({pattern!r})"
    if not pattern:
        return "core_pattern is empty"
    return None


def find_core(workdir: Path) -> Path | None:
    """The core file the kernel wrote into ``workdir`` (it was empty before the crash)."""
    files = [p for p in workdir.iterdir() if p.is_file()]
    assert len(files) <= 1, files
    return files[0] if files else None


needs_kernel_core = pytest.mark.skipif(kernel_core_unavailable() is not None, reason=str(kernel_core_unavailable()))
needs_gcore = pytest.mark.skipif(GCORE is None, reason="gdb's gcore is not installed")


@pytest.fixture(autouse=True)
def _drop_cores(tmp_path: Path):
    """Cores run to 30-100 MiB: delete them once a test has scanned them."""
    yield
    for path in tmp_path.rglob("*"):
        if path.is_file():
            path.unlink()


def gcore(pid: int, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GCORE), "-o", str(workdir / "gcore"), str(pid)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
    )


# -- reading a core ------------------------------------------------------------------------


def pt_loads(core: Path) -> list[tuple[int, int, int, int]]:
    """``(vaddr, memsz, filesz, offset)`` of every PT_LOAD of an ELF64 little-endian core."""
    with open(core, "rb") as fh:
        header = fh.read(64)
        assert header[:4] == b"\x7fELF", "not an ELF file"
        assert header[4] == 2 and header[5] == 1, "not ELF64 little-endian"
        (e_type,) = struct.unpack_from("<H", header, 16)
        assert e_type == 4, f"ELF type {e_type}, not a core (ET_CORE)"
        (phoff,) = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        p_type, _, offset, vaddr, _, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        if p_type == PT_LOAD:
            out.append((vaddr, memsz, filesz, offset))
    return out


def dumped_bytes_in(loads: list[tuple[int, int, int, int]], lo: int, hi: int) -> int:
    """How many bytes of ``[lo, hi)`` the core file holds."""
    return sum(max(0, min(vaddr + filesz, hi) - max(vaddr, lo)) for vaddr, _, filesz, _ in loads)


def scan_core(core: Path, secrets: dict[str, bytes]) -> dict[str, dict[str, int]]:
    """Counts per secret and pattern kind over the whole core file (notes included)."""
    data = core.read_bytes()
    pats = {name: patterns(value) for name, value in secrets.items()}
    counts = {name: dict.fromkeys(by_kind, 0) for name, by_kind in pats.items()}
    for name, by_kind in pats.items():
        for kind, needles in by_kind.items():
            if kind != "frag8":
                counts[name][kind] = sum(data.count(needle) for needle in needles)
    for name, n in _FragmentIndex(pats).count(data).items():
        counts[name]["frag8"] = n
    return counts


def hits(counts: dict[str, dict[str, int]]) -> list[str]:
    return [f"{name}/{kind}={n}" for name, by_kind in counts.items() for kind, n in by_kind.items() if n]


def check_core(core: Path, secrets: dict[str, bytes], arena: list[tuple[int, int]]) -> dict[str, dict[str, int]]:
    """Assert the core is a real dump without arena pages; return the secret counts."""
    loads = pt_loads(core)
    assert sum(filesz for _, _, filesz, _ in loads) > 4 * 2**20, "the core holds almost no memory: not a real dump"
    assert arena, "the child reported no arena region"
    for lo, hi in arena:
        assert dumped_bytes_in(loads, lo, hi) == 0, f"arena pages {lo:#x}-{hi:#x} are in the core"
    return scan_core(core, secrets)


# -- a residue-harness child, dumped while paused at a checkpoint ---------------------------


class _Dumped(Exception):
    """Ends a scenario's parent side once the paused child has been dumped."""


class PausedPeer(Peer):
    """A Peer that, at checkpoint ``at``, scans the paused child and then hands it to ``dump``."""

    def __init__(self, proc: subprocess.Popen[bytes], at: str, dump: Callable[[subprocess.Popen[bytes]], None]) -> None:
        super().__init__(proc)
        self.at = at
        self.dump = dump
        self.arena: list[tuple[int, int]] = []
        self.report: ResidueReport | None = None

    def checkpoint(self, name: str, *, session_live: bool) -> ResidueReport:
        if name != self.at:
            return super().checkpoint(name, session_live=session_live)
        msg = self._line()
        assert msg.get("checkpoint") == name, msg
        self.arena = [(int(lo), int(hi)) for lo, hi in msg["arena"]]  # type: ignore[union-attr]
        self.report = scan(self.proc.pid, self.secrets, self.arena, name)
        self.dump(self.proc)
        raise _Dumped


def dump_scenario(scenario: str, at: str, dump: Callable[[subprocess.Popen[bytes]], None]) -> PausedPeer:
    from cortex_sal.testing.scenarios import SCENARIOS

    with spawn(scenario) as spawned:
        peer = PausedPeer(spawned.proc, at, dump)
        with pytest.raises(_Dumped):
            SCENARIOS[scenario].parent(peer)
    assert peer.report is not None
    return peer


def abort_with_core(proc: subprocess.Popen[bytes]) -> None:
    """Let the paused child dump core (the parent lifts its RLIMIT_CORE), abort it, and wait."""
    resource.prlimit(proc.pid, resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    os.kill(proc.pid, signal.SIGABRT)
    proc.wait(timeout=120)  # the core is complete once the child is reaped


# (scenario, checkpoint, secrets that must be live in the arena at that moment)
LIVE_SESSIONS = {
    "keros_v1_gateway": ("mid_session", ("session_key", "frame_key_s2g", "frame_key_g2s", "middle_samples")),
    "x25519_hkdf": ("session", ("sensor_private", "gateway_private", "shared_secret", "session_key")),
    "ed25519_signing": ("signing", ("ed25519_seed",)),
}


def _assert_live_in_arena(peer: PausedPeer, live: tuple[str, ...]) -> None:
    assert peer.report is not None
    for name in live:
        assert peer.report.counts[name]["arena"]["exact"] >= 1, (name, peer.report.table())
    assert peer.report.hits(outside_arena=True) == [], peer.report.table()


@needs_gcore
def test_gcore_mid_session_holds_no_secret(tmp_path: Path) -> None:
    at, live = LIVE_SESSIONS["keros_v1_gateway"]
    results: list[subprocess.CompletedProcess[str]] = []
    peer = dump_scenario("keros_v1_gateway", at, lambda proc: results.append(gcore(proc.pid, tmp_path)))
    (result,) = results
    assert result.returncode == 0, result.stderr[-2000:]
    core = tmp_path / f"gcore.{peer.proc.pid}"
    _assert_live_in_arena(peer, live)  # the secrets were in memory when it was dumped
    counts = check_core(core, peer.secrets, peer.arena)
    assert hits(counts) == [], hits(counts)


@needs_kernel_core
@pytest.mark.parametrize("scenario", list(LIVE_SESSIONS))
def test_kernel_core_mid_session_holds_no_secret(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at, live = LIVE_SESSIONS[scenario]
    monkeypatch.chdir(tmp_path)  # the child inherits it: core_pattern is relative

    peer = dump_scenario(scenario, at, abort_with_core)
    assert peer.proc.returncode == SIGABRT_EXIT
    core = find_core(tmp_path)
    assert core is not None, "the kernel wrote no core for the aborted child"
    _assert_live_in_arena(peer, live)
    counts = check_core(core, peer.secrets, peer.arena)
    assert hits(counts) == [], hits(counts)


@needs_gcore
def test_control_gcore_finds_a_leaked_copy(tmp_path: Path) -> None:
    """The leak-control child keeps the key in a ``bytes`` and its hex: the gcore scan must see them."""
    peer = dump_scenario("leak_control", "session", lambda proc: gcore(proc.pid, tmp_path))
    counts = check_core(tmp_path / f"gcore.{peer.proc.pid}", peer.secrets, peer.arena)
    assert counts["leaked_key"]["exact"] >= 1 and counts["leaked_key"]["hex"] >= 1, counts
    assert peer.report is not None and peer.report.counts["leaked_key"]["arena"]["exact"] >= 1


@needs_kernel_core
def test_control_kernel_core_finds_a_leaked_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    peer = dump_scenario("leak_control", "session", abort_with_core)
    assert peer.proc.returncode == SIGABRT_EXIT
    core = find_core(tmp_path)
    assert core is not None
    counts = check_core(core, peer.secrets, peer.arena)
    assert counts["leaked_key"]["exact"] >= 1 and counts["leaked_key"]["hex"] >= 1, counts
    assert counts["leaked_key"]["frag8"] >= 4  # the fragments of the exact copy at least


# -- a child of this module's own: key from a pipe, optional hardening, then os.abort() ------

ABORT_CHILD = """
import ctypes, json, os, resource, sys
modes = set(sys.argv[1].split(","))
try:  # root may raise the hard limit; otherwise take what the hard limit allows
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
except (OSError, ValueError):
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
os.chdir(sys.argv[2])
from cortex_sal.securemem import SecureKeyBuffer, configure, harden_process
from cortex_sal.securemem import _libc
from cortex_sal.securemem.arena import arena
if "memfd_secret" in modes:
    configure(backend="memfd_secret", lock_policy="strict")
key = SecureKeyBuffer.from_fd(0)
kept = []
if "leak" in modes:
    with key.export_bytearray() as lent:
        kept.append(bytes(lent))  # the mistake the custody rules forbid
if "nobody" in modes:  # become an ordinary user (that clears "dumpable": set it back)
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    assert _libc.prctl(_libc.PR_SET_DUMPABLE, 1) == 0
out = {"arena": [[r.data, r.data + r.size] for r in arena().regions()], "address": key._address(),
       "backends": [r.backend for r in arena().regions()], "limit": list(resource.getrlimit(resource.RLIMIT_CORE))}
if "harden" in modes or "harden_keep_cores" in modes:
    report = harden_process(core_dumps="harden_keep_cores" in modes)
    out["report"] = {"dumpable": report.dumpable, "core_limit": list(report.core_limit),
                     "dumpable_before": report.dumpable_before,
                     "core_limit_before": list(report.core_limit_before),
                     "core_dumps_disabled": report.core_dumps_disabled}
if "nondumpable_only" in modes:  # the kernel's rule harden_process() relies on, with no core limit
    assert _libc.prctl(_libc.PR_SET_DUMPABLE, 0) == 0
os.write(1, (json.dumps(out) + "\\n").encode())
os.read(0, 3)  # paused: the parent may look at the process now
os.abort()
"""


class AbortChild:
    """The child above, started with ``modes``; ``key`` went through the pipe into its arena."""

    def __init__(self, modes: str, workdir: Path) -> None:
        self.key = os.urandom(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_SAL_") and k != "PYTHONFAULTHANDLER"}
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "error", "-c", ABORT_CHILD, modes, str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=workdir,
        )
        try:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(self.key)
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise AssertionError(f"child failed ({self.proc.returncode}): {err}")
        except BaseException:
            self.close()
            raise
        self.info = json.loads(line)
        self.arena = [(lo, hi) for lo, hi in self.info["arena"]]

    def abort(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=120)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def child_factory(tmp_path: Path):
    made: list[AbortChild] = []

    def make(modes: str, workdir: Path | None = None) -> AbortChild:
        workdir = workdir or tmp_path
        child = AbortChild(modes, workdir)
        made.append(child)
        return child

    yield make
    for child in made:
        child.close()


def _memfd_secret_available() -> bool:
    fd = _libc.memfd_secret()
    if fd < 0:
        return False
    os.close(fd)
    return True


def _read_mem(pid: int, address: int, size: int) -> bytes | int:
    """Read another process's memory as this (root) process does; errno on failure."""
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            return mem.read(size)
    except OSError as exc:
        return exc.errno or -1


@needs_kernel_core
@pytest.mark.parametrize("backend", ["mmap", "memfd_secret"])
def test_abort_core_holds_no_key(backend: str, child_factory, tmp_path: Path) -> None:
    """``os.abort()`` with RLIMIT_CORE unlimited writes a core; the key held in the arena is not in it."""
    if backend == "memfd_secret" and not _memfd_secret_available():
        pytest.skip("this kernel has no memfd_secret(2)")
    child = child_factory("plain" if backend == "mmap" else "memfd_secret")
    assert child.info["backends"] == [backend]
    assert child.info["limit"][0] != 0, "the child could not raise RLIMIT_CORE"
    if backend == "mmap":  # the key is really there: this process reads it in the arena
        assert _read_mem(child.proc.pid, child.info["address"], 32) == child.key
    else:  # secret memory: not even root's /proc/<pid>/mem read reaches it
        assert _read_mem(child.proc.pid, child.info["address"], 32) == errno.EIO
    assert child.abort() == SIGABRT_EXIT
    core = find_core(tmp_path)
    assert core is not None, "no core written: this test proves nothing"
    counts = check_core(core, {"key": child.key}, child.arena)
    assert hits(counts) == [], hits(counts)


@needs_kernel_core
def test_control_abort_core_finds_a_bytes_copy(child_factory, tmp_path: Path) -> None:
    child = child_factory("leak")
    assert child.abort() == SIGABRT_EXIT
    core = find_core(tmp_path)
    assert core is not None
    counts = check_core(core, {"key": child.key}, child.arena)
    assert counts["key"]["exact"] >= 1, counts


# -- harden_process() --------------------------------------------------------------------------


def _suid_dumpable() -> int | None:
    try:
        with open("/proc/sys/fs/suid_dumpable") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return None


def test_harden_process_leaves_no_core(child_factory, tmp_path: Path) -> None:
    """After ``harden_process()`` the kernel writes no core, even for a leaked ``bytes`` copy."""
    child = child_factory("leak,harden")
    report = child.info["report"]
    assert report["dumpable_before"] is True and report["dumpable"] is False
    assert report["core_limit"] == [0, 0]
    assert report["core_limit_before"] == child.info["limit"] and child.info["limit"][0] != 0
    assert report["core_dumps_disabled"] is True
    assert child.abort() == SIGABRT_EXIT
    assert find_core(tmp_path) is None


@needs_kernel_core
def test_non_dumpable_alone_stops_the_core(child_factory, tmp_path: Path) -> None:
    """PR_SET_DUMPABLE=0 with RLIMIT_CORE unlimited: still no core (so a raised limit cannot bring one back)."""
    child = child_factory("leak,nondumpable_only")
    assert child.info["limit"][0] != 0, "the child could not raise RLIMIT_CORE"
    assert child.abort() == SIGABRT_EXIT
    assert find_core(tmp_path) is None


@needs_kernel_core
def test_harden_process_core_dumps_true_changes_nothing(child_factory, tmp_path: Path) -> None:
    """``core_dumps=True`` only reports: the process stays dumpable and a core is written (without the arena)."""
    child = child_factory("harden_keep_cores")
    report = child.info["report"]
    assert report["dumpable"] is True and report["dumpable_before"] is True
    assert report["core_limit"] == report["core_limit_before"] == child.info["limit"]
    assert report["core_dumps_disabled"] is False
    assert child.abort() == SIGABRT_EXIT
    core = find_core(tmp_path)
    assert core is not None
    counts = check_core(core, {"key": child.key}, child.arena)
    assert hits(counts) == [], hits(counts)


def _has_cap(bit: int) -> bool:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return False


CAP_SYS_PTRACE = 19


@needs_gcore
def test_gcore_as_root_on_a_hardened_process(child_factory, tmp_path: Path) -> None:
    """What gdb does to a hardened process: root (CAP_SYS_PTRACE) still attaches and dumps - without the arena.

    Without CAP_SYS_PTRACE the attach is refused (see the same-user test below).
    """
    child = child_factory("harden")
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    result = gcore(child.proc.pid, dumps)
    core = dumps / f"gcore.{child.proc.pid}"
    if _has_cap(CAP_SYS_PTRACE):
        assert result.returncode == 0, result.stderr[-2000:]
        counts = check_core(core, {"key": child.key}, child.arena)
        assert hits(counts) == [], hits(counts)
    else:
        assert result.returncode != 0 or not core.exists()
    assert child.abort() == SIGABRT_EXIT
    assert find_core(tmp_path) is None


READER = """
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
pid, address = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
out = {}
try:
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        mem.seek(address)
        out["mem"] = mem.read(32).hex()
except OSError as exc:
    out["mem"] = exc.errno
PTRACE_SEIZE = 0x4206
out["ptrace"] = 0 if libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0 else ctypes.get_errno()
print(json.dumps(out))  # exiting detaches a seized tracee
"""


def _yama_scope() -> int:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as fh:
            return int(fh.read())
    except OSError:
        return 0


@pytest.mark.skipif(os.geteuid() != 0, reason="switching both processes to uid 65534 needs root")
@pytest.mark.skipif(_yama_scope() != 0, reason="Yama ptrace_scope restricts same-user ptrace already")
@pytest.mark.parametrize("hardened", [False, True], ids=["control", "hardened"])
def test_same_user_cannot_read_or_trace_a_hardened_process(hardened: bool, child_factory, tmp_path: Path) -> None:
    """Both processes run as uid 65534 without capabilities: only ``harden_process()`` shuts the reader out."""
    tmp_path.chmod(0o777)  # the child, now uid 65534, may still dump into it
    child = child_factory("nobody,harden" if hardened else "nobody")
    reader = subprocess.run(
        [sys.executable, "-c", READER, str(child.proc.pid), str(child.info["address"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reader.returncode == 0, reader.stderr
    seen = json.loads(reader.stdout)
    if hardened:
        assert child.info["report"]["dumpable"] is False
        assert seen["mem"] == errno.EACCES
        assert seen["ptrace"] == errno.EPERM
    else:  # the control: same user, dumpable - the key in the arena is readable, ptrace allowed
        assert bytes.fromhex(seen["mem"]) == child.key
        assert seen["ptrace"] == 0
    child.close()


# -- harden_process() refusals, each in a child (the call is process-wide) ---------------------

REFUSAL_CHILD = """
import ctypes, json, resource, sys
from cortex_sal.errors import ProcessHardeningError, SecureMemoryError, WrongTypeError
from cortex_sal.securemem import harden, _libc
case = sys.argv[1]
real_prctl = _libc.prctl
out = {}
if case == "set_fails":
    def prctl(option, *args):
        if option == _libc.PR_SET_DUMPABLE:
            ctypes.set_errno(1)  # EPERM
            return -1
        return real_prctl(option, *args)
    harden._libc.prctl = prctl
elif case == "readback_lies":
    def prctl(option, *args):
        if option == _libc.PR_SET_DUMPABLE:
            return 0  # claims success, changes nothing
        return real_prctl(option, *args)
    harden._libc.prctl = prctl
elif case == "setrlimit_fails":
    def setrlimit(which, limits):
        raise OSError(1, "Operation not permitted")
    harden.resource.setrlimit = setrlimit
try:
    harden.harden_process(core_dumps=None if case == "bad_type" else False)
    out["outcome"] = "returned"
except (ProcessHardeningError, WrongTypeError) as exc:
    out["outcome"] = type(exc).__name__
    out["message"] = str(exc)
    out["secure_memory_error"] = isinstance(exc, SecureMemoryError)
harden._libc.prctl = real_prctl
out["dumpable"] = _libc.prctl(_libc.PR_GET_DUMPABLE)
out["limit"] = list(resource.getrlimit(resource.RLIMIT_CORE))
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("case", "error", "dumpable_after", "words"),
    [
        ("bad_type", "WrongTypeError", 1, "core_dumps must be a bool"),
        ("set_fails", "ProcessHardeningError", 1, "nothing was changed"),
        ("readback_lies", "ProcessHardeningError", 1, "PR_GET_DUMPABLE still reports 1"),
        ("setrlimit_fails", "ProcessHardeningError", 0, "already non-dumpable"),
    ],
)
def test_harden_process_refusals(case: str, error: str, dumpable_after: int, words: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(REFUSAL_CHILD), case],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"] == error, out
    assert words in out["message"]
    assert out["dumpable"] == dumpable_after
    limit_before = list(resource.getrlimit(resource.RLIMIT_CORE))  # the child inherited ours
    assert out["limit"] == limit_before  # no refusal lowered the limit behind the caller's back
    if error == "ProcessHardeningError":
        assert out["secure_memory_error"] is True


def test_harden_process_error_types() -> None:
    assert issubclass(ProcessHardeningError, SecureMemoryError)
    assert issubclass(WrongTypeError, TypeError)
