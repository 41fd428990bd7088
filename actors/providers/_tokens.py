"""Rough token estimates for when a provider reports none (cli agents) or before a call.

About 4 characters per token, the usual English average for current BPE vocabularies. No
tokenizer library: tiktoken downloads its encodings on first use, which fails offline (DESIGN §7).
"""
from __future__ import annotations

import json

from protocol.canonical import ImageBlock, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock

from .base import LLMRequest

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600  # a ~1 megapixel image costs about this much at both vendors


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_request_tokens(request: LLMRequest) -> int:
    total = estimate_tokens(request.system or "")
    for tool in request.tools:
        total += estimate_tokens(tool.name + tool.description + json.dumps(tool.input_schema))
    for message in request.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                total += estimate_tokens(block.text)
            elif isinstance(block, ImageBlock):
                total += IMAGE_TOKENS
            elif isinstance(block, ToolUseBlock):
                total += estimate_tokens(block.name + json.dumps(block.input))
            elif isinstance(block, ToolResultBlock):
                total += estimate_tokens(block.content)
            elif isinstance(block, ThinkingBlock):
                total += estimate_tokens(block.thinking)
    return total
