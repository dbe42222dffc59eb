"""Files: secret key files, public documents, exclusive and atomic writes (the store's primitives).

Every helper takes the ``CortexError`` subclass to raise, so each kind of file keeps its own
error type (``CAFileError`` for CA directories, ``CliInputError`` for governance files, ...).

* A secret key file holds the raw key bytes only, mode 0600, created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never overwritten, never through a symlink), written from
  locked memory with no heap copy, and read back with ``os.readv`` straight into locked memory.
  A key file on disk is outside the custody promise of the secure arena: whoever can read it holds
  the key. Keep it on an encrypted volume or a token.
* Public files are written atomically: a temporary file in the same directory, ``fsync``, then
  ``os.link`` (exclusive: refuses an existing file) or ``os.replace`` (update).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .. import strict_json
from ..errors import CortexError
from ..securemem import KEY_SIZE, SecureBuffer, SecureKeyBuffer

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

MAX_DOCUMENT_SIZE = 1 << 20  # a JSON document (proposal, bundle, registry, node file) larger than 1 MiB is refused


def read_secret_file(path: str | Path, size: int, what: str, error: type[CortexError]) -> SecureKeyBuffer:
    """Read a ``size``-byte key file straight into locked memory; refuse a file others can read.

    ``size`` 32 gives a :class:`SecureKeyBuffer`, any other size a :class:`SecureBuffer`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as e:  # ValueError: a path holding a NUL byte
        raise error(f"cannot open {what} {path!r}: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise error(f"{what} {path} must be a regular file of exactly {size} bytes")
        if st.st_mode & 0o077:
            raise error(f"{what} {path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
        cls = SecureKeyBuffer if size == KEY_SIZE else SecureBuffer
        try:
            return cls.from_fd(fd, None if cls is SecureKeyBuffer else size)  # type: ignore[return-value]  # a key buffer when size is KEY_SIZE
        except (OSError, CortexError) as e:
            raise error(f"cannot read {what} {path}: {e}") from None
    finally:
        os.close(fd)


def create_secret_file(path: str | Path, secret: SecureBuffer, what: str, error: type[CortexError]) -> None:
    """Create ``path`` (0600, exclusive, no symlink) holding the secret, written from locked memory.

    On any failure the file is removed: nothing half-written stays behind.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    except FileExistsError:
        raise error(f"{what} {path} already exists; refusing to overwrite it") from None
    except OSError as e:
        raise error(f"cannot create {what} {path}: {e}") from None
    try:
        with secret._view() as view:  # straight from the slot: no copy of the key in the heap
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
        os.fsync(fd)
    except BaseException as e:
        os.close(fd)
        path.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise error(f"cannot write {what} {path}: {e}") from None
        raise
    os.close(fd)


def _write_temporary(path: Path, data: bytes, mode: int) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return Path(tmp)


def create_public_file(path: str | Path, data: bytes, what: str, error: type[CortexError], mode: int = 0o644) -> None:
    """Create ``path`` atomically with ``data``; refuse if it exists (never overwrite)."""
    path = Path(path)
    try:
        tmp = _write_temporary(path, data, mode)
    except OSError as e:
        raise error(f"cannot write {what} {path}: {e}") from None
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise error(f"{what} {path} already exists; refusing to overwrite it") from None
    except OSError as e:
        raise error(f"cannot create {what} {path}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def replace_public_file(path: str | Path, data: bytes, what: str, error: type[CortexError], mode: int = 0o644) -> None:
    """Replace ``path`` atomically with ``data`` (readers see the old file or the new one)."""
    path = Path(path)
    try:
        tmp = _write_temporary(path, data, mode)
    except OSError as e:
        raise error(f"cannot write {what} {path}: {e}") from None
    try:
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise error(f"cannot replace {what} {path}: {e}") from None


def read_public_file(path: str | Path, what: str, error: type[CortexError], max_size: int) -> bytes:
    """The bytes of a regular file of at most ``max_size`` bytes (public: a symlink is followed)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as e:  # ValueError: a path holding a NUL byte
        raise error(f"cannot open {what} {path!r}: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {path} is not a regular file")
        if st.st_size > max_size:
            raise error(f"{what} {path} is {st.st_size} bytes, more than the {max_size} allowed")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_size + 1)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e}") from None
    finally:
        os.close(fd)
    if len(data) > max_size:
        raise error(f"{what} {path} grew past the {max_size} bytes allowed while being read")
    return data


class Undo:
    """Paths created so far by one operation, removed (newest first) if it fails: nothing half-done stays."""

    def __init__(self) -> None:
        self._paths: list[Path] = []

    def mkdir(self, path: Path) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._paths.extend(reversed(missing))

    def created(self, path: Path) -> None:
        self._paths.append(path)

    def rollback(self) -> None:
        for p in reversed(self._paths):
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                else:
                    p.unlink(missing_ok=True)
            except OSError:
                pass
        self._paths.clear()


def read_json(path: str | Path, what: str, error: type[CortexError], max_size: int = MAX_DOCUMENT_SIZE) -> Any:
    """A strict JSON document (:func:`cortex_sal.strict_json.loads`) from a file of at most ``max_size`` bytes."""
    return strict_json.loads(read_public_file(path, what, error, max_size), error, f"{what} {path}")


def read_text(path: str | Path, what: str, error: type[CortexError], max_size: int = MAX_DOCUMENT_SIZE) -> str:
    """The UTF-8 text of a regular file of at most ``max_size`` bytes."""
    data = read_public_file(path, what, error, max_size)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None


__all__ = [
    "MAX_DOCUMENT_SIZE",
    "Undo",
    "create_public_file",
    "create_secret_file",
    "read_json",
    "read_public_file",
    "read_secret_file",
    "read_text",
    "replace_public_file",
]
