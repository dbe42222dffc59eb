"""The data directory: where a store lives, created private (0700), and its one-writer lock.

* :func:`default_data_dir`: ``$CORTEX_SAL_DATA_DIR``, else ``$XDG_DATA_HOME/cortex-sal``, else
  ``~/.local/share/cortex-sal`` (the XDG base directory convention).
* :func:`prepare_data_dir`: create it (mode 0700, parents as needed) or check an existing one: a
  directory that is not a directory, that another user owns, or that group or others may
  write is refused (a store there could be swapped under us).
* :class:`DataDirLock`: an exclusive ``flock`` on ``DIR/lock``, held by the one service (a
  gateway) that owns the directory for its lifetime. A second owner is refused at once with
  :class:`~cortex_sal.errors.StoreLockedError`; the kernel releases the lock when the owner
  exits, however it exits (``kill -9`` included), so a stale lock never blocks a restart.
  Command-line readers and writers (``consent grant``, ``store check``) do not take it: SQLite's
  own locking serialises their transactions with the owner's.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from ..errors import StoreError, StoreLockedError

__all__ = ["LOCK_FILE", "DataDirLock", "default_data_dir", "prepare_data_dir"]

LOCK_FILE = "lock"


def default_data_dir() -> Path:
    """The per-user data directory (not created)."""
    explicit = os.environ.get("CORTEX_SAL_DATA_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "cortex-sal"


def _reason(exc: OSError | ValueError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def prepare_data_dir(path: str | Path | None, *, create: bool = True) -> Path:
    """The data directory ``path`` (default :func:`default_data_dir`), created 0700 if missing."""
    if path is not None and not isinstance(path, str | os.PathLike):
        raise StoreError(f"a data directory is a path, got {type(path).__name__}")
    directory = default_data_dir() if path is None else Path(path)
    try:
        if create and not directory.exists():
            directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                pass  # created meanwhile by another process: checked below like any existing one
        info = directory.lstat()
    except FileNotFoundError:
        raise StoreError(f"data directory {directory} does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: a path holding a NUL byte
        raise StoreError(f"cannot create or read data directory {directory}: {_reason(exc)}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"data directory {directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise StoreError(f"data directory {directory} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StoreError(
            f"data directory {directory} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "make it 0700"
        )
    return directory


class DataDirLock:
    """The exclusive lock of a data directory (``flock`` on ``DIR/lock``); release with :meth:`release`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StoreError(
                    f"cannot open the lock file {self.path}: the data directory is read-only ({_reason(exc)})"
                ) from None
            raise StoreError(f"cannot open the lock file {self.path}: {_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StoreLockedError(
                    f"data directory {directory} is in use by another process (it holds {self.path}); "
                    "one gateway per data directory"
                ) from None
            raise StoreError(f"cannot lock {self.path}: {_reason(exc)}") from None
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the flock
