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
