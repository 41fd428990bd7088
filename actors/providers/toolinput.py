"""A tool call's arguments are the model's output, and so untrusted input: parsed with a nesting
bound, so that no structure the model invents can break the history, the store or the wire."""
from __future__ import annotations

import json
from typing import Any

MAX_TOOL_INPUT_DEPTH = 64
# Replaces the arguments of a call the daemon will not run; the planner answers it as an error.
REFUSED_KEY = "_orchestrator_refused_input"


def nesting_depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests, counting stops once past ``limit`` (iterative: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_tool_arguments(text: str) -> dict:
    """The call's input: ``{}`` for no text, a refusal marker for input nested too deeply.

    Raises ValueError when the text is not JSON (a call cut off by max_tokens, or a broken server).
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except RecursionError:
        return refused(f"the tool input nests deeper than {MAX_TOOL_INPUT_DEPTH} levels; it was not run")
    if nesting_depth(value, MAX_TOOL_INPUT_DEPTH) > MAX_TOOL_INPUT_DEPTH:
        return refused(f"the tool input nests deeper than {MAX_TOOL_INPUT_DEPTH} levels; it was not run")
    return value if isinstance(value, dict) else {}


def refused(reason: str) -> dict:
    return {REFUSED_KEY: reason}


def refusal(tool_input: dict) -> str | None:
    reason = tool_input.get(REFUSED_KEY)
    return reason if isinstance(reason, str) else None
