import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.providers.toolinput import MAX_TOOL_INPUT_DEPTH, nesting_depth, parse_tool_arguments, refusal

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                       max_size=3),
                           max_leaves=20)


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_arguments_within_the_bound_parse_unchanged(arguments):
    assert parse_tool_arguments(json.dumps(arguments)) == arguments


@pytest.mark.parametrize("depth", [MAX_TOOL_INPUT_DEPTH + 1, 500, 5000])
def test_arguments_nested_past_the_bound_become_a_refusal(depth):
    text = '{"a": ' * depth + "1" + "}" * depth
    parsed = parse_tool_arguments(text)
    assert "nests deeper" in (refusal(parsed) or "")
    assert nesting_depth(parsed, 10) == 1


def test_no_arguments_are_an_empty_input_and_non_objects_too():
    assert parse_tool_arguments("") == {} and parse_tool_arguments("[1, 2]") == {}


def test_text_that_is_not_json_still_raises_for_the_adapter_to_classify():
    with pytest.raises(ValueError):
        parse_tool_arguments('{"path": "x"')
