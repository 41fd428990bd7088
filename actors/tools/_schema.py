"""Checks a tool's input against the small JSON-schema subset its definition uses.

Models get argument names and types wrong often enough that a precise message ("unexpected
argument file_path; expected: path, ...") is worth more than a KeyError deep in a tool.
"""
from __future__ import annotations

from actors.tools._context import ToolError

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def _matches(value: object, schema: dict) -> bool:
    if "anyOf" in schema:
        return any(_matches(value, option) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind is None:
        return True
    # bool is an int subclass, but true is not a line number.
    if isinstance(value, bool) and kind != "boolean":
        return False
    if not isinstance(value, _TYPES[kind]):
        return False
    # The isinstance checks below only narrow for mypy: the type test above already passed.
    if kind == "array" and "items" in schema and isinstance(value, (list, tuple)):
        return all(_matches(item, schema["items"]) for item in value)
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        return False
    return True


def _describe(schema: dict) -> str:
    if "anyOf" in schema:
        return " or ".join(_describe(option) for option in schema["anyOf"])
    kind = schema.get("type", "any value")
    if kind == "array" and "items" in schema:
        return f"array of {_describe(schema['items'])}"
    if "minimum" in schema:
        return f"{kind} >= {schema['minimum']}"
    return kind


def check_input(tool: str, schema: dict, arguments: object) -> dict:
    """``arguments`` with ``None``-valued optional keys dropped, or a ToolError naming the problem."""
    if not isinstance(arguments, dict):
        raise ToolError(f"{tool}: input must be a JSON object, got {type(arguments).__name__}")
    properties: dict = schema.get("properties", {})
    unexpected = sorted(k for k in arguments if k not in properties)
    if unexpected:
        raise ToolError(
            f"{tool}: unexpected argument{'s' if len(unexpected) > 1 else ''} "
            f"{', '.join(map(str, unexpected))}; expected: {', '.join(properties)}"
        )
    # Some models send null for optional arguments they mean to leave out.
    required = schema.get("required", [])
    cleaned = {k: v for k, v in arguments.items() if v is not None or k in required}
    missing = [k for k in required if k not in cleaned]
    if missing:
        raise ToolError(f"{tool}: missing required argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for key, value in cleaned.items():
        if not _matches(value, properties[key]):
            raise ToolError(f"{tool}: {key} must be {_describe(properties[key])}, got {value!r:.80}")
    return cleaned
