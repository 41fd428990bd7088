"""The policy chain (spec §4.1–§4.6): one pure decision per turn, explained by its trace.

Usage::

    engine = RoutingEngine(policy, registry, env)            # once per (re)load; precompiles
    ov = engine.parse_override(raw_text)                      # "@haiku fix this" → body + model
    ctx = TurnContext(..., message_text=ov.body, ...)
    decision = engine.decide(ctx, override=ov, availability=avail, pattern=recommend)
    event = decision.to_event(ctx.session_id, ctx.turn_id)   # protocol.events.RouteDecided

Trace shape (DESIGN §4.3): ``chain`` lists the policies that ran, in order, stopping at the
winner. Each rule that *matched* but failed validation gets its own ``rule`` entry (so every
rejection is on record); when no rule matched there is one ``rule`` entry, ``not_applicable``.
``delegate_request`` runs — and appears — only when ``ctx.delegate_tier`` is set; during normal
turns it is skipped, as in the spec's §7.4 example. When a rule wins and the pattern source has a
recommendation that passes the pattern gate, a ``pattern`` entry with verdict ``deferred`` is
appended after the winner.

Inputs beyond the context are plain callables, so the core stays sans-IO:

* ``availability(model_id)`` → object with ``available``/``scope``/``reason``
  (:func:`actors.router.validation.availability_from_snapshot` adapts the availability actor's view);
* ``pattern(ctx, pattern_config)`` → object with ``model``/``confidence``/``sample_size``/
  ``alternatives`` or None (:func:`actors.router.pattern_scoring.recommend` over the store's K
  nearest neighbours); the chain applies the min_confidence / min_sample_size gate itself, and a
  raising pattern source counts as "no recommendation". It is not consulted for delegated workers
  (spec §11: v1 uses the configured tier model).

A delegated worker whose requested tier cannot be satisfied even after upgrading ends the chain
with ``error_code == "no_model_available_for_tier"`` instead of falling through to the defaults
(spec §6.9).
"""
from __future__ import annotations

import time
from typing import Protocol
from collections.abc import Callable, Mapping, Sequence

from attrs import frozen

from actors.config.registry import TIERS, ModelRegistry
from protocol.events import RouteDecided
from protocol.routing import ModelOption, Policy, PolicyEvaluation, ValidationFailure, Verdict

from actors.router import texts
from actors.router.context import TurnContext
from actors.router.override import Override, model_refs, parse_override
from actors.router.policy import PatternConfig, Rule, RoutingPolicy, TierMap
from actors.router.predicates import leaf_names
from actors.router.rolestep import TIER_FLOOR, floor_problem, model_rank, role_step, tier_name
from actors.roles import RolesConfig
from actors.router.validation import Availability, Rejection, Validator

NA, REJECTED, CHOSE, DEFERRED = Verdict.NOT_APPLICABLE, Verdict.REJECTED, Verdict.CHOSE, Verdict.DEFERRED


class RecommendationLike(Protocol):
    model: str
    confidence: float
    sample_size: int
    alternatives: Sequence[ModelOption]


@frozen
class NoRecommendation:
    """A pattern source's abstention with its reason (e.g. "insufficient samples (3 < 5)"), shown in the trace."""
    reason: str


PatternSource = Callable[[TurnContext, PatternConfig], "RecommendationLike | NoRecommendation | None"]

# Constant trace entries are shared: they are immutable and building them per turn is the
# single largest avoidable cost of a decision.
_NO_OVERRIDE = PolicyEvaluation(Policy.PER_MESSAGE_OVERRIDE, NA, reason="no @model token in message")
_ESCAPED = PolicyEvaluation(Policy.PER_MESSAGE_OVERRIDE, NA, reason="escaped \\@ at message start: no override")
_NO_STICKY = PolicyEvaluation(Policy.MANUAL_STICKY, NA, reason="no sticky model set")
_NO_RULE = PolicyEvaluation(Policy.RULE, NA, reason="no rules match")
_NO_PATTERN_SOURCE = PolicyEvaluation(Policy.PATTERN, NA, reason="no pattern store")
_NO_RECOMMENDATION = PolicyEvaluation(Policy.PATTERN, NA, reason="no recommendation")
_WORKER_PATTERN = PolicyEvaluation(Policy.PATTERN, NA, reason="insufficient context (delegated worker)")
_NO_WS_DEFAULT = PolicyEvaluation(Policy.WORKSPACE_DEFAULT, NA, reason="no workspace default")


@frozen
class Decision:
    chain: tuple[PolicyEvaluation, ...]
    winner_index: int                    # -1 on hard failure
    chosen_model: str | None
    banners: tuple[str, ...] = ()
    error: str | None = None             # hard-failure text shown to the user
    error_code: str | None = None        # no_model_available | no_model_available_for_tier | invalid_override
    elapsed_ms: float = 0.0              # (+ waiting_approval | tier_floor | unknown_role for a role)
    effort: str | None = None            # the role's reasoning_effort_hint when a role chose

    @property
    def ok(self) -> bool:
        return self.chosen_model is not None

    @property
    def winner(self) -> PolicyEvaluation | None:
        return self.chain[self.winner_index] if self.winner_index >= 0 else None

    def to_event(self, session_id: str, turn_id: str, timestamp: str | None = None) -> RouteDecided:
        stamp = timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())   # 3x cheaper than datetime
        return RouteDecided(session_id=session_id, turn_id=turn_id, timestamp=stamp, chain=self.chain,
                            winner_index=self.winner_index, chosen_model=self.chosen_model,
                            elapsed_ms=self.elapsed_ms, error=self.error)


class _View:
    """The effective policy for one workspace: its rules first, then global; replaced sections."""

    __slots__ = ("workspace", "rules", "default", "pattern", "tiers")

    def __init__(self, policy: RoutingPolicy, workspace: str | None):
        ws = policy.workspace_for(workspace)
        self.workspace = ws
        rules: tuple[Rule, ...] = (ws.rules if ws else ()) + policy.rules
        self.rules = tuple((r.when.test, r) for r in rules)
        self.default = ws.default if ws else None
        self.pattern: PatternConfig = ws.pattern if ws and ws.pattern else policy.pattern
        self.tiers: tuple[TierMap, ...] = tuple(t for t in ((ws.tiers if ws else None), policy.tiers) if t)


class _Run:
    """Per-decision scratch state."""

    __slots__ = ("chain", "tried", "banners", "explicit", "code")

    def __init__(self) -> None:
        self.code = "no_model_available_for_tier"   # how a failed delegate_request step ends
        self.chain: list[PolicyEvaluation] = []
        self.tried: list[texts.Tried] = []
        self.banners: list[str] = []
        # Rejected @override / sticky candidates as (who, model, rejection): each gets a banner.
        self.explicit: list[tuple[str, str, Rejection]] = []


class RoutingEngine:
    _VIEW_CACHE_MAX = 1024

    def __init__(self, policy: RoutingPolicy, registry: ModelRegistry, env: Mapping[str, str] | None = None, *,
                 roles: RolesConfig | None = None):
        self.policy = policy
        self.registry = registry
        self.roles = roles
        self.validator = Validator(registry, env)
        self.refs: dict[str, str] = model_refs(registry)
        self.short = {m.id: (m.aliases[0] if m.aliases else m.id) for m in registry.models.values()}
        self.registry_tiers = {t: next((m.id for m in registry.models_of_tier(t)), None) for t in TIERS}
        self._chose_rule = {id(r): PolicyEvaluation(Policy.RULE, CHOSE, r.use, f'rule "{r.name}"', rule_name=r.name)
                            for r in self._all_rules()}
        self._views: dict[str | None, _View] = {}
        # Lets the caller skip work no rule reads (e.g. building the skill index).
        self.predicates_used: frozenset[str] = frozenset(
            name for r in self._all_rules() for name in leaf_names(r.when.node, set()))

    def _all_rules(self) -> list[Rule]:
        return [*self.policy.rules, *(r for ws in self.policy.workspaces for r in ws.rules)]

    def parse_override(self, text: str) -> Override:
        return parse_override(text, self.refs)

    def view(self, workspace: str | None) -> _View:
        view = self._views.get(workspace)
        if view is None:
            if len(self._views) >= self._VIEW_CACHE_MAX:
                self._views.clear()
            view = self._views[workspace] = _View(self.policy, workspace)
        return view

    def can_delegate(self, model: str | None, *, is_worker: bool) -> bool:
        """Whether the delegate tool is registered for a turn on ``model`` (spec §6.1, §6.8)."""
        spec = self.registry.models.get(model) if model else None
        return bool(spec and spec.can_delegate and not is_worker)

    def display_name(self, model: str) -> str:
        short = self.short.get(model, model)
        return short.capitalize() if short != model else model

    # --- the chain --------------------------------------------------------------------------------

    def decide(self, ctx: TurnContext, *, override: Override | None = None, availability: Availability | None = None,
               pattern: PatternSource | None = None) -> Decision:
        start = time.perf_counter()
        run = _Run()
        chain = run.chain
        view = self.view(ctx.workspace)
        check = self.validator.check

        # 1. PER_MESSAGE_OVERRIDE
        if override is not None and override.error is not None:
            chain.append(PolicyEvaluation(Policy.PER_MESSAGE_OVERRIDE, REJECTED, override.model, override.error))
            return self._finish(run, -1, None, start, override.error, "invalid_override")
        if override is not None and override.model is not None:
            if self._try(run, ctx, availability, Policy.PER_MESSAGE_OVERRIDE, override.model,
                         f'override "{override.token}"'):
                return self._win(run, ctx, start)
            self._explicit(run, override.token or f"@{override.model}", override.model)
        else:
            chain.append(_ESCAPED if override is not None and override.escaped else _NO_OVERRIDE)

        # A turn or delegation naming a role: the role's tier row decides, with its configured
        # fallbacks only — never falling through to the defaults below (DESIGN §4.8).
        if ctx.role:
            return self._role(run, ctx, availability, start)

        # 2. MANUAL_STICKY
        if ctx.sticky_model:
            model = self.refs.get(ctx.sticky_model, ctx.sticky_model)
            if self._try(run, ctx, availability, Policy.MANUAL_STICKY, model, "sticky model set via /model"):
                return self._win(run, ctx, start)
            self._explicit(run, "Sticky model", model)
        else:
            chain.append(_NO_STICKY)

        # 3. CONFIGURED_RULES — first match wins; a matched rule whose model fails validation is
        # recorded and the search continues (the spec §4.5 fallback idiom relies on this).
        matched = False
        for test, rule in view.rules:
            try:
                hit = test(ctx)
            except Exception:  # noqa: BLE001 — a predicate can never fail a turn
                hit = False
            if not hit:
                continue
            matched = True
            if ctx.delegated_by and (floor := floor_problem(self.registry, ctx.delegated_by, rule.use)):
                chain.append(PolicyEvaluation(Policy.RULE, REJECTED, rule.use, floor, rule_name=rule.name))
                continue
            rejection = check(rule.use, ctx, availability)
            if rejection is None:
                chain.append(self._chose_rule[id(rule)])
                winner = len(chain) - 1
                self._after_rule(run, ctx, view, rule, pattern)
                return self._win(run, ctx, start, winner)
            self._reject(run, Policy.RULE, rule.use, rejection, rule_name=rule.name)
        if not matched:
            chain.append(_NO_RULE)

        # 4. PATTERN_RECOMMENDATION
        if ctx.delegate_tier is not None:
            chain.append(_WORKER_PATTERN)
        elif pattern is None:
            chain.append(_NO_PATTERN_SOURCE)
        else:
            rec, why_not = self._recommendation(ctx, view.pattern, pattern)
            if rec is None:
                chain.append(why_not)
            elif self._try(run, ctx, availability, Policy.PATTERN, self.refs.get(rec.model, rec.model),
                           f"confidence {rec.confidence:.2f}, {rec.sample_size} samples",
                           confidence=float(rec.confidence), sample_size=int(rec.sample_size),
                           pattern_alternatives=tuple(rec.alternatives)):
                return self._win(run, ctx, start)

        # 5. DELEGATE_REQUEST — only while routing a delegated worker; its failure is terminal
        # (spec §6.9: delegate() returns no_model_available_for_tier, no fall-through to defaults).
        if ctx.delegate_tier is not None:
            failure = self._delegate(run, ctx, view, availability)
            if failure is None:
                return self._win(run, ctx, start)
            return self._finish(run, -1, None, start, failure, run.code)

        # 6. WORKSPACE_DEFAULT
        if view.default is not None and view.workspace is not None:   # a default comes with its workspace
            if self._try(run, ctx, availability, Policy.WORKSPACE_DEFAULT, view.default,
                         f"workspace {view.workspace.key} default"):
                return self._win(run, ctx, start)
        else:
            chain.append(_NO_WS_DEFAULT)

        # 7. GLOBAL_DEFAULT
        if self._try(run, ctx, availability, Policy.GLOBAL_DEFAULT, self.policy.global_default, "global default"):
            return self._win(run, ctx, start)

        error = texts.no_model(self._dedup(run.tried), self.validator.configured_providers())
        return self._finish(run, -1, None, start, error, "no_model_available")

    # --- helpers ------------------------------------------------------------------------------

    def _try(self, run: _Run, ctx: TurnContext, availability, policy: Policy, model: str, reason: str,
             **extra) -> bool:
        rejection = self.validator.check(model, ctx, availability)
        if rejection is None:
            run.chain.append(PolicyEvaluation(policy, CHOSE, model, reason, **extra))
            return True
        self._reject(run, policy, model, rejection, **extra)
        return False

    def _reject(self, run: _Run, policy: Policy, model: str, rejection: Rejection, **extra) -> None:
        run.chain.append(PolicyEvaluation(policy, REJECTED, model, rejection.reason,
                                          validation_failure=rejection.failure, **extra))
        run.tried.append(texts.Tried(model, rejection.failure, rejection.scope, self.validator.provider_of(model),
                                     self.short.get(model, model)))

    def _explicit(self, run: _Run, who: str, model: str) -> None:
        """Remember a rejected explicit choice; an outage already has the spec's own banner."""
        failure = run.chain[-1].validation_failure
        if failure is not None and failure is not ValidationFailure.PROVIDER_UNAVAILABLE:
            run.explicit.append((who, model, Rejection(failure, run.chain[-1].reason)))

    def unconfigured_reason(self, model: str) -> str | None:
        """Why ``model`` is not_configured, in words for the user; None when it is configured."""
        spec = self.registry.models.get(model)
        if spec is None:
            return "it is not in the model registry (models.yaml)"
        provider = self.registry.providers.get(spec.provider)
        if provider is None:
            return f"provider '{spec.provider}' is not declared in models.yaml"
        gate = self.validator.gates.get(model)
        if gate is not None and gate.configured:
            return None
        return f"{provider.api_key_env} is not set in the daemon's environment"

    def not_configured(self) -> dict[str, str]:
        """Every registered model that cannot be used, and why (for status and check)."""
        out = {}
        for model in self.registry.models:
            reason = self.unconfigured_reason(model)
            if reason is not None:
                out[model] = reason
        return out

    def _recommendation(self, ctx: TurnContext, cfg: PatternConfig, source: PatternSource):
        try:
            rec = source(ctx, cfg)
        except Exception as exc:  # noqa: BLE001 — learned advice is optional; routing must go on
            return None, PolicyEvaluation(Policy.PATTERN, NA, reason=f"pattern store error ({type(exc).__name__})")
        if rec is None:
            return None, _NO_RECOMMENDATION
        if isinstance(rec, NoRecommendation):
            return None, PolicyEvaluation(Policy.PATTERN, NA, reason=rec.reason)
        if rec.sample_size < cfg.min_sample_size:
            return None, PolicyEvaluation(
                Policy.PATTERN, NA, reason=f"insufficient samples ({rec.sample_size} < {cfg.min_sample_size})",
                confidence=float(rec.confidence), sample_size=int(rec.sample_size))
        if rec.confidence < cfg.min_confidence:
            return None, PolicyEvaluation(
                Policy.PATTERN, NA, reason=f"confidence {rec.confidence:.2f} below {cfg.min_confidence:.2f}",
                confidence=float(rec.confidence), sample_size=int(rec.sample_size))
        return rec, None

    def _after_rule(self, run: _Run, ctx: TurnContext, view: _View, rule: Rule, pattern: PatternSource | None) -> None:
        if rule.budget_limits:
            spent = ctx.cost_today_usd
            limit = next((lim for lim in rule.budget_limits if spent > lim), None)
            if limit is not None:
                run.banners.append(texts.budget(limit, spent, rule.name))
        if pattern is None or ctx.delegate_tier is not None:
            return
        rec, _ = self._recommendation(ctx, view.pattern, pattern)
        if rec is None:
            return
        suggested = self.refs.get(rec.model, rec.model)
        run.chain.append(PolicyEvaluation(
            Policy.PATTERN, DEFERRED, suggested,
            f"suggested {suggested} (confidence {rec.confidence:.2f}, {rec.sample_size} samples) — outranked by rule",
            confidence=float(rec.confidence), sample_size=int(rec.sample_size),
            pattern_alternatives=tuple(rec.alternatives),
        ))
        d = self.policy.pattern_disagreement
        if (d.surface and suggested != rule.use and rec.confidence >= d.min_confidence
                and rec.sample_size >= d.min_sample_size):
            run.banners.append(texts.disagreement(rule.use, rule.name, suggested, rec.confidence, rec.sample_size,
                                                  self.display_name(suggested)))

    def resolve_tier(self, tier: str, workspace: str | None = None) -> str | None:
        """workspace tiers → global tiers → the first registry model of that tier (spec §6.10)."""
        return self._resolve_tier(self.view(workspace), tier)

    def _resolve_tier(self, view: _View, tier: str) -> str | None:
        for tiers in view.tiers:
            model = tiers.get(tier)
            if model is not None:
                return model
        return self.registry_tiers.get(tier)

    def _delegate(self, run: _Run, ctx: TurnContext, view: _View, availability) -> str | None:
        """Resolve the requested tier, upgrading fast → balanced → deep on validation failure.

        Returns None when a model was chosen, else the no_model_available_for_tier text."""
        tier = ctx.delegate_tier or ""
        if tier not in TIERS:
            why = f"unknown tier {tier!r} (expected fast, balanced or deep)"
            run.chain.append(PolicyEvaluation(Policy.DELEGATE_REQUEST, REJECTED, None, why))
            return texts.no_model_for_tier(tier, (), why)
        ceiling = model_rank(self.registry, ctx.delegated_by) if ctx.delegated_by else None
        if ceiling is not None and TIERS.index(tier) > ceiling:
            why = (f"tier floor: tier={tier} is above the delegating model {ctx.delegated_by} "
                   f"({tier_name(self.registry, ctx.delegated_by or '')}); a worker never runs on a higher cost tier "
                   "than the model that delegated")
            run.chain.append(PolicyEvaluation(Policy.DELEGATE_REQUEST, REJECTED, None, why))
            run.code = TIER_FLOOR
            return why
        steps: list[str] = []
        seen: set[str] = set()
        last: tuple[str, Rejection] | None = None
        tried: list[texts.Tried] = []
        for step in TIERS[TIERS.index(tier):]:
            if ceiling is not None and TIERS.index(step) > ceiling:
                steps.append(f"{step}: above the delegating model's tier (tier floor)")
                break
            model = self._resolve_tier(view, step)
            if model is None:
                steps.append(f"{step}: no model assigned")
                if step == tier:
                    break          # spec §6.10: an unassigned requested tier is a configuration error
                continue
            if model in seen:
                continue           # e.g. a workspace where deep == balanced: already rejected
            seen.add(model)
            rejection = self.validator.check(model, ctx, availability)
            if rejection is None:
                reason = f"tier={tier} resolves" if step == tier else (
                    f"tier={tier} upgraded to {step} ({'; '.join(steps)})")
                run.chain.append(PolicyEvaluation(Policy.DELEGATE_REQUEST, CHOSE, model, reason))
                return None
            steps.append(f"{step}: {model} {rejection.failure.value}")
            tried.append(texts.Tried(model, rejection.failure, rejection.scope, self.validator.provider_of(model),
                                     self.short.get(model, model)))
            last = (model, rejection)
        reason = f"tier={tier}: " + "; ".join(steps) + ("; no tier above deep" if last and step == "deep" else "")
        run.chain.append(PolicyEvaluation(Policy.DELEGATE_REQUEST, REJECTED, last[0] if last else None, reason,
                                          validation_failure=last[1].failure if last else None))
        run.tried.extend(tried)
        return texts.no_model_for_tier(tier, tried, "" if tried else reason)

    def _role(self, run: _Run, ctx: TurnContext, availability, start: float) -> Decision:
        policy = Policy.DELEGATE_REQUEST if ctx.is_worker else Policy.PER_MESSAGE_OVERRIDE
        out = role_step(self.roles, self.registry, self.validator, ctx, availability, policy)
        run.chain.extend(out.entries)
        run.tried.extend(out.tried)
        if out.chosen is None:
            return self._finish(run, -1, None, start, out.error, out.error_code)
        decision = self._win(run, ctx, start)
        return Decision(decision.chain, decision.winner_index, decision.chosen_model, decision.banners,
                        elapsed_ms=decision.elapsed_ms, effort=out.effort)

    @staticmethod
    def _dedup(tried: list[texts.Tried]) -> list[texts.Tried]:
        seen: set[str] = set()
        out = []
        for t in tried:
            if t.model not in seen:
                seen.add(t.model)
                out.append(t)
        return out

    def _win(self, run: _Run, ctx: TurnContext, start: float, winner: int | None = None) -> Decision:
        index = len(run.chain) - 1 if winner is None else winner
        chosen = run.chain[index]
        chosen_model = chosen.candidate_model or ""   # a winning evaluation always names its model
        if run.tried:
            label = texts.policy_label(chosen)
            done: set[tuple[str | None, str]] = set()
            fell = []
            for t in run.tried:
                if t.failure is not ValidationFailure.PROVIDER_UNAVAILABLE:
                    continue
                key = (t.scope, t.provider if t.scope == "provider" else t.model)
                if key not in done:
                    done.add(key)
                    fell.append(texts.fell_through(t, chosen_model, label))
            run.banners[:0] = fell
        if run.explicit:
            run.banners[:0] = [
                texts.explicit_rejected(who, model, rejection.failure,
                                        self.unconfigured_reason(model) or rejection.reason, chosen_model)
                for who, model, rejection in run.explicit]
        return self._finish(run, index, chosen.candidate_model, start)

    @staticmethod
    def _finish(run: _Run, index: int, model: str | None, start: float, error: str | None = None,
                code: str | None = None) -> Decision:
        return Decision(chain=tuple(run.chain), winner_index=index, chosen_model=model, banners=tuple(run.banners),
                        error=error, error_code=code, elapsed_ms=(time.perf_counter() - start) * 1000.0)


def decide(ctx: TurnContext, policy: RoutingPolicy, registry: ModelRegistry, *, env: Mapping[str, str] | None = None,
           override: Override | None = None, availability: Availability | None = None,
           pattern: PatternSource | None = None) -> Decision:
    """One-off convenience; long-lived callers keep a :class:`RoutingEngine` (it precomputes)."""
    return RoutingEngine(policy, registry, env).decide(ctx, override=override, availability=availability,
                                                       pattern=pattern)
