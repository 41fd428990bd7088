"""Fake provider servers speaking the real wire formats over real HTTP on 127.0.0.1.

    async with open_fake_anthropic() as srv:      # or open_fake_openai(api_key=None)
        srv.script(Answer(text=("Hel", "lo")), Fail(429, "rate_limit_error", retry_after="2"))
        ... point an adapter at srv.base_url ...
        srv.requests[-1].json, srv.requests[-1].headers, srv.violations
"""
from .anthropic import FakeAnthropic, open_fake_anthropic
from .http import CUT, Plan, RecordedRequest, serve
from .openai import FakeOpenAI, open_fake_openai
from .drain import Drained, drain
from .script import Answer, Drop, Fail, Reply, Tokens, ToolCall

__all__ = [
    "Answer", "CUT", "Drained", "Drop", "Fail", "FakeAnthropic", "FakeOpenAI", "Plan", "RecordedRequest", "Reply",
    "Tokens", "ToolCall", "drain", "open_fake_anthropic", "open_fake_openai", "serve",
]
