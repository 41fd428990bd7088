"""Per-message @model overrides (spec §9.1): grammar, escape, errors."""
import pytest
from routing_helpers import BASE, GPT5, HAIKU, OPUS, ctx, engine

from actors.router.override import parse_override

REFS = engine(BASE).refs


@pytest.mark.parametrize("text,model,body", [
    ("@haiku what's a quick name for this variable?", HAIKU, "what's a quick name for this variable?"),
    ("@opus\tthink hard", OPUS, "think hard"),
    ("@opus\n\nmultiline\nbody", OPUS, "multiline\nbody"),
    ("@anthropic:claude-opus-4-7 full id works", OPUS, "full id works"),
    ("@openai:gpt-5 hi", GPT5, "hi"),
    ("@gpt5-mini hi", "openai:gpt-5-mini", "hi"),
])
def test_override_at_message_start_followed_by_whitespace(text, model, body):
    ov = parse_override(text, REFS)
    assert (ov.model, ov.body, ov.error) == (model, body, None)
    assert ov.token == text.split()[0]


@pytest.mark.parametrize("text", [
    "Email me @haiku tomorrow",        # not at the start
    " @haiku leading space",           # not at the start
    "@haiku, what do you think",       # no whitespace after the token
    "@ haiku",                         # no token at all
    "@@haiku hi",
    "plain text",
    "",
])
def test_not_an_override(text):
    ov = parse_override(text, REFS)
    assert (ov.model, ov.error, ov.body) == (None, None, text)


def test_backslash_escape_strips_backslash_and_applies_no_override():
    ov = parse_override("\\@haiku is the alias I mean", REFS)
    assert (ov.model, ov.error, ov.body, ov.escaped) == (None, None, "@haiku is the alias I mean", True)
    d = engine(BASE).decide(ctx(ov.body), override=ov)
    assert d.chain[0].reason == "escaped \\@ at message start: no override"


def test_unknown_alias_is_an_inline_error_listing_known_aliases():
    ov = parse_override("@team please review", REFS)
    assert ov.model is None and ov.token == "@team"
    assert ov.error == ('Unknown model "@team". Known aliases: balanced, deep, fast, gpt5, gpt5-mini, haiku, opus, '
                        'sonnet. Start the message with \\@ to send a literal "@".')


@pytest.mark.parametrize("text", ["@haiku", "@haiku   ", "@haiku\n"])
def test_bare_override_without_a_body_is_refused(text):
    ov = parse_override(text, REFS)
    assert ov.model == HAIKU and ov.body == ""
    assert ov.error == 'Nothing to send after "@haiku": type a message after the model name.'
