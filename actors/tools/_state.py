"""Durable workspace state the model can touch: MEMORY.md (memory_add/memory_replace) and skills.

Memory writes are read-modify-write; ``dispatch`` runs them in a thread under the workspace's
write lock, so no other mutation of the same workspace interleaves.
"""
from __future__ import annotations

import re
from pathlib import Path

from actors.tools._context import ToolContext, ToolError
from actors.tools._files import read_text
from actors.tools._io import atomic_write, open_regular
from actors.tools._paths import MEMORY_FILE, SKILL_DIRS, confine, workspace_root

_SKILL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MEMORY_HEADER = "# Memory\n\n"
MEMORY_CAP_BYTES = 256 * 1024
_SKILL_HEAD_BYTES = 16 * 1024


def memory_add(ctx: ToolContext, text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    if not lines:
        raise ToolError("text must not be empty")
    # Continuation lines are indented so a multi-line note stays one Markdown bullet.
    bullet = "- " + "\n  ".join(lines) + "\n"
    target = confine(ctx, MEMORY_FILE)
    existing = read_text(target, MEMORY_FILE, MEMORY_CAP_BYTES) if target.exists() else ""
    if not existing:
        prefix = _MEMORY_HEADER
    elif not existing.endswith("\n"):
        prefix = "\n"
    else:
        prefix = ""
    new_text = (existing + prefix + bullet).encode("utf-8")
    if len(new_text) > MEMORY_CAP_BYTES:
        raise ToolError(f"{MEMORY_FILE} would exceed {MEMORY_CAP_BYTES} bytes; use memory_replace to condense it")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, new_text)  # by rename: never written through a hard link
    return f"added to {MEMORY_FILE}:\n{bullet.rstrip()}"


def memory_replace(ctx: ToolContext, old: str, new: str) -> str:
    if not old:
        raise ToolError("old must not be empty")
    target = confine(ctx, MEMORY_FILE)
    if not target.exists():
        raise ToolError(f"{MEMORY_FILE} does not exist yet; use memory_add first")
    text = read_text(target, MEMORY_FILE, MEMORY_CAP_BYTES)
    count = text.count(old)
    if count == 0:
        raise ToolError(f"old not found in {MEMORY_FILE}")
    if count > 1:
        raise ToolError(f"old is ambiguous: it occurs {count} times in {MEMORY_FILE}; include more context")
    atomic_write(target, text.replace(old, new).encode("utf-8"))
    return f"updated {MEMORY_FILE}"


def load_skill(ctx: ToolContext, name: str) -> str:
    """The skill's body; an unknown name raises a ToolError listing what is available."""
    stem = name.strip().removesuffix(".md")
    if _SKILL_NAME.fullmatch(stem):
        for skill_dir in SKILL_DIRS:
            candidate = confine(ctx, f"{skill_dir}/{stem}.md")
            if candidate.is_file():
                _, body = split_frontmatter(read_text(candidate, f"{skill_dir}/{stem}.md"))
                return body.strip("\n") or f"[skill {stem} has an empty body]"
    available = list_skills(ctx)
    if not available:
        raise ToolError(f"unknown skill: {name}. No skills are available in this workspace.")
    listing = "\n".join(f"- {n}: {d}" if d else f"- {n}" for n, d in available)
    raise ToolError(f"unknown skill: {name}. Available skills:\n{listing}")


def list_skills(ctx: ToolContext) -> list[tuple[str, str]]:
    """(name, description) of every skill, the first directory winning on duplicate names."""
    found: dict[str, str] = {}
    for skill_dir in SKILL_DIRS:
        try:
            directory = confine(ctx, skill_dir)
        except ToolError:  # a skills dir symlinked out of the workspace is not offered
            continue
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.md")):
            stem = path.stem
            if stem in found or not _SKILL_NAME.fullmatch(stem) or not _inside(ctx, path):
                continue
            try:
                with open_regular(path, path.name) as f:  # a FIFO named x.md is skipped, not waited on
                    head = f.read(_SKILL_HEAD_BYTES).decode("utf-8", errors="replace")
            except (OSError, ToolError):
                continue
            meta, _ = split_frontmatter(head)
            found[stem] = meta.get("description", "")
    return sorted(found.items())


def _inside(ctx: ToolContext, path: Path) -> bool:
    return path.resolve().is_relative_to(workspace_root(ctx))


def split_frontmatter(text: str) -> tuple[dict[str, str], str]:
    """Flat ``key: value`` pairs of a leading ``---`` block, and the text after it.

    Only top-level scalar keys are read (enough for name/description); a full YAML parse is not
    needed to strip the block.
    """
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return {}, text
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            meta: dict[str, str] = {}
            for line in lines[1:i]:
                key, sep, value = line.partition(":")
                if sep and key.strip() and not line[:1].isspace():
                    meta[key.strip()] = value.strip().strip("\"'")
            return meta, "".join(lines[i + 1 :])
    return {}, text  # unterminated: treat as body rather than hide everything
