"""The gateway as part of the daemon: keys, loopback-only, trace and cost, cancellation, wire mode."""
from __future__ import annotations

import httpx
import openai
import pytest
import trio

from orchestrator.client import open_client
from orchestrator.gateway.config import HttpRefused, HttpSettings
from tests.fakes import Answer, Tokens

from .conftest import start_gateway


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def test_models_lists_every_id_alias_tier_and_auto_and_healthz_answers(gateway):
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        models = (await http.get("/v1/models")).json()
        health = await http.get("/healthz")
    ids = [m["id"] for m in models["data"]]
    assert models["object"] == "list"
    expected = {"local:llama", "anthropic:claude-haiku-4-5", "llama", "haiku", "fast", "balanced", "deep", "auto"}
    assert expected <= set(ids)
    assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_unknown_paths_and_methods_answer_in_the_api_shape(gateway):
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        missing = await http.get("/v1/nothing")
        wrong = await http.get("/v1/messages")
        garbage = await http.post("/v1/messages", content=b"{not json")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert wrong.status_code == 405 and wrong.json()["type"] == "error"
    assert garbage.status_code == 400 and garbage.json()["error"]["type"] == "invalid_request_error"


async def test_a_tier_name_runs_the_chain_and_reports_what_served(gateway):
    gateway.anth.script(Answer(text=("fast one",)))
    client = gateway.openai()
    raw = await gateway.call(lambda: client.chat.completions.with_raw_response.create(model="fast",
                                                                                      messages=user("hi")))
    assert raw.parse().model == "anthropic:claude-haiku-4-5"
    assert raw.headers["x-orchestrator-model"] == "anthropic:claude-haiku-4-5"


async def test_trace_and_cost_cover_a_gateway_turn_filed_under_the_session_header(gateway):
    gateway.oai.script(Answer(text=("ok",), usage=Tokens(input=1000, output=100)))
    client = gateway.openai(default_headers={"x-orchestrator-session": "gw-s1"})
    raw = await gateway.call(lambda: client.chat.completions.with_raw_response.create(model="auto",
                                                                                      messages=user("hi")))
    turn_id = raw.headers["x-orchestrator-turn-id"]
    async with open_client(gateway.daemon.paths.endpoint) as c:
        trace = await c.trace(turn_id)
        cost = await c.cost("gw-s1")
    assert trace.route.chosen_model == "local:llama" and trace.route.turn_id == turn_id
    assert [row["model"] for row in cost.by_model] == ["local:llama"]
    assert cost.total_usd is not None and float(cost.total_usd) > 0


async def test_with_keys_every_request_needs_one_and_both_header_forms_work(nursery, short_tmp, fakes, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k-test")
    gw = await start_gateway(nursery, short_tmp, *fakes, http=HttpSettings("127.0.0.1", 0, ("GW_KEY",)),
                             env={"GW_KEY": "s3cret", "FAKE_ANTHROPIC_KEY": "k-test"})
    try:
        gw.oai.script(Answer(text=("in",)), Answer(text=("in",)))
        wrong = gw.openai(api_key="wrong")
        with pytest.raises(openai.AuthenticationError) as caught:
            await gw.call(lambda: wrong.chat.completions.create(model="auto", messages=user("x")))
        assert caught.value.status_code == 401
        bearer = gw.openai(api_key="s3cret")
        out = await gw.call(lambda: bearer.chat.completions.create(model="auto", messages=user("x")))
        assert out.choices[0].message.content == "in"
        anth = gw.anthropic(api_key="s3cret")   # the anthropic SDK sends x-api-key
        gw.oai.script(Answer(text=("in",)))
        msg = await gw.call(lambda: anth.messages.create(model="llama", max_tokens=8, messages=user("x")))
        assert msg.content[0].text == "in"
        async with httpx.AsyncClient(base_url=gw.url) as http:
            assert (await http.get("/v1/models")).status_code == 401
            assert (await http.get("/healthz", headers={"x-api-key": "s3cret"})).status_code == 200
    finally:
        await gw.aclose()


async def test_a_non_loopback_host_is_refused_without_keys(nursery, short_tmp, fakes):
    with pytest.RaisesGroup(HttpRefused, allow_unwrapped=True, flatten_subgroups=True) as caught:
        await start_gateway(nursery, short_tmp, *fakes, http=HttpSettings("0.0.0.0", 0, ("GW_KEY",)), env={})
    assert "refusing to serve HTTP on non-loopback 0.0.0.0:0" in str(caught.value.exceptions[0])


async def test_a_client_disconnect_mid_stream_cancels_the_turn_and_keeps_what_was_billed(gateway):
    gateway.oai.script(Answer(text=tuple(f"w{i} " for i in range(200)), delay=0.02))
    client = gateway.openai()

    def read_a_little():
        with client.chat.completions.with_streaming_response.create(
                model="llama", messages=user("long"), stream=True) as response:
            turn_id = response.headers["x-orchestrator-turn-id"]
            stream = response.parse()
            for i, _ in enumerate(stream):
                if i == 3:
                    break
            return turn_id     # leaving the block closes the connection mid-stream

    turn_id = await gateway.call(read_a_little)
    store = gateway.daemon.store
    with trio.fail_after(10):
        while (status := store.db.execute("SELECT status FROM turns WHERE id=?", (turn_id,)).fetchone()[0]) \
                == "running":
            await trio.sleep(0.01)
    assert status == "cancelled"
    rows = [r for r in store.cost_rows(session_id="gateway") if r.turn_id == turn_id]
    assert len(rows) == 1 and rows[0].output_tokens > 0     # billed for what streamed (estimated)
    assert gateway.daemon.actors["planner"].turns == {}     # nothing of the turn still runs
    assert gateway.oai.pending == 0


async def test_gateway_turns_work_with_every_message_over_the_wire(nursery, short_tmp, fakes, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k-test")
    gw = await start_gateway(nursery, short_tmp, *fakes, wire_mode=True)
    try:
        gw.anth.script(Answer(text=("over", " the wire")))
        client = gw.openai()
        chunks = await gw.call(lambda: list(client.chat.completions.create(model="haiku", messages=user("x"),
                                                                           stream=True)))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "over the wire"
    finally:
        await gw.aclose()


async def test_stopping_the_daemon_mid_stream_ends_the_stream_with_an_error_event(gateway):
    gateway.oai.script(Answer(text=tuple(f"w{i} " for i in range(400)), delay=0.02))
    client = gateway.openai()
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def read_all():
        stream = client.chat.completions.create(model="llama", messages=user("long"), stream=True)
        for i, _ in enumerate(stream):
            if i == 2:
                trio.from_thread.run_sync(started.set, trio_token=token)

    async def stop_when_streaming():
        await started.wait()
        gateway.daemon.request_stop("test: stop mid-stream")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_when_streaming)
        with pytest.raises(openai.APIError) as caught:
            await gateway.call(read_all)
    assert "daemon_shutdown" in str(caught.value)


async def test_a_claude_code_shaped_request_is_served(gateway):
    """What Claude Code sends: ?beta=true, system and tools with cache_control, metadata, thinking."""
    gateway.anth.script(Answer(text=("done",)))
    body = {
        "model": "haiku", "max_tokens": 32000, "stream": True, "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 1,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                   "cache_control": {"type": "ephemeral"}}]}],
    }
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        async with http.stream("POST", "/v1/messages?beta=true", json=body,
                               headers={"anthropic-beta": "claude-code-20250219", "anthropic-version": "2023-06-01",
                                        "authorization": "Bearer unused"}) as resp:
            text = (await resp.aread()).decode()
    assert resp.status_code == 200 and resp.headers["x-orchestrator-model"] == "anthropic:claude-haiku-4-5"
    assert '"text": "done"' in text and text.rstrip().endswith('data: {"type": "message_stop"}')
    upstream = gateway.anth.requests[-1].json
    assert upstream["system"] == "You are Claude Code." and upstream["tools"][0]["name"] == "Bash"
