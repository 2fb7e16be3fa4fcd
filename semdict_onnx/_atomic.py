"""Writing files safely: atomic writes, stale partial files, output checks before the work.

`atomic_write` writes to a temporary file `.NAME.XXXXXXXX.part` beside the target and renames
it over the target only when it is complete, so a file appears whole or not at all; on any
failure or Ctrl-C the temporary file is removed. An OSError on the way becomes a `WriteError`
that names the path and the problem in words.

A process killed outright (SIGKILL, a power cut) cannot remove its temporary file, so every
write first removes the stale ones of its own target: files named exactly like ours
(`.NAME.` + mkstemp's 8 characters + `.part`) that no process holds and that are older than
STALE_AFTER_S. A writer holds an exclusive `flock` on its temporary file while it writes, and
the kernel drops that lock when the process dies however it dies, so a locked file is another
write still in progress and is never touched; the age spares a file created an instant ago
whose writer has not taken its lock yet. Where there is no flock (Windows) age alone decides,
and Windows itself refuses to delete a file another process has open.

`check_output_folder` and `check_output_file` say before minutes of work whether an output can
be written there (by writing a temporary file, the one test that also sees read-only file
systems, ACLs and root), and `folder_lock` keeps writers and readers of one folder apart.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import WriteError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

PART_SUFFIX = ".part"
# A temporary file of ours older than this, and held by no process, is left over from a
# writer that was killed.
STALE_AFTER_S = 10.0
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    getattr(errno, "EDQUOT", -1): "the disk quota is exceeded",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def os_error_reason(exc: OSError) -> str:
    """What went wrong, in words (no errno number, no path)."""
    return _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)


def _write_error(target: Path, exc: OSError) -> WriteError:
    """A WriteError naming `target` for an OSError met while writing it."""
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "; choose a folder you can write to"
    elif exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        hint = "; free some space or choose another disk"
    return WriteError(f"cannot write {str(target)!r}: {os_error_reason(exc)}{hint}")


def _stale_pattern(target: Path) -> re.Pattern[str]:
    """The names `tempfile.mkstemp` gives this module's temporary files for `target`."""
    return re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}{re.escape(PART_SUFFIX)}")


def _held_by_a_writer(path: Path) -> bool:
    """True when a process holds the writer's lock on `path` (or it cannot be told)."""
    if fcntl is None:
        return False
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on close
    except OSError:
        return True
    return False


def remove_stale_parts(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed writes of `target` left behind; return them."""
    target = Path(target)
    pattern = _stale_pattern(target)
    removed = []
    try:
        candidates = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return removed
    for path in candidates:
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to delete
            if time.time() - path.stat().st_mtime > STALE_AFTER_S and not _held_by_a_writer(path):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` only if the block succeeds.

    An OSError while creating, writing or renaming it is raised as a WriteError naming `path`
    (from the block, only those without a file name, such as a full disk: an error reading
    another file there stays what it is).
    """
    target = Path(path)
    if target.is_dir():
        raise WriteError(f"cannot write {str(target)!r}: it is a folder, not a file")
    tmp: Path | None = None
    in_block = False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(target)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=PART_SUFFIX
        )
        tmp = Path(tmp_name)
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)  # "still being written": see the docstring
            in_block = True
            yield handle
            in_block = False
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if (
            isinstance(exc, OSError)
            and not isinstance(exc, WriteError)
            and (not in_block or exc.filename is None)
        ):
            raise _write_error(target, exc) from exc
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically and return the path."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in `folder`, or None. A folder that does not exist yet is
    judged by its nearest existing ancestor, where it would be made (nothing is made here)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{str(existing)!r} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return os_error_reason(exc)
    return None


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Make the folder `path` with its parents if missing; a WriteError says why it cannot be."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(folder, exc) from exc
    return folder


def check_output_folder(path: str | os.PathLike[str], what: str = "") -> Path:
    """Check that files can be written in the folder `path`, or that it can be made.

    A WriteError names the folder (`what`, e.g. "--out", says which option it came from) and
    what stands in the way: a file of that name, no permission, a read-only or full disk.
    """
    folder = Path(path).expanduser()
    label = f"{what} {str(folder)!r}" if what else repr(str(folder))
    if folder.exists() and not folder.is_dir():
        raise WriteError(f"{label} is a file, not a folder; give a folder (or a new name)")
    problem = _folder_problem(folder)
    if problem is not None:
        raise WriteError(f"cannot write in {label}: {problem}; choose a folder you can write to")
    return folder


def check_output_file(path: str | os.PathLike[str], what: str = "") -> Path:
    """Check that the file `path` can be written (its folder made, if missing, when written)
    before the work; stale temporary files of earlier, killed writes of it are removed."""
    target = Path(path).expanduser()
    label = f"{what} {str(target)!r}" if what else repr(str(target))
    if target.is_dir():
        raise WriteError(f"{label} is a folder; give a file name inside it")
    problem = _folder_problem(target.parent)
    if problem is not None:
        raise WriteError(
            f"cannot write {label} in {str(target.parent)!r}: {problem}; choose a folder you "
            "can write to"
        )
    remove_stale_parts(target)
    return target


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], shared: bool = False) -> Iterator[None]:
    """Hold a lock on `folder` (flock on the folder itself): exclusive for a writer of several
    files in it, `shared` for a reader of several, so a reader never sees a writer half-way.
    Where there is no flock, or the folder cannot be opened, nothing is locked."""
    try:
        fd = os.open(folder, os.O_RDONLY) if fcntl is not None else None
    except OSError:
        fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
