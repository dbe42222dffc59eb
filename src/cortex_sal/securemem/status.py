"""What protection is really in force, read back from the kernel.

Nothing here trusts the arena's own bookkeeping for the answer: the flags come from
``/proc/self/smaps`` (``VmFlags``: ``lo`` locked, ``dd`` dump-excluded, ``wf`` wiped on
fork) for every mapping that overlaps an arena region, and ``VmLck`` from
``/proc/self/status``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arena import arena


@dataclass(frozen=True)
class Mapping:
    """One line of ``/proc/self/smaps`` with the fields we read."""

    start: int
    end: int
    perms: str
    locked_kb: int
    flags: frozenset[str]


@dataclass(frozen=True)
class RegionStatus:
    start: int
    size: int
    backend: str
    dedicated: bool
    locked: bool
    dump_excluded: bool
    wipe_on_fork: bool
    locked_kb: int
    problems: tuple[str, ...]


@dataclass(frozen=True)
class ArenaStatus:
    backend: str
    lock_policy: str
    regions: tuple[RegionStatus, ...]
    slots_live: int
    bytes_live: int
    vm_lck_kb: int
    memfd_secret_available: bool

    @property
    def locked(self) -> bool:
        return bool(self.regions) and all(r.locked for r in self.regions)

    @property
    def dump_excluded(self) -> bool:
        return bool(self.regions) and all(r.dump_excluded for r in self.regions)

    @property
    def wipe_on_fork(self) -> bool:
        return bool(self.regions) and all(r.wipe_on_fork for r in self.regions)

    @property
    def degraded(self) -> bool:
        return not (self.locked and self.dump_excluded and self.wipe_on_fork)


def read_smaps(path: str = "/proc/self/smaps") -> list[Mapping]:
    """Parse smaps into mappings (start, end, perms, ``Locked:`` kB, VmFlags)."""
    out: list[Mapping] = []
    start = end = locked = 0
    perms = ""
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            head = line.split(None, 1)[0] if line.strip() else ""
            if "-" in head and not head.endswith(":"):
                lo, hi = head.split("-")
                start, end = int(lo, 16), int(hi, 16)
                perms = line.split()[1]
                locked = 0
            elif head == "Locked:":
                locked = int(line.split()[1])
            elif head == "VmFlags:":
                out.append(Mapping(start, end, perms, locked, frozenset(line.split()[1:])))
    return out


def vm_lck_kb(path: str = "/proc/self/status") -> int:
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return 0


def status() -> ArenaStatus:
    """The protections the kernel reports for the arena now (creates the first region)."""
    a = arena()
    a.ensure_region()
    regions = a.regions()
    maps = read_smaps()
    rows = []
    for r in regions:
        data_maps = [m for m in maps if m.start < r.data + r.size and m.end > r.data]
        # the whole data range must be covered by mappings that all carry the flag
        covered = sum(min(m.end, r.data + r.size) - max(m.start, r.data) for m in data_maps) == r.size

        def every(flag: str, data_maps: list[Mapping] = data_maps, covered: bool = covered) -> bool:
            return covered and all(flag in m.flags for m in data_maps)

        fork_flag = "wf" if r.backend == "mmap" else "dc"  # dc: VM_DONTCOPY (MADV_DONTFORK)
        rows.append(
            RegionStatus(
                start=r.data,
                size=r.size,
                backend=r.backend,
                dedicated=r.dedicated,
                locked=every("lo"),
                dump_excluded=every("dd"),
                wipe_on_fork=every(fork_flag),
                locked_kb=sum(m.locked_kb for m in data_maps),
                problems=tuple(r.problems),
            )
        )
    slots, nbytes = a.live_slots()
    return ArenaStatus(
        backend=a.backend,
        lock_policy=a.lock_policy,
        regions=tuple(rows),
        slots_live=slots,
        bytes_live=nbytes,
        vm_lck_kb=vm_lck_kb(),
        memfd_secret_available=_memfd_secret_available(),
    )


def _memfd_secret_available() -> bool:
    import os

    from . import _libc

    fd = _libc.memfd_secret()
    if fd < 0:
        return False
    os.close(fd)
    return True
