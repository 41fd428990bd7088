"""What a new user does with the SDKs beyond the docs' snippets: the models endpoints they call."""
from __future__ import annotations

import anthropic
import openai
import pytest


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
