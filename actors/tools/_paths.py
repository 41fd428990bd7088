"""Workspace confinement: every path a tool touches is checked here, after symlinks are resolved."""
from __future__ import annotations

import os
from pathlib import Path

from actors.tools._context import ToolContext, ToolError

STATE_DIR = ".orchestrator"
MEMORY_FILE = f"{STATE_DIR}/MEMORY.md"
SKILL_DIRS = (f"{STATE_DIR}/skills", "skills")
# Spec §6.2.1: workers are read-only against memory, skills and workspace config, so their file
# tools must not reach these either (run_command cannot be confined this way).
_WORKER_READ_ONLY = (STATE_DIR, "skills")


def workspace_root(ctx: ToolContext) -> Path:
    if ctx.workspace is None:
        raise ToolError("no workspace is configured for this session")
    root = ctx.workspace.resolve()
    if not root.is_dir():
        raise ToolError(f"the workspace directory does not exist: {ctx.workspace}")
    return root


def confine(ctx: ToolContext, raw: object, *, what: str = "path") -> Path:
    """The resolved absolute path for ``raw`` (relative to the workspace), or a ToolError.

    Resolving before checking is what catches symlink escapes, including a symlinked parent of a
    file that does not exist yet. (A symlink swapped in after this check is not caught; the model
    has no way to race itself short of run_command, which is unconfined anyway.)
    """
    if not isinstance(raw, str) or not raw:
        raise ToolError(f"{what} must be a non-empty string")
    if "\x00" in raw:
        raise ToolError(f"{what} contains a NUL byte")
    if os.path.isabs(raw):
        raise ToolError(
            f"path escapes the workspace: {raw} (absolute paths are not allowed; "
            "give a path relative to the workspace root)"
        )
    root = workspace_root(ctx)
    try:
        target = (root / raw).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on Python < 3.13
        raise ToolError(f"cannot resolve {what} {raw}: {exc}") from None
    if not target.is_relative_to(root):
        raise ToolError(f"path escapes the workspace: {raw}")
    return target


def display(ctx: ToolContext, target: Path) -> str:
    """``target`` as the model should see it: relative to the workspace root."""
    rel = target.relative_to(workspace_root(ctx))
    return rel.as_posix() if rel.parts else "."


def check_writable(ctx: ToolContext, target: Path, raw: str) -> None:
    """Refuse writes the model must not make with the file tools.

    Nobody's file tools write ``.orchestrator/``: it holds the workspace's settings (tool grants)
    and memory, and settings come only from files the user wrote — a model that could write
    ``workspace.yaml`` could grant itself run_command. Memory changes go through memory_add /
    memory_replace. Workers additionally leave ``skills/`` alone (spec §6.2.1).
    """
    root = workspace_root(ctx)
    for name in _WORKER_READ_ONLY if ctx.is_worker else (STATE_DIR,):
        guarded = (root / name).resolve()
        if target == guarded or target.is_relative_to(guarded):
            if ctx.is_worker:
                raise ToolError(f"workers are read-only against memory, skills and workspace config: {raw}")
            raise ToolError(
                f"{raw}: the file tools cannot write {STATE_DIR}/ (workspace settings are written by the "
                "user; use memory_add / memory_replace for memory)"
            )
