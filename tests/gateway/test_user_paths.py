"""What a new user does with the SDKs beyond the docs' snippets: the models endpoints they call."""
from __future__ import annotations

import anthropic
import openai
import pytest

from tests.fakes import Answer


async def test_both_sdks_retrieve_one_model_by_id_or_alias_and_get_404_for_an_unknown_one(gateway):
    oai, ant = gateway.openai(), gateway.anthropic()
    assert (await gateway.call(lambda: oai.models.retrieve("local:llama"))).id == "local:llama"
    assert (await gateway.call(lambda: oai.models.retrieve("haiku"))).id == "haiku"
    assert (await gateway.call(lambda: ant.models.retrieve("auto"))).id == "auto"
    with pytest.raises(openai.NotFoundError, match="unknown model or alias 'nope'"):
        await gateway.call(lambda: oai.models.retrieve("nope"))
    with pytest.raises(anthropic.NotFoundError, match="unknown model or alias 'nope'") as err:
        await gateway.call(lambda: ant.models.retrieve("nope"))
    assert err.value.body["type"] == "error"      # the Anthropic error shape for the anthropic SDK


def test_check_reports_a_non_loopback_listen_without_any_key_variable_that_serve_would_refuse():
    from orchestrator.settings import parse_settings_text

    _, errors = parse_settings_text("http:\n  listen: '0.0.0.0:8080'\n")
    assert errors == ["daemon.yaml:2: http.listen: 0.0.0.0 is not loopback and http.api_keys_env names no "
                      "environment variable: the daemon would refuse to serve (name one, or listen on 127.0.0.1)"]
    ok, _ = parse_settings_text("http:\n  listen: '127.0.0.1:8080'\n")
    assert ok is not None


def test_a_listen_of_the_wrong_yaml_type_is_described_in_words_not_a_class_name():
    from orchestrator.settings import parse_settings_text

    _, errors = parse_settings_text("http:\n  listen: [1]\n")
    assert errors == ["daemon.yaml:2: http.listen: expected [HOST:]PORT, got a list"]


async def test_stopping_the_daemon_before_a_streams_first_byte_sends_the_whole_503_body(gateway):
    # SIGTERM while the model has not answered yet: the 503's headers went out but the daemon's
    # shutdown cut its body off ("transfer closed with 111 bytes remaining to read").
    import httpx
    import trio

    gateway.oai.script(Answer(text=("late",), headers_delay=30.0))
    body = {"model": "llama", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    async def stop_once_running():
        async with httpx.AsyncClient(base_url=gateway.url) as probe:
            while (await probe.get("/healthz")).json()["turns_running"] == 0:
                await trio.sleep(0.01)
        gateway.daemon.request_stop("test: stop before the first byte")

    async with trio.open_nursery() as nursery, httpx.AsyncClient(base_url=gateway.url, timeout=60) as http:
        nursery.start_soon(stop_once_running)
        resp = await http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "daemon_shutdown"
