"""The alternation split behind message_matches is equivalent to one ``re.search``."""
import re

import pytest
from hypothesis import assume, given, strategies as st
from routing_helpers import PROPERTY

from actors.router.fastregex import branches, compile_quietly, searcher


@pytest.mark.parametrize("pattern,expected", [
    ("^/commit|write.*commit message", ["^/commit", "write.*commit message"]),
    ("(architecture|design review|security review)", ["architecture", "design review", "security review"]),
    ("(?:a|b)", ["a", "b"]),
    ("(?i)(sql|postgres)", ["(?i)sql", "(?i)postgres"]),
    ("[|]x|y", ["[|]x", "y"]),
    (r"\|a|b", [r"\|a", "b"]),
    ("[]|]|z", ["[]|]", "z"]),
    ("(a|b)c", None),                  # the group is not the whole pattern
    ("(a)|\\1", None),                 # backreference across branches
    ("(?x) a | b", None),              # verbose: '#' comments may hide '|'
    ("(?=a|b)", None),                 # lookahead is not a plain group
    ("abc", None),
])
def test_top_level_branches(pattern, expected):
    assert branches(pattern) == expected


ATOMS = ["a", "b", "ab", "|", "(", ")", "(?:", "[", "]", "^", "$", ".", "*", "+", "?", "\\b", "\\|", "(?i)", "[^a]",
         "{1,2}", "A"]


@PROPERTY
@given(parts=st.lists(st.sampled_from(ATOMS), min_size=1, max_size=8),
       texts=st.lists(st.text("abAB|()[]^ ", max_size=8), min_size=1, max_size=5))
def test_split_search_agrees_with_re_search(parts, texts):
    pattern = "".join(parts)
    try:
        rx = compile_quietly(pattern)
    except (re.error, OverflowError, RecursionError):
        assume(False)
    found = searcher(rx)
    for text in texts:
        assert found(text) is (rx.search(text) is not None), (pattern, text)
