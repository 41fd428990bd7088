"""The closed predicate set (spec §5.3) and the §10.2 properties: closure and determinism."""
import re
from datetime import datetime, timedelta, timezone, UTC
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st
from routing_helpers import PROPERTY, ctx

from actors.router.context import TurnContext
from actors.router.predicates import PREDICATE_NAMES, Predicate, compile_when
from actors.router.yamlpos import Problems


def when(data) -> Predicate:
    problems = Problems("routing.yaml")
    pred = compile_when(data, problems=problems)
    assert pred is not None, problems.sorted()
    return pred


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 5, 8, hh, mm, tzinfo=timezone(timedelta(hours=2)))


def test_closed_set_has_the_fourteen_spec_predicates():
    assert len(PREDICATE_NAMES) == 14


@pytest.mark.parametrize("data,context,expected", [
    ({"message_matches": "^/commit|write.*commit message"}, ctx("/commit fix"), True),
    ({"message_matches": "^/commit|write.*commit message"}, ctx("please write a commit message"), True),
    ({"message_matches": "^/commit|write.*commit message"}, ctx("commit this /commit"), False),
    ({"message_matches": "(architecture|design review)"}, ctx("a Design review"), False),   # case-sensitive
    ({"message_matches": "(?i)(architecture|design review)"}, ctx("a Design review"), True),
    ({"message_contains_any": ["SQL", "postgres"]}, ctx("fix the sql query"), True),
    ({"message_contains_any": "Straße"}, ctx("die STRASSE"), True),                        # casefolded
    ({"message_contains_any": ["sql"]}, ctx("nothing here"), False),
    ({"estimated_input_tokens_gt": 80000}, ctx(estimated_input_tokens=80001), True),
    ({"estimated_input_tokens_gt": 80000}, ctx(estimated_input_tokens=80000), False),
    ({"estimated_input_tokens_lt": 1000}, ctx(estimated_input_tokens=999), True),
    ({"has_images": True}, ctx(has_images=True), True),
    ({"has_images": False}, ctx(has_images=True), False),
    ({"has_tool_calls_in_history": True}, ctx(has_tool_calls_in_history=False), False),
    ({"skills_matching_message_includes": "system_design"}, ctx(matched_skills=frozenset({"system_design"})), True),
    ({"skills_matching_message_includes": ["a", "b"]}, ctx(matched_skills=frozenset({"c"})), False),
    ({"file_extensions_in_context": [".SQL"]}, ctx(file_extensions=frozenset({".sql"})), True),
    ({"file_extensions_in_context": ["py"]}, ctx(file_extensions=frozenset({".py"})), True),
    ({"file_extensions_in_context": [".sql"]}, ctx(), False),                              # first turn: empty
    ({"workspace_path_matches": "/code/"}, ctx(workspace="/home/u/code/x"), True),
    ({"workspace_path_matches": ".*"}, ctx(workspace=None), False),
    ({"time_of_day_between": ["09:00", "17:00"]}, ctx(now_local=at(9, 0)), True),
    ({"time_of_day_between": ["09:00", "17:00"]}, ctx(now_local=at(17, 0)), False),        # end exclusive
    ({"time_of_day_between": ["22:00", "06:00"]}, ctx(now_local=at(23, 30)), True),        # wraps midnight
    ({"time_of_day_between": ["22:00", "06:00"]}, ctx(now_local=at(5, 59)), True),
    ({"time_of_day_between": ["22:00", "06:00"]}, ctx(now_local=at(6, 0)), False),
    ({"time_of_day_between": ["22:00", "06:00"]}, ctx(now_local=at(12, 0)), False),
    ({"cost_today_exceeds_usd": 5.00}, ctx(cost_today_usd=Decimal("5.42")), True),
    ({"cost_today_exceeds_usd": 5.00}, ctx(cost_today_usd=Decimal("5.00")), False),
    ({"cost_today_exceeds_usd": 0.1}, ctx(cost_today_usd=Decimal("0.1")), False),          # no float drift
    ({"any_of": [{"has_images": True}, {"message_matches": "x"}]}, ctx("x"), True),
    ({"all_of": [{"has_images": True}, {"message_matches": "x"}]}, ctx("x"), False),
    ({"not": {"has_images": True}}, ctx(), True),
    ({"has_images": True, "message_matches": "x"}, ctx("x"), False),                       # implicit all_of
    ({"has_images": True, "message_matches": "x"}, ctx("x", has_images=True), True),
    ({}, ctx(), True),                                                                     # matches everything
])
def test_predicate_semantics(data, context, expected):
    assert when(data)(context) is expected


def test_empty_time_window_is_a_config_error():
    problems = Problems("routing.yaml")
    assert compile_when({"time_of_day_between": ["10:00", "10:00"]}, problems=problems, line=3) is None
    assert problems.sorted() == ["routing.yaml:3: when.time_of_day_between: empty window: start and end are both 10:00"]


def test_malformed_context_evaluates_false_instead_of_raising():
    pred = when({"message_matches": "x"})
    assert pred(TurnContext(message_text=None)) is False          # type: ignore[arg-type]
    assert when({"message_contains_any": ["x"]})(TurnContext(message_text=3)) is False  # type: ignore[arg-type]


# --- property tests (spec §10.2) -------------------------------------------------------------------

REGEXES = ["^/commit|write.*commit message", "(architecture|design review)", "a|b|", "(?i)sql", "x(y|z)+",
           "[|]", r"\bfoo\b", "^$", "(?:ab|cd)e", "[^]a]|q"]
TIMES = [f"{h:02d}:{m:02d}" for h in (0, 6, 9, 17, 22, 23) for m in (0, 30)]

leaves = st.one_of(
    st.builds(lambda r: {"message_matches": r}, st.sampled_from(REGEXES)),
    st.builds(lambda xs: {"message_contains_any": xs},
              st.lists(st.text("abcSQLß ", min_size=1, max_size=4), min_size=1, max_size=3)),
    st.builds(lambda n: {"estimated_input_tokens_gt": n}, st.integers(0, 200_000)),
    st.builds(lambda n: {"estimated_input_tokens_lt": n}, st.integers(0, 200_000)),
    st.builds(lambda b: {"has_images": b}, st.booleans()),
    st.builds(lambda b: {"has_tool_calls_in_history": b}, st.booleans()),
    st.builds(lambda xs: {"skills_matching_message_includes": xs},
              st.lists(st.sampled_from("abc"), min_size=1, max_size=2)),
    st.builds(lambda xs: {"file_extensions_in_context": xs},
              st.lists(st.sampled_from([".py", "sql", ".MD"]), min_size=1, max_size=2)),
    st.builds(lambda r: {"workspace_path_matches": r}, st.sampled_from(REGEXES + ["/code/"])),
    st.builds(lambda a, b: {"time_of_day_between": [a, b]}, st.sampled_from(TIMES), st.sampled_from(TIMES))
    .filter(lambda d: d["time_of_day_between"][0] != d["time_of_day_between"][1]),
    st.builds(lambda x: {"cost_today_exceeds_usd": x}, st.floats(0, 20, allow_nan=False)),
)


def _merge(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out.setdefault(k, v)
    return out


trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(lambda xs: {"any_of": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda xs: {"all_of": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, children),
        st.builds(_merge, st.lists(children, min_size=2, max_size=3)),     # implicit all_of
    ),
    max_leaves=8,
)

contexts = st.builds(
    TurnContext,
    message_text=st.one_of(st.text(max_size=30), st.sampled_from(["/commit x", "write the commit message", "SQL",
                                                                  "design review", "foo bar", ""])),
    has_images=st.booleans(),
    has_tool_calls_in_history=st.booleans(),
    estimated_input_tokens=st.integers(0, 300_000),
    workspace=st.one_of(st.none(), st.sampled_from(["/home/u/code/x", "/a|b", "/"])),
    file_extensions=st.frozensets(st.sampled_from([".py", ".sql", ".md"])),
    matched_skills=st.frozensets(st.sampled_from("abc")),
    cost_today_usd=st.decimals(min_value=0, max_value=30, places=3),
    now_local=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])),
)


def reference(data, c: TurnContext) -> bool:
    """A deliberately naive interpreter of the spec's table, to check the compiled closures against."""
    results = []
    for key, v in data.items():
        if key == "any_of":
            r = any(reference(x, c) for x in v)
        elif key == "all_of":
            r = all(reference(x, c) for x in v)
        elif key == "not":
            r = not reference(v, c)
        elif key == "message_matches":
            r = re.search(v, c.message_text) is not None
        elif key == "message_contains_any":
            r = any(s.casefold() in c.message_text.casefold() for s in ([v] if isinstance(v, str) else v))
        elif key == "estimated_input_tokens_gt":
            r = c.estimated_input_tokens > v
        elif key == "estimated_input_tokens_lt":
            r = c.estimated_input_tokens < v
        elif key in ("has_images", "has_tool_calls_in_history"):
            r = getattr(c, key) == v
        elif key == "skills_matching_message_includes":
            r = bool(set(v) & c.matched_skills)
        elif key == "file_extensions_in_context":
            r = bool({e.lower() if e.startswith(".") else "." + e.lower() for e in v} & c.file_extensions)
        elif key == "workspace_path_matches":
            r = c.workspace is not None and re.search(v, c.workspace) is not None
        elif key == "time_of_day_between":
            a, b = (int(t[:2]) * 60 + int(t[3:]) for t in v)
            m = c.now_local.hour * 60 + c.now_local.minute
            r = a <= m < b if a < b else (m >= a or m < b)
        elif key == "cost_today_exceeds_usd":
            r = c.cost_today_usd > Decimal(str(v))
        else:
            raise AssertionError(key)
        results.append(r)
    return all(results)


@PROPERTY
@given(tree=trees, context=contexts)
def test_random_predicate_trees_evaluate_to_a_bool_that_matches_the_reference(tree, context):
    pred = when(tree)
    first = pred(context)
    assert type(first) is bool
    assert pred(context) is first                      # same inputs → same result
    assert when(tree)(context) is first                # …also across compilations
    assert first is reference(tree, context)


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=5),
              st.sampled_from(PREDICATE_NAMES)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(PREDICATE_NAMES), st.text(max_size=4)), children, max_size=3),
    ),
    max_leaves=10,
)


@PROPERTY
@given(data=junk, context=contexts)
def test_arbitrary_when_data_compiles_or_reports_errors_and_never_raises(data, context):
    problems = Problems("routing.yaml")
    pred = compile_when(data, problems=problems)
    if pred is None:
        assert problems.items, "a rejected when block must say why"
    else:
        assert not problems.items
        assert type(pred(context)) is bool
