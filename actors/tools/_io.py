"""The only file I/O primitives the tools use: regular files only, bounded, no links followed out.

- Reads open only *regular* files, checked by ``stat`` before opening and by ``fstat`` after (a
  FIFO, a device or a socket would block a thread forever or never end: 40 such reads used to
  exhaust trio's thread pool, and then nothing — not even SIGTERM — could finish).
- Writes go to a new file in the same directory, then ``rename`` over the target. The target's
  inode is never opened for writing, so a hard link inside the workspace to a file outside it
  (``st_nlink > 1``) is replaced by a fresh file instead of being written through; the other
  names keep their old content. A crash mid-write also leaves the old file intact.
- Long loops call ``trio.from_thread.check_cancelled`` so a cancelled turn gets its thread back.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import trio

from actors.tools._context import ToolError

_KIND = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def check_cancelled() -> None:
    """Raise trio.Cancelled in a worker thread whose caller was cancelled (no-op off trio)."""
    try:
        trio.from_thread.check_cancelled()
    except RuntimeError:  # not in a trio worker thread: plain synchronous use (tests, scripts)
        pass


def _kind(mode: int) -> str:
    return _KIND.get(stat.S_IFMT(mode), "not a regular file")


def regular_stat(target: Path, raw: str) -> os.stat_result:
    """``target``'s stat, or a ToolError when it is missing or not a regular file. Never opens it."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise ToolError(f"file not found: {raw}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{raw} is a directory; use list_files to see what it contains")
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"{raw} is {_kind(st.st_mode)}, not a regular file; only regular files can be read or written")
    return st


def open_regular(target: Path, raw: str) -> BinaryIO:
    """``target`` opened for reading, guaranteed a regular file (checked before and after open).

    O_NONBLOCK makes the open itself return at once even if a FIFO was swapped in after the stat
    (regular files ignore the flag); O_NOFOLLOW refuses a symlink swapped in at the last step.
    """
    regular_stat(target, raw)
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ToolError(f"{raw} is {_kind(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(target: Path, raw: str, cap: int, *, what: str = "file") -> bytes:
    """The whole file, refused by size (from fstat, before reading) when it is over ``cap``."""
    with open_regular(target, raw) as f:
        size = os.fstat(f.fileno()).st_size
        if size > cap:
            raise ToolError(f"{raw} is {size} bytes; the {what} limit is {cap} bytes")
        data = f.read(cap + 1)
    if len(data) > cap:  # grew between fstat and read
        raise ToolError(f"{raw} is over the {what} limit of {cap} bytes")
    return data


def atomic_write(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` via a new file and rename (see the module docstring).

    An existing target keeps its permission bits (and, where allowed, its owner); a new one gets
    the umask's default.
    """
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if old is not None:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
            if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.chown(tmp, old.st_uid, old.st_gid)
                except PermissionError:
                    pass  # only root may give a file away; the content is what matters
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
