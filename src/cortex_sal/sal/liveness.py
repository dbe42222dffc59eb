"""LIMES: one-time liveness proofs over a frame's features (docs/sal.md, SYSTEM.md step 5).

``prove(features)`` draws a 16-byte nonce and stamps the proof with ``clock.time()``::

    proof = HMAC-SHA256(master, SHA-256(features as 5 x float64 BE) || nonce || timestamp as f64 BE)

The master is a :class:`~cortex_sal.securemem.SecureKeyBuffer` the prover owns; the HMAC
goes through :func:`cortex_sal.crypto.hmac_sha256`, so the master never becomes bytes.

``verify(features, proof)`` is true only when all of these hold:

* the tag matches (compared in constant time) for *these* features, nonce and timestamp
  under the current master - any tampered field, other features or a rotated master fail;
* the proof is fresh: ``age = now - timestamp`` with ``0 <= age <= liveness_ttl_s``. The
  edge is inclusive - a proof exactly ``liveness_ttl_s`` old still verifies, one a hair
  older does not (the same convention as the router's timestamp window and the bridge
  bounds). A proof stamped in the future (``timestamp > now``: the wall clock went back)
  is refused: fail closed;
* its nonce has not verified before ("once per nonce"). Only a *successful* verification
  uses a nonce up, so a wrong guess (other features, a tampered copy) cannot burn a valid
  proof.

Choices the design leaves open (what a demanding caller expects):

* Used nonces are held in one-second buckets of their proof's timestamp and dropped by age:
  a nonce is held while its proof could still verify and dropped within about a second
  after it expires, so memory is bounded by the verification rate times ``ttl + 1`` s.
  Freshness is measured against the *latest* time this prover has seen, not just the
  current reading, so a wall clock that steps back can never revive a proof whose nonce
  was already dropped (no replay through clock adjustments).
* A master passed in is taken into custody: ``rotate()`` and ``purge()`` purge it.
  ``rotate(master=None)`` draws a fresh master (or installs the one given) and purges the
  old one, so every earlier proof stops verifying. ``purge()`` is final: afterwards every
  call raises :class:`~cortex_sal.errors.PurgedBufferError`; the prover is also a context
  manager that purges on exit.
* Malformed input raises rather than returning ``False``: features that are not five finite
  reals (``InvalidArgumentError`` / ``WrongTypeError``), a ``proof`` that is not a
  :class:`LivenessProof` (``WrongTypeError``); a :class:`LivenessProof` with a wrong-length
  field or a non-finite timestamp cannot be built (:class:`~cortex_sal.errors.LivenessError`).
* :meth:`LivenessProver.require` is ``verify`` that raises ``LivenessError`` with the reason
  (expired, future-dated, already used, does not verify) instead of returning ``False``.
* The prover is thread-safe (the check and the marking of a nonce are one critical
  section) and refuses to be copied or pickled (it holds a secret).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import struct
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..clock import SYSTEM_CLOCK, Clock
from ..crypto import hmac_sha256, hmac_sha256_many
from ..errors import InvalidArgumentError, LivenessError, NotCopyableError, PurgedBufferError, WrongTypeError
from ..governance import DEFAULT_THRESHOLDS, ClinicalThresholds
from ..securemem import SecureKeyBuffer
from .obfuscation import N_FEATURES, as_feature_rows, features_be

PROOF_SIZE = 32
NONCE_SIZE = 16
_PACK_TS = struct.Struct(">d").pack


@dataclass(frozen=True, slots=True)
class LivenessProof:
    """A LIMES proof: the 32-byte tag, the 16-byte nonce and the wall-clock timestamp.

    All three are public. Built with a wrong-length tag or nonce, or a timestamp that is not
    a finite real, it raises :class:`~cortex_sal.errors.LivenessError` (malformed proof).
    """

    proof: bytes
    nonce: bytes
    timestamp: float

    def __post_init__(self) -> None:
        p, n, ts = self.proof, self.nonce, self.timestamp
        if type(p) is bytes and type(n) is bytes and type(ts) is float:  # the common case, fast
            if len(p) == PROOF_SIZE and len(n) == NONCE_SIZE and math.isfinite(ts):
                return
        for name, size in (("proof", PROOF_SIZE), ("nonce", NONCE_SIZE)):
            value = getattr(self, name)
            if not isinstance(value, bytes | bytearray | memoryview):
                raise LivenessError(f"malformed liveness proof: {name} must be bytes, got {type(value).__name__}")
            value = bytes(value)
            if len(value) != size:
                raise LivenessError(f"malformed liveness proof: {name} must be {size} bytes, got {len(value)}")
            object.__setattr__(self, name, value)
        ts = self.timestamp
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise LivenessError(f"malformed liveness proof: timestamp must be a finite real, got {ts!r}")
        object.__setattr__(self, "timestamp", float(ts))


def _ttl(ttl_s: object, what: str) -> float:
    """A lifetime in seconds: a finite real > 0 (not a bool)."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
        raise WrongTypeError(f"{what} must be a real number of seconds, got {type(ttl_s).__name__}")
    ttl = float(ttl_s)
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidArgumentError(f"{what} must be finite and > 0, got {ttl_s!r}")
    return ttl


def _message(fb: bytes, nonce: bytes, timestamp: float) -> bytes:
    return hashlib.sha256(fb).digest() + nonce + _PACK_TS(timestamp)


class LivenessProver:
    """Issues and checks one-time liveness proofs under a master it owns (see the module doc)."""

    def __init__(
        self,
        master: SecureKeyBuffer | None = None,
        thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(thresholds, ClinicalThresholds):
            raise WrongTypeError(f"thresholds must be ClinicalThresholds, got {type(thresholds).__name__}")
        self._master = self._check_master(master) if master is not None else SecureKeyBuffer()
        self._ttl = float(thresholds.liveness_ttl_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[int, set[bytes]] = {}  # floor(proof timestamp) -> nonces used
        self._prune_at = math.inf  # the oldest bucket's key + 1, or inf when empty
        self._latest = -math.inf  # the latest clock.time() seen

    @staticmethod
    def _check_master(master: object) -> SecureKeyBuffer:
        if not isinstance(master, SecureKeyBuffer):
            raise WrongTypeError(f"the LIMES master must be a SecureKeyBuffer, got {type(master).__name__}")
        if master.is_purged:
            raise PurgedBufferError("the LIMES master given was already purged")
        return master

    def _live_master(self) -> SecureKeyBuffer:
        if self._master.is_purged:
            raise PurgedBufferError("this LivenessProver was purged; it cannot prove or verify any more")
        return self._master

    # -- time and pruning (call with the lock held) -------------------------------------

    def _now(self) -> float:
        now = float(self._clock.time())
        if not math.isfinite(now):
            raise LivenessError(f"the clock returned a non-finite time {now!r}")
        if now > self._latest:
            self._latest = now
        # drop every bucket whose proofs are all expired: ts < k + 1 and latest - (k + 1) > ttl
        if self._latest - self._prune_at > self._ttl:
            latest, ttl = self._latest, self._ttl
            for k in [k for k in self._used if latest - (k + 1) > ttl]:
                del self._used[k]
            self._prune_at = min(self._used) + 1 if self._used else math.inf
        return now

    # -- the API -------------------------------------------------------------------------

    def prove(self, features: npt.ArrayLike) -> LivenessProof:
        """A fresh proof for ``features`` (five finite reals), stamped with ``clock.time()``."""
        fb = features_be(features)
        nonce = os.urandom(NONCE_SIZE)
        with self._lock:
            master = self._live_master()
            timestamp = self._now()
            tag = hmac_sha256(master, _message(fb, nonce, timestamp))
        return LivenessProof(tag, nonce, timestamp)

    def prove_and_verify_batch(self, features: npt.ArrayLike) -> list[bool]:
        """``[self.verify(f, self.prove(f)) for f in features]`` for ``n`` feature vectors (n, 5),
        in one critical section: one clock reading to stamp the proofs and one to check them, one
        draw of ``n`` nonces, and each of the two HMAC passes over all rows in one loop
        (:func:`~cortex_sal.crypto.hmac_sha256_many`). The proofs are not kept (the shield's batch
        path only needs the verdict); their nonces are used up as :meth:`verify` uses them up.
        Every row is checked before any HMAC (the errors of :meth:`prove`)."""
        rows = as_feature_rows(features)
        n = rows.shape[0]
        if n == 0:
            return []
        big_endian: Any = np.ascontiguousarray(
            rows, dtype=">f8"
        )  # numpy arrays are buffers (numpy's stubs say otherwise)
        fb = memoryview(big_endian).cast("B")  # 5 x float64 BE per row
        step = 8 * N_FEATURES
        digests = [hashlib.sha256(fb[i : i + step]).digest() for i in range(0, n * step, step)]
        nonces = os.urandom(NONCE_SIZE * n)
        with self._lock:
            master = self._live_master()
            stamp = self._now()
            packed = _PACK_TS(stamp)
            size = len(digests[0]) + NONCE_SIZE + len(packed)
            messages = b"".join(
                [d + nonces[i * NONCE_SIZE : (i + 1) * NONCE_SIZE] + packed for i, d in enumerate(digests)]
            )
            tags = hmac_sha256_many(master, messages, size)
            now = self._now()
            if stamp > now or self._latest - stamp > self._ttl:  # the clock stepped back, or a stall past the ttl
                return [False] * n
            expected = hmac_sha256_many(master, messages, size)
            k = math.floor(stamp)
            verdicts = []
            for i in range(n):
                at = i * PROOF_SIZE
                if not hmac.compare_digest(expected[at : at + PROOF_SIZE], tags[at : at + PROOF_SIZE]):
                    verdicts.append(False)
                    continue
                nonce = nonces[i * NONCE_SIZE : (i + 1) * NONCE_SIZE]
                bucket = self._used.get(k)
                if bucket is None:
                    bucket = self._used[k] = set()
                    if k + 1 < self._prune_at:
                        self._prune_at = k + 1
                elif nonce in bucket:
                    verdicts.append(False)
                    continue
                bucket.add(nonce)
                verdicts.append(True)
            return verdicts

    def _check(self, features: npt.ArrayLike, proof: LivenessProof) -> str | None:
        """``None`` when the proof verifies (and its nonce is now used), else the reason."""
        if not isinstance(proof, LivenessProof):
            raise WrongTypeError(f"proof must be a LivenessProof, got {type(proof).__name__}")
        fb = features_be(features)
        with self._lock:
            master = self._live_master()
            now = self._now()
            ts = proof.timestamp
            if ts > now:
                return "proof is dated in the future"
            if self._latest - ts > self._ttl:
                return f"proof expired (older than {self._ttl:g} s)"
            expected = hmac_sha256(master, _message(fb, proof.nonce, ts))
            if not hmac.compare_digest(expected, proof.proof):
                return "proof does not verify for these features under the current master"
            k = math.floor(ts)
            bucket = self._used.get(k)
            if bucket is None:
                bucket = self._used[k] = set()
                if k + 1 < self._prune_at:
                    self._prune_at = k + 1
            elif proof.nonce in bucket:
                return "proof was already used"
            bucket.add(proof.nonce)
            return None

    def verify(self, features: npt.ArrayLike, proof: LivenessProof) -> bool:
        """True once for a valid, fresh proof over these features; false for any other."""
        return self._check(features, proof) is None

    def require(self, features: npt.ArrayLike, proof: LivenessProof) -> None:
        """:meth:`verify` that raises :class:`~cortex_sal.errors.LivenessError` with the reason."""
        reason = self._check(features, proof)
        if reason is not None:
            raise LivenessError(f"liveness refused: {reason}")

    @property
    def ttl(self) -> float:
        """How long a proof verifies after its timestamp, in seconds."""
        return self._ttl

    def set_ttl(self, ttl_s: float) -> None:
        """Set the proofs' lifetime (a policy change): every later verification uses it.

        ``ttl_s`` must be a finite real > 0 (``WrongTypeError`` / ``InvalidArgumentError``,
        nothing changed). Used nonces stay held; a longer lifetime keeps them longer.
        """
        ttl = _ttl(ttl_s, "liveness ttl_s")
        with self._lock:
            self._ttl = ttl

    @property
    def held_nonces(self) -> int:
        """How many used nonces are held right now (after dropping those that aged out)."""
        with self._lock:
            self._now()
            return sum(map(len, self._used.values()))

    def rotate(self, master: SecureKeyBuffer | None = None) -> None:
        """Install a new master (fresh random one by default) and purge the old one.

        Every proof issued before the rotation stops verifying.
        """
        new = self._check_master(master) if master is not None else None
        with self._lock:
            old = self._live_master()
            if new is old:
                raise InvalidArgumentError("rotate() was given the master in use; a rotation needs a new one")
            self._master = new if new is not None else SecureKeyBuffer()
            old.secure_purge()

    def purge(self) -> None:
        """Purge the master and forget the used nonces. Idempotent; the prover is unusable after."""
        with self._lock:
            self._master.secure_purge()
            self._used.clear()
            self._prune_at = math.inf

    @property
    def is_purged(self) -> bool:
        return self._master.is_purged

    def __enter__(self) -> LivenessProver:
        self._live_master()
        return self

    def __exit__(self, *exc: object) -> None:
        self.purge()

    def __repr__(self) -> str:
        state = "purged" if self._master.is_purged else "live"
        return f"<LivenessProver {state}, ttl {self._ttl:g} s>"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a LivenessProver holds a secret master and cannot be pickled")

    def __copy__(self) -> Any:
        raise NotCopyableError("a LivenessProver holds a secret master and cannot be copied")

    def __deepcopy__(self, memo: object) -> Any:
        raise NotCopyableError("a LivenessProver holds a secret master and cannot be copied")


__all__ = ["NONCE_SIZE", "PROOF_SIZE", "LivenessProof", "LivenessProver"]
