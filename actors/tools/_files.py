"""read_file, list_files, write_file, edit_file: plain synchronous functions over confined paths.

They run in worker threads (see ``_registry``); every file is opened through ``_io`` (regular
files only, writes by rename) and every size is bounded before anything is read.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from actors.tools._context import ToolContext, ToolError
from actors.tools._io import atomic_write, check_cancelled, open_regular, read_capped, regular_stat
from actors.tools._paths import check_writable, confine, display

READ_CAP_BYTES = 256 * 1024
# edit_file reads the whole file and writes it back; write_file's content is held in memory too.
EDIT_CAP_BYTES = 8 * 1024 * 1024
LIST_CAP_ENTRIES = 1000
_SNIFF_BYTES = 8192


def _looks_binary(head: bytes) -> bool:
    # The same heuristic git and grep use: text files practically never contain NUL.
    return b"\x00" in head


def _existing_file(ctx: ToolContext, raw: str) -> Path:
    target = confine(ctx, raw)
    regular_stat(target, raw)
    return target


def read_file(ctx: ToolContext, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
    target = _existing_file(ctx, path)
    if start_line is not None and end_line is not None and end_line < start_line:
        raise ToolError(f"end_line ({end_line}) is before start_line ({start_line})")
    with open_regular(target, path) as f:
        if _looks_binary(f.read(_SNIFF_BYTES)):
            size = os.fstat(f.fileno()).st_size
            raise ToolError(f"{path} is a binary file ({size} bytes); its contents are not shown")
        f.seek(0)
        if start_line is None and end_line is None:
            return _read_whole(f, path)
        return _read_lines(f, path, start_line or 1, end_line)


def _read_whole(f, path: str) -> str:
    data = f.read(READ_CAP_BYTES + 1)
    if not data:
        return f"[{path} is empty]"
    if len(data) <= READ_CAP_BYTES:
        return data.decode("utf-8", errors="replace")
    # Cut at a line boundary so the model can continue with start_line.
    cut = data.rfind(b"\n", 0, READ_CAP_BYTES) + 1
    size = os.fstat(f.fileno()).st_size
    if cut == 0:  # one enormous first line: show its head
        shown = data[:READ_CAP_BYTES]
        return shown.decode("utf-8", errors="replace") + (
            f"\n[truncated: showed the first {READ_CAP_BYTES} of {size} bytes]"
        )
    shown = data[:cut]
    lines = shown.count(b"\n")
    return shown.decode("utf-8", errors="replace") + (
        f"\n[truncated: showed lines 1-{lines} ({cut} of {size} bytes); "
        f"read the rest with start_line={lines + 1}]"
    )


def _next_line(f) -> tuple[bytes, int]:
    """The next line (at most its first READ_CAP_BYTES + 1 bytes) and its full length.

    A 1 GiB file without newlines must not become one 1 GiB line in memory: the rest of a long
    line is skipped in bounded reads.
    """
    line = f.readline(READ_CAP_BYTES + 1)
    length = len(line)
    if length > READ_CAP_BYTES and not line.endswith(b"\n"):
        while True:
            check_cancelled()
            more = f.readline(1 << 20)
            length += len(more)
            if not more or more.endswith(b"\n"):
                break
    return line, length


def _read_lines(f, path: str, start: int, end: int | None) -> str:
    out: list[bytes] = []
    size = 0
    lineno = 0
    while True:
        line, length = _next_line(f)
        if not line:
            break
        lineno += 1
        if lineno % 10_000 == 0:
            check_cancelled()
        if lineno < start:
            continue
        if end is not None and lineno > end:
            break
        if size + length > READ_CAP_BYTES:
            if not out:  # a single line over the cap: show its head rather than nothing
                text = line[:READ_CAP_BYTES].decode("utf-8", errors="replace")
                return text + f"\n[truncated: line {lineno} is {length} bytes; showed the first {READ_CAP_BYTES}]"
            text = b"".join(out).decode("utf-8", errors="replace")
            return text + (
                f"\n[truncated: showed lines {start}-{lineno - 1}; "
                f"read the rest with start_line={lineno}]"
            )
        out.append(line)
        size += length
    if not out:
        raise ToolError(f"start_line {start} is past the end of {path} ({lineno} lines)")
    return b"".join(out).decode("utf-8", errors="replace")


def list_files(ctx: ToolContext, path: str = ".", pattern: str | None = None, recursive: bool = False) -> str:
    root = confine(ctx, path)
    if not root.exists():
        raise ToolError(f"directory not found: {path}")
    if not root.is_dir():
        raise ToolError(f"{path} is not a directory")
    base = display(ctx, root)
    prefix = "" if base == "." else base + "/"
    entries: list[str] = []
    for rel, is_dir in _walk(root, recursive):
        if pattern and not fnmatch.fnmatchcase(rel if "/" in pattern else rel.rsplit("/", 1)[-1], pattern):
            continue
        if len(entries) == LIST_CAP_ENTRIES:
            entries.append(
                f"[listing truncated at {LIST_CAP_ENTRIES} entries; narrow it with path or pattern]"
            )
            break
        entries.append(prefix + rel + ("/" if is_dir else ""))
    if not entries:
        return f"[no entries in {base}" + (f" matching {pattern}]" if pattern else "]")
    return "\n".join(entries)


def _walk(root: Path, recursive: bool):
    """(path relative to root, is_dir) in sorted order; symlinked directories are not entered."""
    if not recursive:
        with os.scandir(root) as it:
            for entry in sorted(it, key=lambda e: e.name):
                yield entry.name, entry.is_dir()
        return
    for dirpath, dirnames, filenames in os.walk(root):
        check_cancelled()
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        lead = "" if rel_dir == "." else rel_dir + "/"
        for name in dirnames:
            yield lead + name, True
        for name in sorted(filenames):
            yield lead + name, False


def write_file(ctx: ToolContext, path: str, content: str) -> str:
    target = confine(ctx, path)
    check_writable(ctx, target, path)
    data = content.encode("utf-8")
    if len(data) > EDIT_CAP_BYTES:
        raise ToolError(f"content is {len(data)} bytes; write_file's limit is {EDIT_CAP_BYTES} bytes")
    existed = os.path.lexists(target)
    if existed:
        regular_stat(target, path)  # never replace a directory, FIFO or device
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data)
    return f"wrote {len(data)} bytes to {display(ctx, target)}" + (
        " (replaced the existing file)" if existed else " (new file)"
    )


def edit_file(ctx: ToolContext, path: str, old_string: str, new_string: str, replace_all: bool = False) -> str:
    target = _existing_file(ctx, path)
    check_writable(ctx, target, path)
    if not old_string:
        raise ToolError("old_string must not be empty")
    if old_string == new_string:
        raise ToolError("old_string and new_string are identical; nothing to change")
    text = read_text(target, path)
    count = text.count(old_string)
    if count == 0:
        raise ToolError(f"old_string not found in {path}")
    if count > 1 and not replace_all:
        raise ToolError(
            f"old_string is ambiguous: it occurs {count} times in {path}; include more "
            "surrounding context to make it unique, or set replace_all to true"
        )
    data = text.replace(old_string, new_string).encode("utf-8")
    if len(data) > EDIT_CAP_BYTES:
        raise ToolError(f"the edited file would be {len(data)} bytes; the limit is {EDIT_CAP_BYTES} bytes")
    atomic_write(target, data)
    return f"replaced {count} occurrence{'s' if count > 1 else ''} in {display(ctx, target)}"


def read_text(target: Path, raw: str, cap: int = EDIT_CAP_BYTES) -> str:
    """A whole file as text, refusing binary and non-UTF-8 content (editing would corrupt it).

    The size is checked before reading: a 1 GiB file is refused without being loaded.
    """
    data = read_capped(target, raw, cap, what="edit")
    if _looks_binary(data[:_SNIFF_BYTES]):
        raise ToolError(f"{raw} is a binary file; it cannot be edited as text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{raw} is not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
