"""The built-in tools as ToolDefinitions, and ``dispatch``: one call in, one ToolOutcome out.

What is offered and what can be dispatched come from the same function (``_offered``), so a tool
the model was not shown cannot be run either.
"""
from __future__ import annotations

import functools
from pathlib import Path
from collections.abc import Awaitable, Callable

import attrs
import trio
from attrs import frozen

from protocol.canonical import ToolDefinition

from actors.tools import _command, _files, _state
from actors.tools._context import ToolContext, ToolError, ToolOutcome
from actors.tools._paths import MEMORY_FILE
from actors.tools._schema import check_input

Runner = Callable[[ToolContext, dict], Awaitable[ToolOutcome]]
_MEMORY_TOOLS = frozenset({"memory_add", "memory_replace"})


def _in_thread(fn: Callable[..., str]) -> Runner:
    # File I/O never runs on the event loop. The thread checks for cancellation in its long loops
    # (trio.from_thread.check_cancelled), and files that could block forever are refused before
    # they are opened (see _io), so a cancelled turn gets its thread back.
    async def run(ctx: ToolContext, args: dict) -> ToolOutcome:
        return ToolOutcome(await trio.to_thread.run_sync(functools.partial(fn, ctx, **args)))

    return run


_write_locks: dict[Path, trio.Lock] = {}


def _mutating(fn: Callable[..., str]) -> Runner:
    # Mutations also run in a thread, one at a time per workspace: memory_add's read-modify-write
    # must not interleave with another call's, and that holds across sessions sharing a workspace.
    async def run(ctx: ToolContext, args: dict) -> ToolOutcome:
        key = ctx.workspace or Path("/")
        lock = _write_locks.setdefault(key, trio.Lock())
        try:
            async with lock:
                return ToolOutcome(await trio.to_thread.run_sync(functools.partial(fn, ctx, **args)))
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                _write_locks.pop(key, None)

    return run


async def _run_command(ctx: ToolContext, args: dict) -> ToolOutcome:
    content, is_error = await _command.run_command(ctx, **args)
    return ToolOutcome(content, is_error)


@frozen
class _Tool:
    name: str
    description: str
    properties: dict
    required: tuple[str, ...]
    run: Runner = attrs.field(eq=False)

    def definition(self) -> ToolDefinition:
        schema = {
            "type": "object",
            "properties": self.properties,
            "required": list(self.required),
            "additionalProperties": False,
        }
        return ToolDefinition(name=self.name, description=self.description, input_schema=schema)


def _s(description: str, **extra: object) -> dict:
    return {"type": "string", "description": description, **extra}


_PATH = _s("Path relative to the workspace root. Absolute paths and paths leaving the workspace are refused.")
_LINE = {"type": "integer", "minimum": 1}

_TOOLS: tuple[_Tool, ...] = (
    _Tool(
        "read_file",
        "Read a text file from the workspace. Output is capped at "
        f"{_files.READ_CAP_BYTES // 1024} KiB; use start_line/end_line (1-based, inclusive) for long files.",
        {"path": _PATH, "start_line": {**_LINE, "description": "First line to return (1-based)."},
         "end_line": {**_LINE, "description": "Last line to return (inclusive)."}},
        ("path",),
        _in_thread(_files.read_file),
    ),
    _Tool(
        "list_files",
        "List a workspace directory, one path per line relative to the workspace root; directories end "
        f"with '/'. At most {_files.LIST_CAP_ENTRIES} entries.",
        {"path": _s("Directory relative to the workspace root.", default="."),
         "pattern": _s("Glob matched against entry names (e.g. '*.py'), or against the path below "
                       "'path' if it contains '/'."),
         "recursive": {"type": "boolean", "default": False, "description": "Descend into subdirectories."}},
        (),
        _in_thread(_files.list_files),
    ),
    _Tool(
        "write_file",
        "Create or overwrite a file in the workspace with the given UTF-8 content, creating missing "
        "parent directories.",
        {"path": _PATH, "content": _s("The complete new file content.")},
        ("path", "content"),
        _mutating(_files.write_file),
    ),
    _Tool(
        "edit_file",
        "Replace old_string with new_string in a workspace file. old_string must match exactly "
        "(whitespace included) and occur once, unless replace_all is true.",
        {"path": _PATH, "old_string": _s("Exact text to replace."), "new_string": _s("Replacement text."),
         "replace_all": {"type": "boolean", "default": False, "description": "Replace every occurrence."}},
        ("path", "old_string", "new_string"),
        _mutating(_files.edit_file),
    ),
    _Tool(
        "run_command",
        "Run a command in the workspace (a string runs via /bin/sh -c; a list runs as argv). stdin is "
        "empty. Returns the exit code, stdout and stderr; long output is truncated.",
        {"command": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                     "description": "Shell command string, or argv list."},
         "cwd": _s("Working directory relative to the workspace root.", default="."),
         "timeout": {"type": "number", "description": "Seconds before the command is killed; "
                     "cannot exceed the workspace's limit."}},
        ("command",),
        _run_command,
    ),
    _Tool(
        "memory_add",
        f"Remember a durable fact about this workspace: appends a bullet to {MEMORY_FILE}.",
        {"text": _s("The fact to remember.")},
        ("text",),
        _mutating(_state.memory_add),
    ),
    _Tool(
        "memory_replace",
        f"Correct or remove remembered text: replaces the single occurrence of old with new in {MEMORY_FILE}.",
        {"old": _s("Exact text currently in memory."), "new": _s("Replacement text (may be empty).")},
        ("old", "new"),
        _mutating(_state.memory_replace),
    ),
    _Tool(
        "load_skill",
        "Load a workspace skill's instructions by name. An unknown name lists the available skills.",
        {"name": _s("Skill name, e.g. 'release-checklist'.")},
        ("name",),
        _in_thread(_state.load_skill),
    ),
)
TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in _TOOLS)


def _offered(ctx: ToolContext, allowed: set[str] | frozenset[str] | None) -> dict[str, _Tool]:
    if ctx.workspace is None:
        return {}
    tools = {}
    for tool in _TOOLS:
        if allowed is not None and tool.name not in allowed:
            continue
        if tool.name == "run_command" and not ctx.run_command_allowed:
            continue
        # Spec §6.2.1: memory tools are not registered for workers, whatever allowed_tools says.
        if ctx.is_worker and tool.name in _MEMORY_TOOLS:
            continue
        tools[tool.name] = tool
    return tools


def builtin_tool_definitions(
    ctx: ToolContext, allowed: set[str] | frozenset[str] | None = None
) -> tuple[ToolDefinition, ...]:
    """The built-in tools this context may use, filtered by ``allowed`` (None: all of them)."""
    return tuple(tool.definition() for tool in _offered(ctx, allowed).values())


async def dispatch(
    ctx: ToolContext, name: str, input: dict, *, allowed: set[str] | frozenset[str] | None = None
) -> ToolOutcome:
    """Run one built-in tool call. Failures come back as ``is_error`` outcomes; trio.Cancelled
    (and other BaseExceptions) propagate, after any subprocess has been killed."""
    tool = _offered(ctx, allowed).get(name)
    if tool is None:
        return ToolOutcome(f"unknown tool: {name}", is_error=True)
    try:
        arguments = check_input(name, tool.definition().input_schema, input)
        return await tool.run(ctx, arguments)
    except ToolError as exc:
        return ToolOutcome(str(exc), is_error=True)
    except OSError as exc:
        return ToolOutcome(f"{name} failed: {exc.strerror or exc}", is_error=True)
    except Exception as exc:
        # A bug in a tool must not end the turn; the model (and the trace) see what happened.
        return ToolOutcome(f"{name} failed unexpectedly: {type(exc).__name__}: {exc}", is_error=True)
