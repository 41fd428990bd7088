"""The model's own output is untrusted input too (issue 11): a tool call whose arguments nest
1,000 levels deep must not break the turn's bookkeeping, the history or the wire."""
from protocol import events as ev
from protocol.messages import GetHistory
from tests.fakes import Answer, ToolCall

from .conftest import run_turn
from .test_workspace_trust import open_stack, returned


def nested_json(depth: int) -> str:
    """Built as text: json.dumps itself gives up on nesting this deep."""
    return '{"path": "x", "deep": ' + '{"a": ' * depth + "{}" + "}" * depth + "}"


async def test_a_tool_call_nested_1000_deep_is_refused_and_the_turn_and_session_carry_on(short_tmp, nursery,
                                                                                         wire_mode):
    async with open_stack(short_tmp, nursery, wire_mode=wire_mode) as (client, sid, fake, ws, daemon):
        fake.script(
            Answer(text=(), tool_calls=(ToolCall("read_file", raw_arguments=nested_json(1000)),)),
            Answer(text=("recovered",)),
            Answer(text=("next turn",)),
        )
        turn, events = await run_turn(client, sid, "go deep")
        terminals = [e for e in events if isinstance(e, (ev.TurnCompleted, ev.TurnFailed, ev.TurnCancelled))]
        assert len(terminals) == 1 and isinstance(terminals[0], ev.TurnCompleted)
        [result] = returned(events, "read_file")
        assert result.is_error and "nests deeper" in result.content
        # The refusal reached the model as the tool's result; the next request was well-formed.
        assert "nests deeper" in str(fake.requests[1].json["messages"][-1]["content"])
        _, again = await run_turn(client, sid, "still there?")
        assert isinstance(again[-1], ev.TurnCompleted)
        history = await client.request("session", GetHistory(sid))
        assert len(history.messages) == 6  # user, call, refusal, answer; user, answer
