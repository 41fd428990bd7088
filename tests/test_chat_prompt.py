"""The chat's prompt: shown once until a line is read, whichever of the input loop and the end of
a turn asks for it first (after /cancel both do, in an order that depends on timing)."""
from orchestrator.chat import PROMPT, _Chat


def test_the_prompt_is_written_once_until_a_line_is_read(capsys):
    chat = _Chat(client=None, session_id="s_x")
    chat.prompt()            # the turn ended: its task shows the prompt
    chat.prompt()            # the /cancel command finished: the input loop asks again
    assert capsys.readouterr().err == PROMPT
    chat.prompted = False    # the input loop read a line
    chat.prompt()
    assert capsys.readouterr().err == PROMPT


def test_no_prompt_while_a_turn_streams(capsys):
    chat = _Chat(client=None, session_id="s_x")
    chat.turn = object()
    chat.prompt()
    assert capsys.readouterr().err == ""
