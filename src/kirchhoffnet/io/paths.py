"""Where kirchhoffnet may write: output directories and files checked before any work starts, run
names that are one safe path component, and every OS failure of a write as one
[`StorageError`][kirchhoffnet.errors.StorageError].

A command validates its ``--out`` with `check_out_dir` (a directory) or `check_out_file`
(a file) before computing anything, and creates a directory with `prepare_out_dir`. So a path
through a file, a dangling symbolic link or a read-only directory fails at once, naming the path and
the reason, instead of as a traceback after the work.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

from kirchhoffnet.errors import ConfigError, StorageError, shown

NAME_MAX_BYTES = 128
"""Longest run name (UTF-8 bytes): well inside a file name's 255 with room for temporary-file affixes."""
PATH_MAX_BYTES = 4000
"""Longest output path: Linux's PATH_MAX is 4096 bytes."""
_OS_ERROR_IN_TEXT = re.compile(r"os error (\d+)")  # how Rust extensions (safetensors) report an errno


def shown_path(path: str | os.PathLike[str], limit: int = 200) -> str:
    """A path for a message: as typed, but control characters escaped and cut to ``limit`` characters."""
    text = os.fsdecode(path)
    cut = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return cut + ("..." if len(text) > limit else "")


def check_run_name(name: str, what: str = "") -> str:
    """``name`` if it can name a run directory (``runs/<name>``) as exactly one path component; else a
    ConfigError naming ``what`` (an argument; a config validator leaves it out, pydantic names the key).

    Refused: empty, ``/`` or ``\\``, NUL and other control characters, a leading ``.`` (``..``, hidden
    files) or ``-`` (read as an option by other tools), leading or trailing spaces, and more than
    `NAME_MAX_BYTES` bytes of UTF-8.
    """
    reason = _name_problem(name)
    if reason:
        raise ConfigError(
            f"{what + ': ' if what else ''}{shown(name)} cannot name a run directory: {reason}; "
            "use letters, digits, '-', '_' and '.'"
        )
    return name


def _name_problem(name: str) -> str:
    if not name:
        return "it is empty"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains a control character"
    if name[0] in ".-":
        return f"it starts with {name[0]!r}"
    if name != name.strip():
        return "it starts or ends with a space"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    if size > NAME_MAX_BYTES:
        return f"it is {size} bytes long (at most {NAME_MAX_BYTES})"
    return ""


def storage_error(exc: OSError, path: str | os.PathLike[str], doing: str = "writing", kept: str = "") -> StorageError:
    """One line for an OS failure on ``path``: the reason (``strerror``), the path, and what was kept."""
    code = exc.errno
    reason = (exc.strerror or (os.strerror(code) if code else str(exc)) or type(exc).__name__).strip()
    reason = reason[:1].lower() + reason[1:200]
    error = StorageError(f"{reason} while {doing} {shown_path(path)}{'; ' + kept if kept else ''}")
    error.errno = code  # callers may branch on ENOSPC; str() stays the message
    return error


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, one in its cause/context chain (torch wraps a failed write in
    RuntimeError), or an ``os error N`` in its text (safetensors' Rust errors); else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        match = _OS_ERROR_IN_TEXT.search(str(current))
        if match:
            code = int(match.group(1))
            return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None


def _check_path(path: Path, what: str) -> None:
    text = os.fsdecode(path)
    if "\0" in text:
        raise ConfigError(f"{what} {shown(text)} contains a NUL byte; give a plain path")
    if not text:
        raise ConfigError(f"{what} is empty; give a path")
    try:
        sizes = [len(os.fsencode(part)) for part in path.parts]
    except UnicodeEncodeError:
        raise ConfigError(f"{what} {shown(text)} is not a valid file name in this locale; rename it") from None
    if sum(sizes) + len(sizes) > PATH_MAX_BYTES:
        raise ConfigError(f"{what} is {sum(sizes)} bytes long (at most {PATH_MAX_BYTES}); give a shorter path")
    too_long = [part for part, size in zip(path.parts, sizes, strict=True) if size > 255]
    if too_long:
        raise ConfigError(f"{what} {shown(text)}: the name {shown(too_long[0], 30)} is over 255 bytes; shorten it")


def check_out_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """``path`` if a command can write its results there, without creating anything yet.

    It is a directory we may write, or it does not exist and its nearest existing ancestor is. Raises
    ConfigError (NUL byte, too long) or StorageError (a file, a path through a file, a dangling
    symbolic link, no permission, a read-only file system), each naming the path and the reason.
    """
    folder = Path(path)
    _check_path(folder, what)
    _check_folder(folder, folder, what)
    return folder


def prepare_out_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """`check_out_dir`, then create the directory (and its parents)."""
    folder = check_out_dir(path, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, folder, "creating") from None
    return folder


def check_out_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """``path`` if a command can write a result file there: not a directory, and its folder passes
    `check_out_dir`. (A symbolic link at ``path`` is replaced, never followed.)"""
    target = Path(path)
    _check_path(target, what)
    if target.is_dir() and not target.is_symlink():
        raise _refused(target, what, errno.EISDIR, "it is a directory; give a file name")
    _check_folder(target.parent, target, what)
    return target


def _check_folder(folder: Path, given: Path, what: str) -> None:
    """``folder`` exists as a directory we may write, or is missing below one; errors name ``given``."""
    existing = folder
    while not _lexists(existing) and existing.parent != existing:
        existing = existing.parent
    missing = folder.parts[len(existing.parts) :]
    if ".." in missing:  # mkdir would create the folder before '..' and then climb out of it
        raise _refused(given, what, errno.ENOENT, f"'..' follows {shown_path(missing[0])}, which does not exist")
    here = "it" if existing == given else shown_path(existing)
    if existing.is_symlink() and not existing.exists():
        kind = "a symbolic link loop" if _loops(existing) else "a dangling symbolic link"
        raise _refused(given, what, errno.ENOENT, f"{here} is {kind}; remove it or choose another path")
    if not existing.is_dir():
        raise _refused(given, what, errno.ENOTDIR, f"{here} is a file; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only(existing) else errno.EACCES
        raise _refused(given, what, code, f"{os.strerror(code).lower()} in {shown_path(existing)}")


def check_free_space(path: str | os.PathLike[str], size_bytes: float, what: str = "--out") -> None:
    """Refuse, before any work, a result of ``size_bytes`` that the file system holding ``path`` (or its
    nearest existing folder) has no room for: a full disk found at the end loses the whole computation."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if size_bytes > free:
        raise _refused(
            Path(path),
            what,
            errno.ENOSPC,
            f"the result needs {size_bytes / 1e9:.3g} GB and the disk has {free / 1e9:.3g} GB free; ask for less",
        )


def _refused(path: Path, what: str, code: int, reason: str) -> StorageError:
    error = StorageError(f"cannot write {what} {shown_path(path)}: {reason}")
    error.errno = code
    return error


def _lexists(path: Path) -> bool:
    """Whether ``path`` itself exists (a link counts, followed or not); a path through a file or a
    link loop does not, so that the walk up reaches the culprit."""
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _loops(path: Path) -> bool:
    try:
        path.stat()
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
