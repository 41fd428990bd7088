"""The "why this model?" render (spec §7.4)."""
from routing_helpers import BASE, OPUS, SONNET, ctx, down, engine, recommending

from actors.router.trace import render_trace

WS = BASE.replace("sonnet", "haiku") + """\
rules:
  - {name: "deep for architecture", when: {message_matches: architecture}, use: opus}
workspaces:
  /ws: {default: sonnet}
"""


def test_trace_renders_header_choice_and_numbered_chain():
    d = engine(WS).decide(ctx("the architecture", workspace="/ws"), availability=down(OPUS),
                          pattern=recommending(SONNET, 0.71, 4))
    text = render_trace(d.to_event("sess_42", "01HZ_xyz", "2026-05-08T14:23:11Z"))
    lines = text.splitlines()
    assert lines[0] == "Turn 01HZ_xyz · session sess_42 · 2026-05-08T14:23:11Z"
    assert lines[1] == "Chose: anthropic:claude-sonnet-4-6 (workspace default)"
    assert lines[3] == "Chain:"
    body = [line.split() for line in lines[4:10]]
    assert [b[:3] for b in body if b[0].startswith("[")] == [
        ["[1]", "PER_MESSAGE_OVERRIDE", "not_applicable"],
        ["[2]", "MANUAL_STICKY", "not_applicable"],
        ["[3]", "CONFIGURED_RULES", "rejected"],
        ["[4]", "PATTERN_RECOMMENDATION", "not_applicable"],
        ["[5]", "WORKSPACE_DEFAULT", "chose"],
    ]
    assert 'rule "deep for architecture" matched → anthropic:claude-opus-4-7 (provider_unavailable)' in text
    assert "anthropic:claude-opus-4-7 model-specific outage" in text
    assert lines[-1].startswith("Decided in ")


def test_trace_of_rule_win_shows_deferred_pattern_and_labels():
    text = BASE + "rules:\n  - {name: c, when: {}, use: haiku}\n"
    d = engine(text).decide(ctx("x"), pattern=recommending(OPUS, 0.9, 30))
    out = render_trace(d.to_event("s", "t", "T"))
    assert 'Chose: anthropic:claude-haiku-4-5 (rule "c")' in out
    assert "PATTERN_RECOMMENDATION  deferred" in out and "— outranked by rule" in out


def test_trace_of_hard_failure_shows_no_choice_and_the_error():
    d = engine(BASE).decide(ctx("x"), availability=down("anthropic"))
    out = render_trace(d.to_event("s", "t", "T"))
    assert "Chose: nothing — the turn did not start" in out
    assert "GLOBAL_DEFAULT" in out and "No model available for this turn." in out


def test_trace_labels_delegate_request():
    d = engine(BASE).decide(ctx("task", delegate_tier="balanced", is_worker=True))
    out = render_trace(d.to_event("s", "t", "T"))
    assert "DELEGATE_REQUEST" in out and "Chose: anthropic:claude-sonnet-4-6 (delegate request)" in out
