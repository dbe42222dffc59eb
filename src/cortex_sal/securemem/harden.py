"""Opt-in process hardening: no core dump, no same-user ptrace or ``/proc/<pid>/mem``.

The arena already keeps secrets out of core dumps (``MADV_DONTDUMP``). :func:`harden_process`
goes further for the whole process, which matters for what the arena cannot cover (a
secret a caller copied into a ``bytes``, a library's transient state): it asks the kernel
to write no core at all and to refuse other same-user processes a look inside. It is never
called implicitly - it is process-wide and cannot be fully undone by an unprivileged
process - so an application calls it once, early, if it wants it.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from ..errors import ProcessHardeningError, WrongTypeError
from . import _libc

log = logging.getLogger("cortex_sal.securemem")

_CORE_PATTERN = "/proc/sys/kernel/core_pattern"


@dataclass(frozen=True)
class HardeningReport:
    """What the kernel reports after :func:`harden_process`, read back, not assumed.

    ``dumpable`` is ``prctl(PR_GET_DUMPABLE)`` (``False``: the kernel writes no core and
    refuses same-user ptrace); ``core_limit`` is ``getrlimit(RLIMIT_CORE)`` as
    ``(soft, hard)`` (``resource.RLIM_INFINITY`` for unlimited); the ``*_before`` fields
    are the same readings taken before the call changed anything.
    """

    core_dumps: bool
    dumpable: bool
    core_limit: tuple[int, int]
    dumpable_before: bool
    core_limit_before: tuple[int, int]
    core_pattern_is_pipe: bool

    @property
    def core_dumps_disabled(self) -> bool:
        """True when the kernel will write no core of this process (from now until ``execve``).

        A non-dumpable process gets no core whatever the core pattern; otherwise a soft
        ``RLIMIT_CORE`` of 0 stops a core *file*, but a ``|helper`` core pattern is not
        bound by that limit (the helper decides).
        """
        return not self.dumpable or (self.core_limit[0] == 0 and not self.core_pattern_is_pipe)


def _get_dumpable() -> bool:
    value = _libc.prctl(_libc.PR_GET_DUMPABLE)
    if value < 0:
        code = _libc.errno()
        raise ProcessHardeningError(f"prctl(PR_GET_DUMPABLE) failed: {_libc.strerror(code)}")
    return value != 0


def _core_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    return int(soft), int(hard)


def _core_pattern_is_pipe() -> bool:
    try:
        with open(_CORE_PATTERN, "rb") as fh:  # binary: no codec lookup (works after a uid change)
            return fh.read(1) == b"|"
    except OSError:
        return False  # no procfs view of it: assume the ordinary file pattern


def harden_process(*, core_dumps: bool = False) -> HardeningReport:
    """Make this process non-dumpable and give it a core limit of 0; report what holds.

    With ``core_dumps=False`` (the default) it calls ``prctl(PR_SET_DUMPABLE, 0)`` and
    ``setrlimit(RLIMIT_CORE, (0, 0))``, then reads both back (``PR_GET_DUMPABLE``,
    ``getrlimit``) and raises :class:`~cortex_sal.errors.ProcessHardeningError` if either
    call failed or the read-back disagrees. With ``core_dumps=True`` it changes nothing and
    only reports: the kernel ties core dumps and the ptrace restriction to the same
    "dumpable" flag, so a process that wants cores for debugging must stay dumpable (the
    arena is still left out of any core by ``MADV_DONTDUMP``).

    Side effects of ``PR_SET_DUMPABLE=0`` (process-wide, inherited by ``fork()``, reset
    by ``execve()`` of an ordinary program):

    * the kernel writes no core dump at all, whatever ``core_pattern`` says (also not to
      a ``|helper`` pipe, which ``RLIMIT_CORE`` alone would not stop);
    * ``/proc/<pid>/mem``, ``/proc/<pid>/environ`` and the like become unreadable, and
      ``ptrace`` attach (so ``gdb``, ``gcore``, ``py-spy``, ``strace -p``) is refused, for
      every process of the same user that lacks ``CAP_SYS_PTRACE``; ``/proc/<pid>/`` files
      become owned by root. Root (``CAP_SYS_PTRACE``) can still attach and read: the residue
      harness runs as root in our CI and so still sees a hardened process's memory, and
      ``gcore`` run as root still writes a core (without the arena, which is
      ``MADV_DONTDUMP``);
    * an unprivileged process can lower ``RLIMIT_CORE``'s hard limit but never raise it
      again; a privileged one (``CAP_SYS_RESOURCE``) can, but the process stays
      non-dumpable, so no core is written either way.

    A refusal can leave the process partly hardened (non-dumpable but with its old core
    limit), never less hardened than before; the message says which step failed.
    """
    if not isinstance(core_dumps, bool):
        raise WrongTypeError(f"core_dumps must be a bool, got {type(core_dumps).__name__}")
    dumpable_before = _get_dumpable()
    core_limit_before = _core_limit()
    if not core_dumps:
        if _libc.prctl(_libc.PR_SET_DUMPABLE, 0) != 0:
            code = _libc.errno()
            raise ProcessHardeningError(
                f"prctl(PR_SET_DUMPABLE, 0) failed: {_libc.strerror(code)}; nothing was changed"
            )
        if _get_dumpable():
            raise ProcessHardeningError("prctl(PR_SET_DUMPABLE, 0) returned 0 but PR_GET_DUMPABLE still reports 1")
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (OSError, ValueError) as exc:
            raise ProcessHardeningError(
                f"setrlimit(RLIMIT_CORE, (0, 0)) failed: {exc}; the process is already non-dumpable"
            ) from exc
        if _core_limit() != (0, 0):
            raise ProcessHardeningError(
                f"setrlimit(RLIMIT_CORE, (0, 0)) did not hold: getrlimit reports {_core_limit()}; "
                "the process is already non-dumpable"
            )
    report = HardeningReport(
        core_dumps=core_dumps,
        dumpable=_get_dumpable(),
        core_limit=_core_limit(),
        dumpable_before=dumpable_before,
        core_limit_before=core_limit_before,
        core_pattern_is_pipe=_core_pattern_is_pipe(),
    )
    log.info(
        "process hardening: dumpable=%s RLIMIT_CORE=%s (before: dumpable=%s RLIMIT_CORE=%s)",
        report.dumpable,
        report.core_limit,
        report.dumpable_before,
        report.core_limit_before,
    )
    return report


__all__ = ["HardeningReport", "harden_process"]
