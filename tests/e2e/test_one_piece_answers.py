"""A model configured without streaming: its answer comes back in one JSON body, and the planner
forwards it from the call task itself (no delta relay task). What the client sees must not change:
the text before the terminal event, errors as errors, the call in the ledger."""
import pytest

from orchestrator.client import open_client
from protocol import events as ev
from tests.fakes import Answer, Fail, open_fake_openai
from tests.stack import one_model_yaml, start_daemon, write_home

from .conftest import run_turn


@pytest.fixture
async def stack(nursery, short_tmp, wire_mode):
    async with open_fake_openai(api_key=None) as oai:
        home = write_home(short_tmp, one_model_yaml(oai.base_url, "local:whole", streaming=False), "local:whole")
        daemon, paths = await start_daemon(nursery, short_tmp, home, wire_mode=wire_mode)
        async with open_client(paths.endpoint) as client:
            yield client, oai
        daemon.request_stop("test over")


async def test_an_answer_asked_for_in_one_piece_reaches_the_client_as_one_delta_before_the_turn_ends(stack):
    client, oai = stack
    oai.script(Answer(text=("Hello", " in", " one", " piece")))
    info = await client.open_session()
    _, events = await run_turn(client, info.session_id, "hi")
    deltas = [e for e in events if isinstance(e, ev.TextDelta)]
    assert [d.text for d in deltas] == ["Hello in one piece"]
    assert isinstance(events[-1], ev.TurnCompleted) and events.index(deltas[0]) < len(events) - 1
    assert "stream" not in oai.requests[-1].json
    report = await client.cost(info.session_id)
    assert report.total_usd not in (None, "0")   # the call was billed


async def test_a_one_piece_answer_that_fails_fails_the_turn_without_text(stack):
    client, oai = stack
    oai.script(Fail(400, "invalid_request_error", "bad things"))
    info = await client.open_session()
    _, events = await run_turn(client, info.session_id, "hi")
    assert not [e for e in events if isinstance(e, ev.TextDelta)]
    failed = events[-1]
    assert isinstance(failed, ev.TurnFailed) and failed.error == "provider_bad_request"
