"""The offline demo provider: deterministic, plausible, and clearly labelled as a demo.

It needs no network and no key, so ``orchestrator demo`` and the tests can run a whole turn —
streaming, usage, tool calls and delegation — anywhere. Answers are derived from the prompt with a
stable hash, so the same conversation always streams the same text.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator

import trio

from protocol.canonical import Message, Role, StopReason, TextBlock, ToolResultBlock, ToolUseBlock, Usage

from actors.planner.tokens import estimate_input_tokens
from actors.providers.base import Completed, LLMRequest, StreamEvent, TextChunk, ToolUseChunk

DEFAULT_CHUNK_DELAY = 0.004

_OPENINGS = (
    "Here is how I would approach it.",
    "Short answer first, details after.",
    "Let me break this down.",
    "Good question — the key point is this.",
)
_BODIES = (
    "Start from the smallest change that proves the idea, keep it covered by a test, and only then "
    "widen it. Measure before optimising, and write down why each decision was made.",
    "Split the work into a mechanical part and a judgment part. The mechanical part can go to a "
    "cheaper model; the judgment part stays with the planner, which reviews the result.",
    "Read the existing code first, name the invariant you must keep, change one module at a time "
    "and run the tests after each step so a regression points at a single change.",
    "Prefer explicit configuration over clever defaults: a rule you can read explains itself, and "
    "a trace of every decision makes surprises cheap to debug.",
)


def _pick(seq: tuple[str, ...], key: str) -> str:
    return seq[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(seq)]


class DemoAdapter:
    """Streams a deterministic answer word by word; honours a few scripted conventions.

    - A planner that has the ``delegate`` tool and is asked to "delegate" something calls
      ``delegate(tier="fast", ...)`` once, then summarises the worker's result.
    - A message that mentions ``read <path>`` with a ``read_file`` tool available reads it first.
    """

    def __init__(self, model_id: str, *, chunk_delay: float = DEFAULT_CHUNK_DELAY):
        self.model_id = model_id
        self.chunk_delay = chunk_delay

    async def aclose(self) -> None:
        pass

    def stream(self, request: LLMRequest) -> AsyncGenerator[StreamEvent, None]:
        return self._stream(request)

    async def _stream(self, request: LLMRequest) -> AsyncGenerator[StreamEvent, None]:
        last = request.messages[-1] if request.messages else Message(Role.USER, (TextBlock(""),))
        tool_names = {t.name for t in request.tools}
        call = self._scripted_tool_call(request, last, tool_names)
        usage_in = estimate_input_tokens(request.system, request.tools, request.messages)
        if call is not None:
            await trio.sleep(self.chunk_delay)
            yield ToolUseChunk(call)
            msg = Message(Role.ASSISTANT, (call,), model=self.model_id, stop_reason=StopReason.TOOL_USE)
            yield Completed(msg, Usage(input_tokens=usage_in, output_tokens=12))
            return
        text = self._answer(request, last)
        words = text.split(" ")
        emitted = 0
        limit = max(1, request.max_tokens)
        for i, word in enumerate(words):
            if emitted >= limit:
                break
            await trio.sleep(self.chunk_delay)
            yield TextChunk(word if i == 0 else " " + word)
            emitted += 1
        stop = StopReason.MAX_TOKENS if emitted < len(words) else StopReason.END_TURN
        shown = " ".join(words[:emitted])
        msg = Message(Role.ASSISTANT, (TextBlock(shown),), model=self.model_id, stop_reason=stop)
        yield Completed(msg, Usage(input_tokens=usage_in, output_tokens=emitted + emitted // 3))

    def _scripted_tool_call(self, request: LLMRequest, last: Message, tools: set[str]) -> ToolUseBlock | None:
        if last.role is not Role.USER:
            return None
        text = last.text
        key = hashlib.sha256(text.encode()).hexdigest()[:12]
        if "delegate" in tools and "delegate" in text.lower():
            task = text.split(":", 1)[1].strip() if ":" in text else text
            return ToolUseBlock(f"tu_{key}", "delegate",
                                {"tier": "fast", "task": task, "context": {"mode": "minimal"}})
        if "read_file" in tools:
            for word in text.split():
                if "." in word and "/" not in word.strip(".,") and word.lower().startswith(("readme", "notes")):
                    return ToolUseBlock(f"tu_{key}", "read_file", {"path": word.strip(".,")})
        return None

    def _answer(self, request: LLMRequest, last: Message) -> str:
        tool_results = [b for b in last.content if isinstance(b, ToolResultBlock)]
        label = f"[demo model {self.model_id}]"
        if tool_results:
            res = tool_results[0].content
            try:
                res = json.loads(res).get("output", res)
            except (ValueError, AttributeError):
                pass
            snippet = str(res).strip().replace("\n", " ")[:160]
            return f"{label} The tool returned: {snippet} — that settles it."
        prompt = last.text.strip() or "(empty message)"
        return f"{label} {_pick(_OPENINGS, prompt)} {_pick(_BODIES, prompt + self.model_id)}"
