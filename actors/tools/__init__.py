"""Built-in tools the planner's (and workers') turn loop dispatches.

    defs = builtin_tool_definitions(ctx, allowed)      # offer these to the model
    outcome = await dispatch(ctx, block.name, block.input, allowed=allowed)
    result = outcome.to_result_block(block.id)

File tools are confined to ``ctx.workspace``; run_command needs ``ctx.run_command_allowed``;
workers never get the memory tools (spec §6.2.1).
"""
from actors.tools._context import ToolContext, ToolError, ToolOutcome
from actors.tools._registry import TOOL_NAMES, builtin_tool_definitions, dispatch

__all__ = ["TOOL_NAMES", "ToolContext", "ToolError", "ToolOutcome", "builtin_tool_definitions", "dispatch"]
