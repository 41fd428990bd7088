"""Routing trace vocabulary (spec §7.1, DESIGN §4.3)."""
from __future__ import annotations

import enum

from attrs import frozen


class Policy(enum.StrEnum):
    PER_MESSAGE_OVERRIDE = "per_message_override"
    MANUAL_STICKY = "manual_sticky"
    RULE = "rule"
    PATTERN = "pattern"
    DELEGATE_REQUEST = "delegate_request"
    WORKSPACE_DEFAULT = "workspace_default"
    GLOBAL_DEFAULT = "global_default"


class Verdict(enum.StrEnum):
    NOT_APPLICABLE = "not_applicable"
    DEFERRED = "deferred"
    REJECTED = "rejected"
    CHOSE = "chose"


class ValidationFailure(enum.StrEnum):
    NOT_CONFIGURED = "not_configured"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    NO_VISION_SUPPORT = "no_vision_support"
    EXCEEDS_CONTEXT_WINDOW = "exceeds_context_window"
    NO_TOOL_SUPPORT = "no_tool_support"
    NO_SYSTEM_PROMPT_SUPPORT = "no_system_prompt_support"
    NO_STRUCTURED_OUTPUT_SUPPORT = "no_structured_output_support"


@frozen
class ModelOption:
    model: str
    score: float
    sample_size: int


@frozen
class PolicyEvaluation:
    policy: Policy
    verdict: Verdict
    candidate_model: str | None = None
    reason: str = ""
    rule_name: str | None = None
    confidence: float | None = None
    pattern_alternatives: tuple[ModelOption, ...] | None = None
    validation_failure: ValidationFailure | None = None
    sample_size: int | None = None
    role: str | None = None              # dispatch by role (DESIGN §4.8): the role this candidate came from
    tier: str | None = None              # …and its effective complexity tier (None: the role's top-level row)
