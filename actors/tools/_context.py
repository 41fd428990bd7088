"""What a tool call runs with (``ToolContext``) and what it gives back (``ToolOutcome``)."""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from collections.abc import Mapping

import attrs
from attrs import frozen

from protocol.canonical import ToolResultBlock


class ToolError(Exception):
    """A failure the model should read and react to; ``dispatch`` turns it into an error outcome."""


def _to_workspace(value: str | PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _check_absolute(instance: object, attribute: attrs.Attribute, value: Path | None) -> None:
    # Relative workspaces would silently depend on the daemon's cwd.
    if value is not None and not value.is_absolute():
        raise ValueError(f"workspace must be an absolute path, got {value}")


@frozen
class ToolContext:
    """Per-session facts the built-in tools need.

    ``workspace`` is required by every built-in tool (they all act on workspace files); without it
    none is offered. ``run_command_allowed`` is granted by workspace config, never by the model.
    ``command_env`` is run_command's whole environment (None: the minimal base, see
    ``actors.tools.workspace``); it never holds provider keys. ``worker_pool`` sends the calls to a
    remote worker of that pool (docs/remote-workers.md).
    """

    workspace: Path | None = attrs.field(default=None, converter=_to_workspace, validator=_check_absolute)
    run_command_allowed: bool = False
    command_timeout_s: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    output_cap_bytes: int = attrs.field(default=64 * 1024, validator=attrs.validators.gt(0))
    is_worker: bool = False
    command_env: Mapping[str, str] | None = None
    # workspace.yaml ``worker_pool``: the calls run on a remote worker of that pool (actors.remote).
    worker_pool: str | None = None


@frozen
class ToolOutcome:
    """Plain text for the model, and whether the call failed."""

    content: str
    is_error: bool = False

    def to_result_block(self, tool_use_id: str) -> ToolResultBlock:
        return ToolResultBlock(tool_use_id=tool_use_id, content=self.content, is_error=self.is_error)
