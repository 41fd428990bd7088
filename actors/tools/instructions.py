"""The workspace's instruction files, for the system prompt of every turn (planner and workers).

Read from the workspace root: ``AGENTS.md``, ``CLAUDE.md``, and the memory the model keeps with
memory_add (``.orchestrator/MEMORY.md``). Each is capped at ``MAX_FILE_BYTES`` (cut at a line,
with a note) and re-read only when its (mtime_ns, size, inode) changes. Only regular files inside
the workspace count: an ``AGENTS.md`` symlinked to a file outside would otherwise send that file
to the provider. Blocking: call :func:`workspace_instructions` from a thread.
"""
from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path

from actors.tools._paths import MEMORY_FILE

INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md", MEMORY_FILE)
MAX_FILE_BYTES = 32 * 1024
_CACHE_MAX = 512
_HEADINGS = {MEMORY_FILE: "Workspace memory"}


class _FileCache:
    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[tuple, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0

    def text(self, root: Path, name: str) -> str:
        try:
            path = (root / name).resolve()
            if not path.is_relative_to(root):
                return ""
            st = os.stat(path)
        except (OSError, RuntimeError):
            return ""
        if not stat.S_ISREG(st.st_mode):
            return ""
        key, signature = str(path), (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == signature:
                self._entries.move_to_end(key)
                return hit[1]
        text = _read(path, name)
        with self._lock:
            self.reads += 1
            self._entries[key] = (signature, text)
            if len(self._entries) > _CACHE_MAX:
                self._entries.popitem(last=False)
        return text


def _read(path: Path, name: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        os.set_blocking(fd, True)
        data = f.read(MAX_FILE_BYTES + 1)
    if b"\x00" in data[:8192]:
        return ""
    if len(data) <= MAX_FILE_BYTES:
        return data.decode("utf-8", errors="replace").strip()
    cut = data.rfind(b"\n", 0, MAX_FILE_BYTES) + 1 or MAX_FILE_BYTES
    return data[:cut].decode("utf-8", errors="replace").rstrip() + (
        f"\n[{name} truncated at {cut} bytes; read the rest with read_file if needed]"
    )


_cache = _FileCache()


def workspace_instructions(workspace: str | os.PathLike[str] | None) -> str:
    """The instruction files' text as system-prompt sections, or "" when there are none."""
    if not workspace:
        return ""
    try:
        root = Path(workspace).resolve()
    except (OSError, RuntimeError):
        return ""
    sections = []
    for name in INSTRUCTION_FILES:
        text = _cache.text(root, name)
        if text:
            sections.append(f"## {_HEADINGS.get(name, 'Workspace instructions')} ({name})\n\n{text}")
    return "\n\n".join(sections)


def with_instructions(system: str, instructions: str) -> str:
    return f"{system}\n\n{instructions}" if instructions else system
