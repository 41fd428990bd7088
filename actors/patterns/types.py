"""Values the pattern store hands out and takes in (sans-IO, plain data)."""
from __future__ import annotations

from typing import Literal

from attrs import frozen

from protocol.routing import ModelOption


@frozen
class Recommendation:
    """A learned recommendation (spec §5.5 shape) — what the policy chain's slot 4 consumes.

    ``confidence`` is in [0, 1]; ``sample_size`` counts the neighbouring outcomes behind ``model``.
    """
    model: str
    score: float
    confidence: float
    sample_size: int
    alternatives: tuple[ModelOption, ...]   # the other candidates, best first


@frozen
class Decision:
    """What route-eval prints: the store's recommendation, or the cost-aware prior when it abstains."""
    model: str
    source: Literal["pattern", "prior"]
    confidence: float
    reason: str


@frozen
class OutcomeRow:
    """One observed outcome, as the state database stores it (DESIGN §4.7 / issue 14 item 1).

    ``fingerprint`` is the float32 vector's bytes under ``fingerprint_name`` (texts are not kept);
    ``quality`` is the 0..1 success score, ``cost_usd`` what the turn cost, ``at`` epoch seconds.
    """
    fingerprint_name: str
    fingerprint: bytes
    model: str
    quality: float
    cost_usd: float
    workspace: str = ""
    at: float = 0.0
