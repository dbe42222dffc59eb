"""Lock policy and backend, exercised in child processes the kernel refuses to lock for.

Each child runs ``python -W error`` with ``RLIMIT_MEMLOCK`` at 64 KiB and without
``CAP_IPC_LOCK`` (dropped from the bounding set before exec, so root's effective set
lacks it), allocates more keys than 64 KiB of locked memory can hold, and prints JSON.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from cortex_sal.securemem import _libc

MEMLOCK_LIMIT = 64 * 1024
PR_CAPBSET_DROP = 24
CAP_SETPCAP = 8
CAP_IPC_LOCK = 14
KEY_SPAN = 48  # 32 bytes + 16-byte canary
FIRST_REGION_KEYS = MEMLOCK_LIMIT // KEY_SPAN  # 1365 keys fill the first (64 KiB) region

_prctl = ctypes.CDLL(None, use_errno=True).prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def _cap_eff() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise AssertionError("no CapEff line")


HAVE_IPC_LOCK = bool(_cap_eff() >> CAP_IPC_LOCK & 1)
HAVE_SETPCAP = bool(_cap_eff() >> CAP_SETPCAP & 1)


def _memfd_secret_works() -> tuple[bool, int]:
    fd = _libc.memfd_secret()
    if fd < 0:
        return False, _libc.errno()
    os.close(fd)
    return True, 0


MEMFD_SECRET, MEMFD_SECRET_ERRNO = _memfd_secret_works()


def _restrict() -> None:  # runs in the forked child, before exec
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (MEMLOCK_LIMIT, MEMLOCK_LIMIT))
    if HAVE_IPC_LOCK and _prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK) failed")


needs_cap_drop = pytest.mark.skipif(
    HAVE_IPC_LOCK and not HAVE_SETPCAP, reason="CAP_IPC_LOCK present but cannot be dropped (no CAP_SETPCAP)"
)

PROLOGUE = """
import json, os, sys, logging

def cap_eff():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)

def wf_mappings():
    n = 0
    with open("/proc/self/smaps") as fh:
        for line in fh:
            if line.startswith("VmFlags:") and " wf" in line:
                n += 1
    return n

def data_flags(start, size):
    out, cur = [], None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0] if line.strip() else ""
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                cur = (lo, hi, line.split()[1])
            elif head == "VmFlags:" and cur and cur[0] < start + size and cur[1] > start:
                out.append([cur[2], sorted(line.split()[1:])])
    return out

import resource
result = {"capeff_ipc_lock": bool(cap_eff() >> 14 & 1),
          "memlock": list(resource.getrlimit(resource.RLIMIT_MEMLOCK))}
if RESTRICTED and result["capeff_ipc_lock"]:
    print(json.dumps(result))
    sys.exit(3)

records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())

logging.getLogger("cortex_sal.securemem").addHandler(Keep())

from cortex_sal.errors import MemoryLockError, SecureMemoryError
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer, status
from cortex_sal.securemem.arena import arena
from cortex_sal.crypto import hmac_sha256
import hmac as std_hmac, hashlib

def key_works(key):
    with key.export_bytearray() as ba:
        raw = bytes(ba)
    return (key.constant_time_compare(raw)
            and hmac_sha256(key, b"m") == std_hmac.new(raw, b"m", hashlib.sha256).digest())

def regions_json():
    s = status()
    return {
        "locked": s.locked, "degraded": s.degraded, "vm_lck_kb": s.vm_lck_kb,
        "backend": s.backend, "lock_policy": s.lock_policy,
        "regions": [
            {"size": r.size, "backend": r.backend, "dedicated": r.dedicated, "locked": r.locked,
             "dump_excluded": r.dump_excluded, "wipe_on_fork": r.wipe_on_fork,
             "locked_kb": r.locked_kb, "problems": list(r.problems),
             "smaps": data_flags(r.start, r.size)}
            for r in s.regions
        ],
    }
"""


def run_child(
    body: str, env_extra: dict[str, str], *, restricted: bool = True
) -> tuple[dict, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_SAL_") and k != "PYTHONWARNINGS"}
    env.update(env_extra)
    code = (
        f"RESTRICTED = {restricted}\n"
        + PROLOGUE
        + textwrap.dedent(body)
        + "\nresult['log'] = records\nprint(json.dumps(result))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_restrict if restricted else None,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "Warning" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if restricted:
        assert result["capeff_ipc_lock"] is False
        assert result["memlock"] == [MEMLOCK_LIMIT, MEMLOCK_LIMIT]
    return result, proc


# -- best-effort ------------------------------------------------------------------------


@needs_cap_drop
def test_best_effort_keeps_working_and_reports():
    result, proc = run_child(
        """
        keys = [SecureKeyBuffer() for _ in range(3000)]
        result["all_work"] = all(key_works(k) for k in keys[::50]) and key_works(keys[-1])
        result["distinct"] = len({k._address() for k in keys})
        result["status"] = regions_json()
        result["log"] = records
        result["live"] = list(arena().live_slots())
        big = SecureBuffer.random(64 * 1024)  # a dedicated region, refused as well
        result["big_ok"] = big.constant_time_compare(big)
        result["status_big"] = regions_json()
        big.secure_purge()
        for k in keys:
            k.secure_purge()
        result["live_after"] = list(arena().live_slots())
        """,
        {"CORTEX_SAL_LOCK_POLICY": "best-effort"},
    )
    assert result["all_work"] is True
    assert result["distinct"] == 3000
    assert result["live"] == [3000, 3000 * 32]
    assert result["live_after"] == [0, 0]
    assert result["big_ok"] is True
    s = result["status"]
    assert s["lock_policy"] == "best-effort" and s["backend"] == "mmap"
    assert s["locked"] is False and s["degraded"] is True
    sizes = [r["size"] for r in s["regions"]]
    assert sizes == [64 * 1024, 128 * 1024]
    first, second = s["regions"]
    # the first region fits the limit exactly; the second does not
    assert first["locked"] is True and first["problems"] == []
    assert second["locked"] is False
    assert any("mlock" in p and os.strerror(errno.ENOMEM) in p for p in second["problems"])
    # the kernel's view agrees: no "lo" on the refused region, "lo" on the granted one
    assert first["smaps"] and all("lo" in flags for _, flags in first["smaps"])
    assert second["smaps"] and all("lo" not in flags for _, flags in second["smaps"])
    # the other protections were still applied to the unlocked region
    assert second["dump_excluded"] is True and second["wipe_on_fork"] is True
    assert s["vm_lck_kb"] <= MEMLOCK_LIMIT // 1024
    big = [r for r in result["status_big"]["regions"] if r["dedicated"]]
    assert len(big) == 1 and big[0]["locked"] is False and big[0]["problems"]
    # reported through the logger, never as a Python warning (the child ran under -W error)
    assert any("mlock" in m and "best-effort" in m for m in result["log"])
    assert "Warning" not in proc.stderr


# -- strict -----------------------------------------------------------------------------


@needs_cap_drop
def test_strict_raises_at_refused_region_and_leaves_nothing_behind():
    result, _ = run_child(
        """
        keys = []
        result["error"] = None
        counts = []
        wf_before = None
        for i in range(3000):
            regions_before = len(arena().regions())
            wf_before = wf_mappings()
            try:
                keys.append(SecureKeyBuffer())
            except MemoryLockError as exc:
                result["error"] = {"index": i, "message": str(exc),
                                   "is_secure_memory_error": isinstance(exc, SecureMemoryError)}
                break
            counts.append(len(arena().regions()))
        result["regions_before_fail"] = regions_before
        result["regions_after_fail"] = len(arena().regions())
        result["wf_before"], result["wf_after"] = wf_before, wf_mappings()
        result["keys_work"] = all(key_works(k) for k in keys)
        result["live"] = list(arena().live_slots())
        try:
            SecureKeyBuffer()
            result["retry"] = "allocated"
        except MemoryLockError:
            result["retry"] = "MemoryLockError"
        result["regions_after_retry"] = len(arena().regions())
        try:
            SecureBuffer(64 * 1024)
            result["dedicated"] = "allocated"
        except MemoryLockError:
            result["dedicated"] = "MemoryLockError"
        result["regions_after_dedicated"] = len(arena().regions())
        result["wf_end"] = wf_mappings()
        # a freed slot can be handed out again without a new region
        address = keys[7]._address()
        keys[7].secure_purge()
        again = SecureKeyBuffer()
        result["reused"] = again._address() == address and key_works(again)
        result["status"] = regions_json()
        """,
        {"CORTEX_SAL_LOCK_POLICY": "strict"},
    )
    err = result["error"]
    assert err is not None, "strict policy allocated 3000 keys past the memlock limit"
    assert err["is_secure_memory_error"] is True
    assert err["index"] == FIRST_REGION_KEYS
    assert "mlock" in err["message"]
    assert result["regions_before_fail"] == 1
    assert result["regions_after_fail"] == 1
    assert result["wf_after"] == result["wf_before"]  # the refused mapping was unmapped
    assert result["keys_work"] is True
    assert result["live"] == [FIRST_REGION_KEYS, FIRST_REGION_KEYS * 32]
    assert result["retry"] == "MemoryLockError"
    assert result["regions_after_retry"] == 1
    assert result["dedicated"] == "MemoryLockError"
    assert result["regions_after_dedicated"] == 1
    assert result["wf_end"] == result["wf_before"]
    assert result["reused"] is True
    s = result["status"]
    assert s["lock_policy"] == "strict"
    assert s["locked"] is True and s["degraded"] is False
    assert [r["problems"] for r in s["regions"]] == [[]]


@needs_cap_drop
def test_switching_to_strict_refused_while_a_region_is_weak():
    result, _ = run_child(
        """
        from cortex_sal.securemem import configure
        keys = [SecureKeyBuffer() for _ in range(2000)]  # second region: unlocked
        try:
            configure(lock_policy="strict")
            result["switch"] = "switched"
        except MemoryLockError as exc:
            result["switch"] = "MemoryLockError"
        result["policy"] = arena().lock_policy
        result["work"] = key_works(keys[-1])
        """,
        {"CORTEX_SAL_LOCK_POLICY": "best-effort"},
    )
    assert result["switch"] == "MemoryLockError"
    assert result["policy"] == "best-effort"
    assert result["work"] is True


def test_unrestricted_child_locks_everything():
    """Control: the same allocation without the limits is fully locked (root, CAP_IPC_LOCK)."""
    if not HAVE_IPC_LOCK and resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] < 1 << 20:
        pytest.skip("this process cannot lock 200 KiB")
    result, _ = run_child(
        """
        keys = [SecureKeyBuffer() for _ in range(3000)]
        result["work"] = key_works(keys[-1])
        result["status"] = regions_json()
        """,
        {"CORTEX_SAL_LOCK_POLICY": "strict"},
        restricted=False,
    )
    assert result["work"] is True
    s = result["status"]
    assert s["locked"] is True and not s["degraded"]
    assert [r["size"] for r in s["regions"]] == [64 * 1024, 128 * 1024]
    assert all(r["problems"] == [] for r in s["regions"])


# -- the memfd_secret backend -----------------------------------------------------------

MEMFD_BODY = """
keys = [SecureKeyBuffer() for _ in range(3000)]
result["work"] = all(key_works(k) for k in keys[::100]) and key_works(keys[-1])
big = SecureBuffer.random(64 * 1024)
result["big_work"] = big.constant_time_compare(big)
result["status"] = regions_json()
result["vm_lck"] = result["status"]["vm_lck_kb"]
# the kernel will not read secret memory even for /proc/self/mem (no GUP on it)
fd = os.open("/proc/self/mem", os.O_RDONLY)
try:
    try:
        os.pread(fd, 32, keys[0]._address())
        result["proc_mem"] = "readable"
    except OSError as exc:
        result["proc_mem"] = exc.errno
finally:
    os.close(fd)
# a forked child does not inherit the secret mapping at all (MADV_DONTFORK)
regions = [(r.data, r.size, r.backend) for r in arena().regions()]
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    code = 0
    with open("/proc/self/maps") as fh:
        spans = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in fh]
    for data, size, backend in regions:
        mapped = any(lo < data + size and hi > data for lo, hi in spans)
        if mapped == (backend == "memfd_secret"):
            code = 1
    os._exit(code)
result["fork_child"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
big.secure_purge()
result["regions_after_purge"] = len(arena().regions())
"""


@pytest.mark.parametrize("policy", ["best-effort", "strict"])
def test_memfd_secret_backend(policy):
    """Unrestricted child: memfd_secret is used if the kernel provides it."""
    if MEMFD_SECRET:
        result, proc = run_child(
            MEMFD_BODY, {"CORTEX_SAL_BACKEND": "memfd_secret", "CORTEX_SAL_LOCK_POLICY": policy}, restricted=False
        )
        s = result["status"]
        assert result["work"] is True and result["big_work"] is True
        assert s["backend"] == "memfd_secret"
        assert [r["backend"] for r in s["regions"]] == ["memfd_secret"] * 3
        assert [r["dedicated"] for r in s["regions"]] == [False, False, True]
        for r in s["regions"]:
            assert r["problems"] == [], r["problems"]  # mlock(2) is not needed: mmap locks it
            assert r["locked"] and r["dump_excluded"] and r["wipe_on_fork"]
            for perms, flags in r["smaps"]:
                assert perms == "rw-s"
                assert {"lo", "dd", "dc", "sh"} <= set(flags), flags
                assert "wf" not in flags
        assert s["locked"] is True and s["degraded"] is False
        assert result["proc_mem"] == errno.EIO
        assert result["fork_child"] == 0
        assert result["regions_after_purge"] == 2
        assert result["log"] == []
        assert proc.stderr == ""
    else:
        body = """
        try:
            key = SecureKeyBuffer()
            result["outcome"] = "allocated"
            result["work"] = key_works(key)
            result["status"] = regions_json()
        except MemoryLockError as exc:
            result["outcome"] = "MemoryLockError"
            result["message"] = str(exc)
        """
        result, _ = run_child(
            body, {"CORTEX_SAL_BACKEND": "memfd_secret", "CORTEX_SAL_LOCK_POLICY": policy}, restricted=False
        )
        if policy == "strict":
            assert result["outcome"] == "MemoryLockError"
            assert "memfd_secret" in result["message"]
        else:
            assert result["outcome"] == "allocated" and result["work"] is True
            (region,) = result["status"]["regions"]
            assert region["backend"] == "mmap"
            assert any("memfd_secret unavailable" in p for p in region["problems"])


@needs_cap_drop
@pytest.mark.parametrize("policy", ["best-effort", "strict"])
def test_memfd_secret_backend_under_memlock_limit(policy):
    """Secret memory is charged to RLIMIT_MEMLOCK at mmap: over the limit it is refused."""
    result, _ = run_child(
        """
        keys = []
        try:
            for _ in range(3000):
                keys.append(SecureKeyBuffer())
            result["outcome"] = "allocated"
        except MemoryLockError as exc:
            result["outcome"] = "MemoryLockError"
            result["message"] = str(exc)
        result["count"] = len(keys)
        result["work"] = all(key_works(k) for k in keys)
        result["regions"] = len(arena().regions())
        if keys:
            result["status"] = regions_json()
        """,
        {"CORTEX_SAL_BACKEND": "memfd_secret", "CORTEX_SAL_LOCK_POLICY": policy},
    )
    # a 64 KiB region maps 72 KiB with its guard pages, all VM_LOCKED: over the limit
    why = os.strerror(errno.EAGAIN) if MEMFD_SECRET else os.strerror(MEMFD_SECRET_ERRNO)
    if policy == "strict":
        assert result["outcome"] == "MemoryLockError"
        assert result["count"] == 0 and result["regions"] == 0
        assert "memfd_secret" in result["message"] and why in result["message"]
    else:
        assert result["outcome"] == "allocated" and result["count"] == 3000
        assert result["work"] is True
        first, second = result["status"]["regions"]
        assert first["backend"] == second["backend"] == "mmap"
        assert any("memfd_secret unavailable" in p and why in p for p in first["problems"])
        assert first["locked"] is True  # the mmap fallback fits the limit
        assert second["locked"] is False
        assert any("mlock" in p for p in second["problems"])


# -- the child's warning filter, and a budget used up before the first region ------------------


@needs_cap_drop
def test_restricted_child_runs_under_warnings_as_errors():
    """The guard behind "no Python warning either way": in the child a warning *is* an error."""
    result, proc = run_child(
        """
        import warnings
        result["warnoptions"] = sys.warnoptions
        try:
            warnings.warn("probe", UserWarning, stacklevel=1)
            result["probe"] = "not raised"
        except UserWarning:
            result["probe"] = "raised"
        keys = [SecureKeyBuffer() for _ in range(2000)]  # past the limit: degraded, quietly
        result["locked"] = status().locked
        """,
        {"CORTEX_SAL_LOCK_POLICY": "best-effort"},
    )
    assert result["warnoptions"] == ["error"]
    assert result["probe"] == "raised"
    assert result["locked"] is False
    assert proc.stderr == ""


BUDGET_USED_UP = """
from cortex_sal.securemem import _libc
hog = _libc.mmap(MEMLOCK, _libc.PROT_READ | _libc.PROT_WRITE, _libc.MAP_PRIVATE | _libc.MAP_ANONYMOUS)
result["hog_locked"] = _libc.mlock(hog, MEMLOCK) == 0  # the whole RLIMIT_MEMLOCK, before any region
try:
    key = SecureKeyBuffer()
    result["outcome"] = "allocated"
except MemoryLockError as exc:
    result["outcome"] = "MemoryLockError"
    result["is_secure_memory_error"] = isinstance(exc, SecureMemoryError)
    result["message"] = str(exc)
    result["regions"] = len(arena().regions())
    result["live"] = list(arena().live_slots())
    result["wf"] = wf_mappings()
    key = None
if key is not None:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cortex_sal.crypto import aead_decrypt, aead_encrypt
    with key.export_bytearray() as lent:
        oracle = ChaCha20Poly1305(bytes(lent))
    nonce = bytes(range(12))
    sealed = aead_encrypt(key, nonce, b"still works", b"aad")
    with aead_decrypt(key, nonce, sealed, b"aad") as opened:
        with opened.export_bytearray() as plain:
            result["aead"] = sealed == oracle.encrypt(nonce, b"still works", b"aad") and bytes(plain) == b"still works"
    result["work"] = key_works(key)
    result["status"] = regions_json()
# give the budget back: strict now gets its (locked) first region; best-effort's existing
# region stays unlocked, and status() keeps saying so
_libc.munlock(hog, MEMLOCK)
later = SecureKeyBuffer()
result["later"] = [r["locked"] for r in regions_json()["regions"]]
"""


@needs_cap_drop
@pytest.mark.parametrize("policy", ["best-effort", "strict"])
def test_first_region_refused_when_the_budget_is_used_up(policy):
    result, _ = run_child(
        f"MEMLOCK = {MEMLOCK_LIMIT}\n" + BUDGET_USED_UP,
        {"CORTEX_SAL_LOCK_POLICY": policy},
    )
    assert result["hog_locked"] is True
    if policy == "best-effort":
        assert result["outcome"] == "allocated"
        assert result["work"] is True and result["aead"] is True
        s = result["status"]
        assert s["locked"] is False and s["degraded"] is True
        (region,) = s["regions"]
        assert region["locked"] is False and region["locked_kb"] == 0
        assert any("mlock" in p and os.strerror(errno.ENOMEM) in p for p in region["problems"])
        assert region["dump_excluded"] is True and region["wipe_on_fork"] is True
        assert any("mlock" in m and "best-effort" in m for m in result["log"])
    else:
        assert result["outcome"] == "MemoryLockError"
        assert result["is_secure_memory_error"] is True
        assert "mlock" in result["message"] and os.strerror(errno.ENOMEM) in result["message"]
        assert result["regions"] == 0 and result["live"] == [0, 0]
        assert result["wf"] == 0  # the refused region was unmapped
        assert result["log"] == []
    assert result["later"] == ([False] if policy == "best-effort" else [True])
