"""Offline input-token estimation (DESIGN §7: tokenizers that download encodings fail offline).

Heuristic, deliberately simple and slightly pessimistic, because routing only compares it with
thresholds and context windows:

* text: one token per 4 UTF-8 bytes, rounded up (≈ 4 characters of English; CJK and other
  multi-byte scripts come out near one token per character, which is about right);
* every message costs ``MESSAGE_OVERHEAD`` tokens (role markers), every content block
  ``BLOCK_OVERHEAD``;
* an image costs a flat ``IMAGE_TOKENS`` (Anthropic bills ~1,600 tokens for a ~1.15 MP image);
* tool definitions and tool-use inputs are counted as their compact JSON;
* the system prompt counts as text plus ``MESSAGE_OVERHEAD``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from protocol.canonical import (
    ImageBlock,
    Message,
    TextBlock,
    ThinkingBlock,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
)

BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
BLOCK_OVERHEAD = 2
IMAGE_TOKENS = 1600
TOOL_OVERHEAD = 8


def estimate_text_tokens(text: str) -> int:
    # str.isascii() is O(1) for CPython's compact strings; encoding is only paid for non-ASCII text.
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return -(-size // BYTES_PER_TOKEN)


def _json_tokens(value: object) -> int:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return estimate_text_tokens(text)


def _block_tokens(block: object) -> int:
    if isinstance(block, TextBlock):
        return BLOCK_OVERHEAD + estimate_text_tokens(block.text)
    if isinstance(block, ImageBlock):
        return BLOCK_OVERHEAD + IMAGE_TOKENS
    if isinstance(block, ToolUseBlock):
        return BLOCK_OVERHEAD + estimate_text_tokens(block.name) + _json_tokens(block.input)
    if isinstance(block, ToolResultBlock):
        return BLOCK_OVERHEAD + estimate_text_tokens(block.content)
    if isinstance(block, ThinkingBlock):
        # Counted even though non-thinking models drop them: over-estimating is the safe side.
        return BLOCK_OVERHEAD + estimate_text_tokens(block.thinking)
    return BLOCK_OVERHEAD


def estimate_tool_tokens(tool: ToolDefinition) -> int:
    return (
        TOOL_OVERHEAD
        + estimate_text_tokens(tool.name)
        + estimate_text_tokens(tool.description)
        + _json_tokens(tool.input_schema)
    )


def estimate_input_tokens(
    system: str | None,
    tools: Iterable[ToolDefinition],
    messages: Iterable[Message],
) -> int:
    """Estimated prompt size of a request carrying ``system``, ``tools`` and ``messages``."""
    total = 0
    if system:
        total += MESSAGE_OVERHEAD + estimate_text_tokens(system)
    for tool in tools:
        total += estimate_tool_tokens(tool)
    for message in messages:
        total += MESSAGE_OVERHEAD
        for block in message.content:
            total += _block_tokens(block)
    return total
