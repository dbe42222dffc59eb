"""The residue harness, parent side: run a scenario in a child, read its memory, count.

The parent knows every secret (it made the inputs and derives the rest with an
independent library). At each checkpoint of the child it reads ``/proc/<pid>/mem``
mapping by mapping (``/proc/<pid>/maps``; ``PROT_NONE`` mappings included, since
``/proc/pid/mem`` reads them as root) and counts, per secret and per region class:

* ``exact`` - whole copies of the secret;
* ``frag8`` - copies of any of its 8-byte blocks (offsets 0, 8, 16, ...): any leaked run
  of 15 or more contiguous bytes contains one;
* ``ipad`` / ``opad`` - the HMAC pads ``key XOR 0x36`` / ``key XOR 0x5c``;
* ``hex`` / ``b64`` - hex (lower and upper case) and base64 encodings;
* ``bcast`` - for a 32-byte secret (a key), any of its eight 4-byte words twice in a row: a
  SIMD register whose 32-bit lanes are all that word, as libsodium's vectorised ChaCha20
  holds the key (and spills it to the stack);
* ``midstate`` - for a secret of at most 64 bytes (an HMAC key), the 8-byte fragments of the
  SHA-256 states after compressing ``key XOR ipad`` and ``key XOR opad``: either state computes
  every tag of that key, as the key does. In memory order (``uint32_t state[8]``, little-endian
  words) and big-endian. Computed by :func:`sha256_compress` (here, in Python, so independent of
  the library under test).

Region classes: ``arena`` (the child's secure arena, as it reports it *and* as smaps
confirms by the ``dd`` flag), ``heap`` (``[heap]``), ``stack``, ``anon`` (other
anonymous mappings: Python's allocator, thread stacks, ...), ``file`` (writable
file-backed mappings: ``.data``/``.bss``). Read-only file mappings (program text and
constants) cannot receive a runtime copy and are skipped; ``[vvar]``/``[vsyscall]`` are
not memory of the process.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .scenarios import SCENARIOS, Scenario

KINDS = ("exact", "frag8", "ipad", "opad", "hex", "b64", "bcast", "midstate")
_INDEXED = ("frag8", "bcast", "midstate")  # the 8-byte needles, found by _FragmentIndex
CLASSES = ("arena", "heap", "stack", "anon", "file")
_SKIPPED_NAMES = ("[vvar]", "[vsyscall]", "[vdso]", "[vvar_vclock]")


_SHA256_K = [
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
]  # fmt: skip  # FIPS 180-4 section 4.2.2
SHA256_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)


def sha256_compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    """FIPS 180-4's SHA-256 compression of one 64-byte block into ``state`` (eight 32-bit words)."""

    def rotr(x: int, n: int) -> int:
        return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF

    w = [int.from_bytes(block[i : i + 4], "big") for i in range(0, 64, 4)]
    for t in range(16, 64):
        s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
        s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, h = state
    for t in range(64):
        t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + _SHA256_K[t] + w[t]) & 0xFFFFFFFF
        t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & 0xFFFFFFFF
        a, b, c, d, e, f, g, h = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return tuple((x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True))


def hmac_midstates(key: bytes) -> list[tuple[int, ...]]:
    """The SHA-256 states after ``key XOR ipad`` and after ``key XOR opad`` (a key of at most 64 bytes)."""
    padded = key.ljust(64, b"\0")
    return [sha256_compress(SHA256_IV, bytes(b ^ pad for b in padded)) for pad in (0x36, 0x5C)]


def _midstate_fragments(secret: bytes) -> list[bytes]:
    out = []
    for state in hmac_midstates(secret):
        for order in ("little", "big"):
            raw = b"".join(word.to_bytes(4, order) for word in state)
            out += [raw[i : i + 8] for i in range(0, 32, 8)]
    return out


def patterns(secret: bytes) -> dict[str, list[bytes]]:
    """The byte strings whose presence betrays ``secret``, by kind."""
    encoded = base64.b64encode(secret)
    return {
        "exact": [secret],
        "frag8": [secret[i : i + 8] for i in range(0, len(secret) - 7, 8)],
        "ipad": [bytes(b ^ 0x36 for b in secret)] if len(secret) <= 64 else [],
        "opad": [bytes(b ^ 0x5C for b in secret)] if len(secret) <= 64 else [],
        "hex": [secret.hex().encode(), secret.hex().upper().encode()],
        # the full quanta are stable whatever follows; drop the padded tail
        "b64": [encoded[: len(secret) // 3 * 4]],
        "bcast": [secret[i : i + 4] * 2 for i in range(0, 32, 4)] if len(secret) == 32 else [],
        "midstate": _midstate_fragments(secret) if len(secret) <= 64 else [],
    }


def _count(data: bytes, needle: bytes) -> int:
    n = 0
    i = data.find(needle)
    while i >= 0:
        n += 1
        i = data.find(needle, i + 1)
    return n


@dataclass(frozen=True)
class MapEntry:
    start: int
    end: int
    perms: str
    inode: int
    name: str
    flags: frozenset[str]


def read_maps(pid: int) -> list[MapEntry]:
    """``/proc/<pid>/smaps`` as entries with their VmFlags."""
    out: list[MapEntry] = []
    cur: list[str] | None = None
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as fh:
        for line in fh:
            parts = line.split()
            if parts and "-" in parts[0] and not parts[0].endswith(":") and len(parts) >= 5:
                cur = parts
            elif parts and parts[0] == "VmFlags:" and cur is not None:
                lo, hi = cur[0].split("-")
                name = cur[5] if len(cur) > 5 else ""
                out.append(MapEntry(int(lo, 16), int(hi, 16), cur[1], int(cur[4]), name, frozenset(parts[1:])))
                cur = None
    return out


@dataclass
class ResidueReport:
    """Counts at one checkpoint: ``counts[secret][class][kind]``."""

    checkpoint: str
    counts: dict[str, dict[str, dict[str, int]]]
    bytes_scanned: int
    unreadable: list[str] = field(default_factory=list)

    def total(self, *, outside_arena: bool = False, secret: str | None = None) -> int:
        names = [secret] if secret else list(self.counts)
        return sum(
            n
            for name in names
            for cls, kinds in self.counts[name].items()
            if not (outside_arena and cls == "arena")
            for n in kinds.values()
        )

    def hits(self, *, outside_arena: bool = False) -> list[str]:
        """Every non-zero count as ``secret/class/kind=n`` (for assertion messages)."""
        return [
            f"{name}/{cls}/{kind}={n}"
            for name, by_class in self.counts.items()
            for cls, kinds in by_class.items()
            if not (outside_arena and cls == "arena")
            for kind, n in kinds.items()
            if n
        ]

    def table(self) -> str:
        head = f"checkpoint {self.checkpoint!r}: {self.bytes_scanned / 2**20:.1f} MiB scanned"
        lines = [head, "secret".ljust(18) + " " + " ".join(c.split(":")[0][:5].rjust(5) for c in CLASSES)]
        for name, by_class in self.counts.items():
            cells = []
            for cls in CLASSES:
                total = sum(by_class[cls].values())
                cells.append(str(total).rjust(5))
            detail = ", ".join(f"{cls}:{kind}={n}" for cls in CLASSES for kind, n in by_class[cls].items() if n)
            lines.append(name.ljust(18) + " " + " ".join(cells) + (f"   ({detail})" if detail else ""))
        if self.unreadable:
            lines.append("unreadable: " + ", ".join(self.unreadable))
        return "\n".join(lines)


def scan(pid: int, secrets: dict[str, bytes], arena_ranges: list[tuple[int, int]], checkpoint: str) -> ResidueReport:
    """Read the process's memory and count every pattern of every secret."""
    pats = {name: patterns(value) for name, value in secrets.items()}
    fragments = _FragmentIndex(pats, _INDEXED)
    counts = {name: {cls: dict.fromkeys(KINDS, 0) for cls in CLASSES} for name in secrets}
    scanned = 0
    unreadable: list[str] = []
    entries = read_maps(pid)
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for entry in entries:
            if entry.name in _SKIPPED_NAMES:
                continue
            if entry.inode and "w" not in entry.perms:
                continue  # read-only file mapping: program text and constants
            cls = _classify(entry, arena_ranges)
            try:
                mem.seek(entry.start)
                data = mem.read(entry.end - entry.start)
            except OSError as exc:
                unreadable.append(f"{entry.start:#x}-{entry.end:#x} {entry.perms} {entry.name} ({exc.strerror})")
                continue
            scanned += len(data)
            for name, by_kind in pats.items():
                for kind, needles in by_kind.items():
                    if kind not in _INDEXED:
                        counts[name][cls][kind] += sum(_count(data, needle) for needle in needles)
            for (name, kind), n in fragments.count_kinds(data).items():
                counts[name][cls][kind] += n
    return ResidueReport(checkpoint, counts, scanned, unreadable)


class _FragmentIndex:
    """All secrets' 8-byte fragments, found in one vectorised pass per byte alignment.

    ``bytes.find`` per fragment is fine for a few keys but not for kilobytes of samples
    (128 fragments per 1 KiB frame): here memory is read as u64 words at each of the eight
    alignments and looked up in the sorted fragment table.
    """

    def __init__(self, pats: dict[str, dict[str, list[bytes]]], kinds: tuple[str, ...] = ("frag8",)) -> None:
        import numpy as np

        owner: dict[int, tuple[str, str]] = {}
        for name, by_kind in pats.items():
            for kind in kinds:
                for fragment in by_kind.get(kind, []):
                    owner[int.from_bytes(fragment, "little")] = (name, kind)
        self._owner = owner
        self._table = np.array(sorted(owner), dtype=np.uint64)

    def count(self, data: bytes) -> dict[str, int]:
        """Hits per secret, all indexed kinds together."""
        found: dict[str, int] = {}
        for (name, _), n in self.count_kinds(data).items():
            found[name] = found.get(name, 0) + n
        return found

    def count_kinds(self, data: bytes) -> dict[tuple[str, str], int]:
        """Hits per (secret, kind)."""
        import numpy as np

        found: dict[tuple[str, str], int] = {}
        if not len(self._table):
            return found
        for alignment in range(8):
            words = (len(data) - alignment) // 8
            if words <= 0:
                continue
            view = np.frombuffer(data, dtype="<u8", count=words, offset=alignment)
            slot = np.searchsorted(self._table, view)
            np.minimum(slot, len(self._table) - 1, out=slot)
            hits = view[self._table[slot] == view]
            for value in hits.tolist():
                key = self._owner[int(value)]
                found[key] = found.get(key, 0) + 1
        return found


def _classify(entry: MapEntry, arena_ranges: list[tuple[int, int]]) -> str:
    inside = any(lo <= entry.start and entry.end <= hi for lo, hi in arena_ranges)
    if inside and "dd" in entry.flags:
        return "arena"
    if entry.name == "[heap]":
        return "heap"
    if entry.name.startswith("[stack"):
        return "stack"
    if entry.inode:
        return "file"
    return "anon"


class Peer:
    """The parent's handle on a running child: feed it, talk to it, scan it at checkpoints."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.reports: list[tuple[ResidueReport, bool]] = []
        self.secrets: dict[str, bytes] = {}

    def send(self, data: bytes) -> None:
        """Raw bytes to the child's standard input (secrets and public inputs alike)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _line(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            self.proc.wait()
            raise RuntimeError(f"residue child exited ({self.proc.returncode}) early:\n{err}")
        msg: dict[str, object] = json.loads(line)
        return msg

    def receive(self) -> bytes:
        """The next protocol message the child sent."""
        msg = self._line()
        if "message" not in msg:
            raise RuntimeError(f"expected a message from the child, got {msg}")
        return bytes.fromhex(str(msg["message"]))

    def know(self, **secrets: bytes) -> None:
        """Declare secrets (computed independently) that every later scan looks for."""
        self.secrets.update(secrets)

    def checkpoint(self, name: str, *, session_live: bool) -> ResidueReport:
        """Wait for the child's checkpoint ``name``, scan, resume it.

        ``session_live``: secrets may sit in the arena (0 allowed only there); otherwise
        they must be gone from everywhere.
        """
        msg = self._line()
        if msg.get("checkpoint") != name:
            raise RuntimeError(f"expected checkpoint {name!r} from the child, got {msg}")
        arena = msg.get("arena")
        if not isinstance(arena, list):
            raise RuntimeError(f"checkpoint {name!r} from the child carries no arena ranges: {msg}")
        ranges = [(int(lo), int(hi)) for lo, hi in arena]
        report = scan(self.proc.pid, self.secrets, ranges, name)
        self.reports.append((report, session_live))
        self.send(b"go\n")
        return report


@contextmanager
def spawn(scenario: str | Scenario, extra_env: dict[str, str] | None = None) -> Iterator[Peer]:
    """A child running ``scenario``'s child side (a name of :data:`SCENARIOS`, or a Scenario of any registry)."""
    found = _resolve(scenario)
    env = dict(os.environ)
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "cortex_sal.testing.child", found.registry, found.name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        yield Peer(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _resolve(scenario: str | Scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    if scenario not in SCENARIOS:
        raise KeyError(f"unknown residue scenario {scenario!r}; known here: {', '.join(SCENARIOS)}")
    return SCENARIOS[scenario]


def run_scenario(scenario: str | Scenario, extra_env: dict[str, str] | None = None) -> list[tuple[ResidueReport, bool]]:
    """Run a scenario to the end; return every checkpoint's report with its session flag.

    ``scenario`` is a name of :data:`SCENARIOS` or a :class:`Scenario` from another registry
    (the CLI's rows are in ``cortex_sal.cli.residue_scenarios``).
    """
    scenario = _resolve(scenario)
    with spawn(scenario, extra_env) as peer:
        scenario.parent(peer)
        peer.checkpoint("end", session_live=False)
        if peer.proc.wait(timeout=120) != 0:
            err = peer.proc.stderr.read().decode(errors="replace") if peer.proc.stderr else ""
            raise RuntimeError(f"residue child failed ({peer.proc.returncode}):\n{err}")
        return peer.reports


def verdict(reports: list[tuple[ResidueReport, bool]]) -> list[str]:
    """The failures: residue outside the arena during a session, or anywhere after it."""
    return [
        f"{report.checkpoint}: {hit}"
        for report, session_live in reports
        for hit in report.hits(outside_arena=session_live)
    ]
