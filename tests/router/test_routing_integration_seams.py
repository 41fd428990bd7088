"""The seams the router actor uses: DecideRoute → TurnContext, availability snapshots, events on the wire."""
from decimal import Decimal

from routing_helpers import BASE, HAIKU, NOON, OPUS, SONNET, engine, recommending, registry

from actors.router.context import context_from_request
from actors.router.override import parse_override
from actors.router.validation import availability_from_snapshot
from protocol.codec import converter, event_from_json_obj, event_to_json_obj
from protocol.events import RouteDecided
from protocol.messages import DecideRoute


def test_decide_route_request_becomes_a_turn_context_and_a_route_decided_event():
    eng = engine(BASE + "rules:\n  - {name: sql, when: {file_extensions_in_context: [.sql]}, use: haiku}\n")
    req = DecideRoute("sess", "turn", "@opus hi", file_extensions=(".SQL",), workspace="/w")
    ov = eng.parse_override(req.text)
    c = context_from_request(req, message_text=ov.body, cost_today_usd=Decimal("1"), now_local=NOON)
    assert c.file_extensions == {".sql"} and c.message_text == "hi" and c.has_system_prompt
    d = eng.decide(c, override=ov)
    assert d.chosen_model == OPUS and eng.can_delegate(d.chosen_model, is_worker=False)
    assert not eng.can_delegate(d.chosen_model, is_worker=True) and not eng.can_delegate(HAIKU, is_worker=False)


def test_route_decided_with_pattern_alternatives_round_trips_through_codec_and_json():
    from routing_helpers import option

    eng = engine(BASE + "rules:\n  - {name: r, when: {}, use: haiku}\n")
    d = eng.decide(context_from_request(DecideRoute("s", "t", "x"), message_text="x", now_local=NOON),
                   pattern=recommending(SONNET, 0.9, 30, [option(OPUS, 0.5, 3)]))
    event = d.to_event("s", "t", "2026-05-08T14:23:11Z")
    assert converter.structure(converter.unstructure(event), RouteDecided) == event
    assert event_from_json_obj(event_to_json_obj(event)) == event


def test_availability_snapshot_checks_provider_scope_before_model_scope():
    avail = availability_from_snapshot({
        "openai": {"scope": "provider", "reason": "all openai models temporarily unavailable"},
        OPUS: {"scope": "model", "reason": f"{OPUS} model-specific outage"},
    })
    assert avail(SONNET).available
    assert (avail(OPUS).scope, avail(OPUS).reason) == ("model", f"{OPUS} model-specific outage")
    assert (avail("openai:gpt-5").scope, avail("openai:gpt-5").reason) == ("provider",
                                                                           "all openai models temporarily unavailable")
    assert availability_from_snapshot({})(OPUS).available


def test_parse_override_accepts_a_registry():
    assert parse_override("@haiku hi", registry()).model == HAIKU


def test_engine_reports_which_predicates_its_rules_read():
    eng = engine(BASE + "rules:\n"
                 "  - {when: {any_of: [{skills_matching_message_includes: x}, {not: {has_images: true}}]},"
                 " use: opus}\n")
    assert eng.predicates_used == {"skills_matching_message_includes", "has_images"}
    assert engine(BASE).predicates_used == frozenset()
