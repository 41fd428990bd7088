"""Issue 19, soak: what the daemon keeps per held history is bounded by size, not by the workload.

Two caches held a thousand live sessions' histories in the full soak (docs/reliability.md §4):
the OpenAI adapter's wire forms (``_WireCache``, ≈ 1.1 KB a chat turn) and the idle sessions of
the session actor. Both are bounded by (estimated) bytes, least recently used out first, and a
session used turn after turn keeps its O(new messages) turns.
"""
import gc
import tracemalloc
from contextlib import aclosing

import pytest

from actors.providers import openai as oa
from actors.providers.anthropic import AnthropicAdapter
from actors.providers.base import LLMRequest, TextChunk
from actors.providers.openai import OpenAIAdapter
from orchestrator.client import open_client
from orchestrator.daemon import Daemon
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.canonical import Message, Role, TextBlock, ToolResultBlock, ToolUseBlock
from protocol.messages import GetHistory
from tests.fakes import Answer, open_fake_anthropic, open_fake_openai


def chat(n: int, tag: str = "") -> list[Message]:
    return [Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, (TextBlock(f"{tag} message {i}"),))
            for i in range(n)]


CONVERT = oa._wire_message


def fresh_body(history: list[Message]) -> list[dict]:
    return [w for m in history for w in CONVERT(m, True)]


@pytest.fixture
def conversions(monkeypatch):
    """Counts the messages the adapter converts (cache misses)."""
    seen: list[Message] = []
    original = oa._wire_message

    def counting(message, supports_images):
        seen.append(message)
        return original(message, supports_images)

    monkeypatch.setattr(oa, "_wire_message", counting)
    return seen


def test_the_wire_cache_never_holds_more_than_its_byte_bound():
    messages = chat(500)
    one = oa.wire_footprint(messages[0], oa._wire_message(messages[0], True))
    cache = oa._WireCache(max_bytes=20 * one)
    for m in messages:
        cache.put(m, True, oa._wire_message(m, True))
        assert cache.bytes <= cache.max_bytes
    assert 15 <= len(cache) <= 20
    assert cache.bytes == sum(entry[3] for entry in cache._by_id.values())


def test_the_least_recently_used_wire_form_leaves_the_cache_first():
    messages = chat(11)
    size = oa.wire_footprint(messages[0], oa._wire_message(messages[0], True))
    cache = oa._WireCache(max_bytes=10 * size)
    for m in messages[:10]:
        cache.put(m, True, oa._wire_message(m, True))
    assert cache.get(messages[0], True) is not None   # used again: now the most recent
    cache.put(messages[10], True, oa._wire_message(messages[10], True))
    assert cache.get(messages[1], True) is None       # the least recently used went
    assert cache.get(messages[0], True) is not None and cache.get(messages[10], True) is not None


def test_a_wire_form_leaves_the_cache_and_its_size_with_its_message():
    cache = oa._WireCache(max_bytes=1 << 20)
    messages = chat(50)
    for m in messages:
        cache.put(m, True, oa._wire_message(m, True))
    assert len(cache) == 50 and cache.bytes > 0
    del messages, m
    gc.collect()
    assert len(cache) == 0 and cache.bytes == 0


def test_a_message_bigger_than_the_whole_bound_is_sent_but_not_cached(monkeypatch):
    monkeypatch.setattr(oa, "_WIRE_CACHE", oa._WireCache(max_bytes=4096))
    big = Message(Role.USER, (ToolResultBlock("call-1", "x" * 10_000, is_error=True),))
    history = [*chat(4), big]
    assert oa.wire_messages(LLMRequest(model="m", messages=tuple(history))) == fresh_body(history)
    assert oa._WIRE_CACHE.get(big, True) is None and oa._WIRE_CACHE.bytes <= 4096


def test_a_session_used_turn_after_turn_converts_only_its_new_messages_within_the_default_bound(
        monkeypatch, conversions):
    """Issue 16's reuse target: 300 turns of one session stay O(new messages) per turn, while 200
    other sessions' histories pass through the same cache (the soak's crowd)."""
    monkeypatch.setattr(oa, "_WIRE_CACHE", oa._WireCache())
    crowd = [chat(40, f"slot {n}") for n in range(200)]
    history: list[Message] = []
    for turn in range(300):
        history += [Message(Role.USER, (TextBlock(f"question {turn}"),)),
                    Message(Role.ASSISTANT, (TextBlock(f"answer {turn}"),))]
        conversions.clear()
        body = oa.wire_messages(LLMRequest(model="m", messages=tuple(history)))
        assert conversions == history[-2:]
        if turn % 50 == 0:
            assert body == fresh_body(history)
            for other in crowd[turn // 50 * 40:(turn // 50 + 1) * 40]:
                oa.wire_messages(LLMRequest(model="m", messages=tuple(other)))
    assert oa._WIRE_CACHE.bytes <= oa.WIRE_CACHE_MAX_BYTES


def test_histories_beyond_the_bound_are_converted_again_and_sent_identically(monkeypatch, conversions):
    histories = [chat(40, f"slot {n}") for n in range(30)]
    size = sum(oa.wire_footprint(m, CONVERT(m, True)) for m in histories[0])
    monkeypatch.setattr(oa, "_WIRE_CACHE", oa._WireCache(max_bytes=10 * size))
    for _ in range(2):
        for h in histories:
            assert oa.wire_messages(LLMRequest(model="m", messages=tuple(h))) == fresh_body(h)
            assert oa._WIRE_CACHE.bytes <= 10 * size
    # Round robin over 30 histories with room for 10: every request misses, as with LRU it must.
    assert len(conversions) == 2 * 30 * 40


def test_the_wire_footprint_estimate_is_near_what_the_cache_really_allocates():
    """The bound is in real bytes only if the estimate is: tracemalloc over 5,000 entries of
    each kind (chat, tool use, tool result) must land within -30 %/+50 % of the estimate."""
    kinds = {
        "chat": chat(5000, "soak turn of slot 17"),
        "tool use": [Message(Role.ASSISTANT, (TextBlock("ok"), ToolUseBlock(f"id{i}", "read_file", {"path": f"{i}"})))
                     for i in range(5000)],
        "tool result": [Message(Role.USER, (ToolResultBlock(f"id{i}", "line\n" * 20),)) for i in range(5000)],
    }
    for kind, messages in kinds.items():
        cache = oa._WireCache(max_bytes=1 << 30)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for m in messages:
                cache.put(m, True, CONVERT(m, True))
            real = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert 0.7 * cache.bytes <= real <= 1.5 * cache.bytes, (kind, real, cache.bytes)


async def run_turn(client, sid: str, text: str) -> None:
    async with client.turn(sid, text) as turn:
        async for _ in turn:
            pass
    assert isinstance(turn.terminal, ev.TurnCompleted)


async def test_idle_histories_beyond_their_byte_bound_leave_memory_and_reload_on_their_next_turn(
        nursery, short_tmp):
    from tests.e2e.conftest import write_demo_home
    from orchestrator.paths import Paths

    write_demo_home(short_tmp / "home")
    daemon = Daemon(Paths(short_tmp / "home", short_tmp / "state", f"ipc://{short_tmp / 'd.sock'}"),
                    DaemonSettings(shutdown_grace_s=1.0), demo_chunk_delay=0.0)
    await nursery.start(daemon.run)
    actor = daemon.session
    async with open_client(daemon.paths.endpoint) as client:
        sids = [(await client.open_session()).session_id for _ in range(4)]
        for sid in sids:
            for k in range(3):
                await run_turn(client, sid, f"turn {k} of {sid}")
        assert set(sids) <= set(actor.sessions)          # 4 × 6 messages: far below 16 MiB
        one = 4 * actor.sessions[sids[0]].history_facts()[0] + 400 * len(actor.sessions[sids[0]].messages)
        actor.max_idle_history_bytes = 2 * one + one // 2   # room for about two such idle histories
        kept = actor.sessions[sids[3]]
        await run_turn(client, sids[3], "again")   # ends with 4 idle histories, the bound at 2½
        assert actor.sessions[sids[3]] is kept       # the session in use keeps its history in memory
        assert sids[0] not in actor.sessions and sids[1] not in actor.sessions   # least recently used out
        assert sids[2] in actor.sessions
        await run_turn(client, sids[0], "what did I say first?")   # reloaded from the store
        history = await client.request("session", GetHistory(sids[0]))
        assert history.messages[0].text == f"turn 0 of {sids[0]}" and len(history.messages) == 8
    daemon.request_stop("test over")


@pytest.mark.parametrize("opener, cls", [(open_fake_anthropic, AnthropicAdapter), (open_fake_openai, OpenAIAdapter)])
async def test_a_streaming_answer_does_not_keep_the_requests_wire_dicts_alive(opener, cls):
    """While an answer streams, only the encoded body may stay: the request's wire dicts
    (≈ 0.4–0.9 KB a held turn in the soak) are garbage once the bytes are built."""
    model = "soak-body-probe"
    request = LLMRequest(model=model, messages=(Message(Role.USER, (TextBlock("hi"),)),))

    def live_bodies() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, dict) and o.get("model") == model and "messages" in o)

    async with opener() as srv:
        adapter = cls(api_key="test-key", base_url=srv.base_url)
        srv.script(Answer(text=("a", "b", "c")))
        async with aclosing(adapter.stream(request)) as stream:
            async for event in stream:
                assert isinstance(event, TextChunk)
                assert live_bodies() == 0
                break
        await adapter.aclose()
