"""Provider availability (spec §4.5) as a sans-IO state machine with an injected clock.

Two granularities, each Healthy or Unavailable:
- (provider, model): ≥5 consecutive failures within 2 minutes.
- provider: ≥3 distinct models of it turned Unavailable within 2 minutes; any auth error; ≥2
  network errors within 30 seconds (a single one only counts toward the model's streak).
A success clears its model, and clears the provider and the provider's network window. Without
attempts, an Unavailable scope clears itself after 5 minutes.
"""
from __future__ import annotations

import time
from collections import deque

import attrs

MODEL_FAILURE_THRESHOLD = 5
MODEL_FAILURE_WINDOW_S = 120.0
PROVIDER_MODEL_ESCALATION_THRESHOLD = 3
PROVIDER_MODEL_ESCALATION_WINDOW_S = 120.0
_NETWORK_PROVIDER_ESCALATION_THRESHOLD = 2
_NETWORK_PROVIDER_ESCALATION_WINDOW_SECONDS = 30.0
AUTO_CLEAR_S = 300.0

AUTH = "auth"
NETWORK = "network"


@attrs.frozen
class Transition:
    kind: str            # "unavailable" | "recovered"
    scope: str           # "provider" or "provider:model"
    reason: str
    at: float


@attrs.define
class _ModelState:
    streak: deque = attrs.field(factory=deque)   # times of the current run of consecutive failures
    unavailable_since: float | None = None
    last_attempt: float = 0.0


@attrs.define
class _ProviderState:
    network_errors: deque = attrs.field(factory=deque)
    model_trips: dict = attrs.field(factory=dict)   # model → time it turned Unavailable
    unavailable_since: float | None = None
    reason: str = ""
    last_attempt: float = 0.0


def iso_utc(ts: float) -> str:
    """Wall-clock seconds as the ISO 8601 UTC stamp events and `status` show."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def model_reason(model_id: str) -> str:
    return f"{model_id} model-specific outage"


def provider_reason(provider: str) -> str:
    return f"all {provider} models temporarily unavailable"


class AvailabilityTracker:
    def __init__(self) -> None:
        self.models: dict[str, _ModelState] = {}
        self.providers: dict[str, _ProviderState] = {}

    def record(self, provider: str, model_id: str, ok: bool, error_class: str | None, now: float) -> list[Transition]:
        """One attempt of one call. Returns the state transitions it caused (auto-clears included)."""
        changes = self.tick(now)
        m = self.models.setdefault(model_id, _ModelState())
        p = self.providers.setdefault(provider, _ProviderState())
        m.last_attempt = p.last_attempt = now
        if ok:
            m.streak.clear()
            if m.unavailable_since is not None:
                m.unavailable_since = None
                changes.append(Transition("recovered", model_id, "a call succeeded", now))
            p.network_errors.clear()
            p.model_trips.pop(model_id, None)
            if p.unavailable_since is not None:
                p.unavailable_since = None
                changes.append(Transition("recovered", provider, "a call succeeded", now))
            return changes

        while m.streak and now - m.streak[0] > MODEL_FAILURE_WINDOW_S:
            m.streak.popleft()
        m.streak.append(now)
        if m.unavailable_since is None and len(m.streak) >= MODEL_FAILURE_THRESHOLD:
            m.unavailable_since = now
            changes.append(Transition("unavailable", model_id, model_reason(model_id), now))
            p.model_trips[model_id] = now
            self._escalate_on_model_trips(provider, p, now, changes)

        if error_class == AUTH:
            self._mark_provider(provider, p, now, f"authentication failed for {provider}", changes)
        elif error_class == NETWORK:
            while p.network_errors and now - p.network_errors[0] > _NETWORK_PROVIDER_ESCALATION_WINDOW_SECONDS:
                p.network_errors.popleft()
            p.network_errors.append(now)
            if len(p.network_errors) >= _NETWORK_PROVIDER_ESCALATION_THRESHOLD:
                self._mark_provider(provider, p, now, f"repeated network errors reaching {provider}", changes)
        return changes

    def _escalate_on_model_trips(self, provider: str, p: _ProviderState, now: float, changes: list) -> None:
        recent = [t for t in p.model_trips.values() if now - t <= PROVIDER_MODEL_ESCALATION_WINDOW_S]
        if len(recent) >= PROVIDER_MODEL_ESCALATION_THRESHOLD:
            self._mark_provider(provider, p, now, f"{len(recent)} {provider} models unavailable within 2 minutes",
                                changes)

    def _mark_provider(self, provider: str, p: _ProviderState, now: float, why: str, changes: list) -> None:
        if p.unavailable_since is None:
            p.unavailable_since = now
            p.reason = why
            changes.append(Transition("unavailable", provider, provider_reason(provider) + f" ({why})", now))

    def tick(self, now: float) -> list[Transition]:
        """Auto-clear scopes that saw no attempt for 5 minutes."""
        changes: list[Transition] = []
        for model_id, m in self.models.items():
            if m.unavailable_since is not None and now - m.last_attempt >= AUTO_CLEAR_S:
                m.unavailable_since = None
                m.streak.clear()
                changes.append(Transition("recovered", model_id, "5 minutes without attempts", now))
        for provider, p in self.providers.items():
            if p.unavailable_since is not None and now - p.last_attempt >= AUTO_CLEAR_S:
                p.unavailable_since = None
                p.network_errors.clear()
                p.model_trips.clear()
                changes.append(Transition("recovered", provider, "5 minutes without attempts", now))
        return changes

    def reset(self, scope: str, now: float) -> list[Transition]:
        """Force recovery of a provider (and its models) or of one model."""
        changes: list[Transition] = []
        for model_id, m in self.models.items():
            if model_id == scope or model_id.split(":", 1)[0] == scope:
                m.streak.clear()
                if m.unavailable_since is not None:
                    m.unavailable_since = None
                    changes.append(Transition("recovered", model_id, "reset by the user", now))
        p = self.providers.get(scope)
        if p is not None:
            p.network_errors.clear()
            p.model_trips.clear()
            if p.unavailable_since is not None:
                p.unavailable_since = None
                changes.append(Transition("recovered", scope, "reset by the user", now))
        return changes

    def check(self, model_id: str, now: float) -> tuple[bool, str | None, str]:
        """(available, scope 'provider'|'model'|None, reason) for the router's validation gate."""
        provider = model_id.split(":", 1)[0]
        p = self.providers.get(provider)
        if p is not None and p.unavailable_since is not None and now - p.last_attempt < AUTO_CLEAR_S:
            return False, "provider", provider_reason(provider)
        m = self.models.get(model_id)
        if m is not None and m.unavailable_since is not None and now - m.last_attempt < AUTO_CLEAR_S:
            return False, "model", model_reason(model_id)
        return True, None, ""

    def unavailable(self, now: float) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for provider, p in self.providers.items():
            if p.unavailable_since is not None and now - p.last_attempt < AUTO_CLEAR_S:
                out[provider] = {"scope": "provider", "reason": provider_reason(provider), "detail": p.reason,
                                 "since": p.unavailable_since}
        for model_id, m in self.models.items():
            if m.unavailable_since is not None and now - m.last_attempt < AUTO_CLEAR_S:
                out[model_id] = {"scope": "model", "reason": model_reason(model_id), "since": m.unavailable_since}
        return out
