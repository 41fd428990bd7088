"""Client side of the live pattern store (issue 14 phase B; DESIGN §4.7).

`orchestrator rate TURN_ID SCORE`, chat `/rate good|bad|0.7`, `orchestrator patterns stats [--json]`.
"""
from __future__ import annotations

import json
import math

from protocol.errors import RemoteError
from protocol.messages import GetPatternStats, PatternStats, RateTurn, TurnRated

SCORE_WORDS = {"good": 1.0, "bad": 0.0}
SCORE_USAGE = "SCORE is good, bad or a number in [0, 1]"


def parse_score(text: str) -> float | None:
    """good → 1, bad → 0, a number in [0, 1] → itself; anything else → None."""
    word = SCORE_WORDS.get(text.strip().lower())
    if word is not None:
        return word
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def rated_line(r: TurnRated) -> str:
    return f"rated turn {r.turn_id} ({r.model}): {r.score:g} — {r.outcomes} outcome(s) in the pattern store"


async def rate(client, turn_id: str, score: float, session_id: str | None = None) -> TurnRated:
    reply = await client.request("router", RateTurn(turn_id, score, session_id))
    assert isinstance(reply, TurnRated), reply
    return reply


async def stats(client) -> dict:
    reply = await client.request("router", GetPatternStats())
    assert isinstance(reply, PatternStats), reply
    return reply.stats


def render_stats(s: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(s, default=str)
    if s.get("loading"):
        return ("the pattern store is still loading its outcomes from the state database (the router "
                "answers turns meanwhile; slot 4 says \"pattern store loading\"); try again shortly")
    lines = [f"outcomes: {s.get('outcomes', 0)} ({s.get('distinct_texts', 0)} distinct texts)",
             f"fingerprint: {s.get('fingerprint', '?')}"]
    models = s.get("models") or {}
    if not models:
        lines.append("models: none yet (rate turns with `orchestrator rate TURN_ID good|bad|0..1`)")
    for name, m in models.items():
        lines.append(f"  {name}: {m['outcomes']} outcome(s), mean quality {m['mean_quality']:.2f}, "
                     f"mean cost ${m['mean_cost_usd']:.4f}")
    return "\n".join(lines)


def unknown_turn(exc: RemoteError) -> bool:
    return exc.code == "unknown_turn"


def override_message(model: str, text: str) -> str:
    """The re-dispatched turn of `/route override`: the same text with an @model override."""
    return f"@{model} {text}"
