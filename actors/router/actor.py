"""The router actor: a thin loop around the sans-IO routing engine (``actors.router``).

Per turn it re-reads the config files if their mtime changed (else one stat each), asks the
availability and cost actors for the inputs the predicates need, runs the chain and answers with
the ``route.decided`` record, banners, and the message with its @override token stripped.
"""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import trio

from protocol import events as ev
from protocol.codec import Envelope, event_to_json_obj
from protocol.errors import RemoteError
from protocol.messages import (
    AvailabilityChanged, AvailabilityView, CostAmount, DecideRoute, Failure, GetAvailability, GetCostToday,
    GetPatternStats, ModelResolved, PatternStats, RateTurn, ReloadRules, ResolveModel, RouteChoice,
    RouteChoiceResult, RouteDecision,
    RulesReport, ShowRules, TurnRated,
)

import attrs

from actors.availability.state import iso_utc
from actors.config.registry import effective_effort
from actors.patterns.fingerprint import pack_vector
from actors.runtime.kernel import Actor, RequestTimeout
from actors.router import texts
from actors.router.chain import RoutingEngine
from actors.router.context import TurnContext
from actors.router.learned import LivePatterns, PendingSuggestions, choice_outcome, surfaced_suggestion
from actors.router.loader import PolicyLoader
from actors.router.rolestep import WAITING_APPROVAL
from actors.router.override import Override
from actors.router.policy import RoutingPolicy, rule_rows
from actors.router.skills import SkillCache
from actors.router.validation import (
    Availability, AvailabilityLike, AvailabilityVerdict, availability_from_snapshot,
)
from actors.runtime.store import PatternOutcome, StorageError, Store, StoredOutcome

LOAD_CHUNK = 4096   # stored outcomes per start-up step: the loop serves turns between steps

def policy_invalid_banner(errors: tuple[str, ...]) -> str:
    """Names the broken file (models.yaml or routing.yaml), its first error and the CLI command."""
    first = errors[0] if errors else "invalid"
    broken = first.split(":", 1)[0] or "the configuration"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{broken} is invalid; using the last-known-good configuration. First error: {first}{more}. "
            "Run `orchestrator check` to see every error.")


BUDGET_UNCHECKED_BANNER = ("Budget rules were not checked for this turn: the cost ledger did not answer. "
                           "See `orchestrator status`.")


class RouterActor(Actor):
    name = "router"

    def __init__(self, system, loader: PolicyLoader, *, store: Store | None = None, availability: str = "availability",
                 cost: str = "cost", env=None, pattern=None, pattern_loader=None):
        super().__init__(system)
        self.loader = loader
        self.store = store
        self.availability = availability
        self.cost = cost
        self.env = env
        self.pattern = pattern    # a fixed pattern source (tests); else the live store below
        self.patterns = LivePatterns()
        # Learns one chunk of stored rows in a worker thread (LivePatterns.load_stored); injectable
        # so a test can hold the load open and see turns served meanwhile.
        self.pattern_loader = pattern_loader or LivePatterns.load_stored
        self.patterns_loaded = trio.Event()
        self._learned_while_loading: list[tuple[PatternOutcome, np.ndarray]] = []
        self.pending = PendingSuggestions()
        self.skills = SkillCache()
        self.waiting: dict[tuple[str, str | None], dict] = {}   # role dispatches waiting for approval

    async def setup(self, nursery) -> None:
        self.engine()   # load now, so an invalid config is logged at start, not at the first turn
        if self.store is not None and self.pattern is None and self.store.last_outcome_id() > 0:
            self.patterns.loading = True
            nursery.start_soon(self._load_patterns, self.store)
        else:
            self.patterns_loaded.set()

    async def _load_patterns(self, store: Store) -> None:
        """Build the store from the whole table in the background; turns are served meanwhile (slot 4
        says "pattern store loading"). Rows are read in chunks on the loop (the connection is not
        shared with threads) and learned in a worker thread; fingerprints computed for rows that had
        none are written back, so the next start-up only decodes them."""
        started = time.perf_counter()
        try:
            live = await self._read_patterns(store)
        except (StorageError, ValueError, MemoryError) as exc:
            # Learned advice is optional: routing goes on without it; new outcomes are still learned.
            self.log.error("pattern store not loaded; slot 4 is off until a restart", error=str(exc))
            live = LivePatterns()
            live.load_error = str(exc)
        for outcome, vec in self._learned_while_loading:   # rated while we loaded: newer than the load
            live.add(outcome, vec)
        self._learned_while_loading.clear()
        self.patterns = live
        self.patterns_loaded.set()
        self.log.info("pattern store loaded", outcomes=len(live.store), seconds=round(time.perf_counter() - started, 2))

    async def _read_patterns(self, store: Store) -> LivePatterns:
        live, upto, after = LivePatterns(), store.last_outcome_id(), 0
        while after < upto:
            chunk: list[StoredOutcome] = store.stored_outcomes(after, min(upto, after + LOAD_CHUNK))
            after = min(upto, after + LOAD_CHUNK)
            if not chunk:
                continue
            fresh = await trio.to_thread.run_sync(self.pattern_loader, live, chunk, abandon_on_cancel=True)
            if fresh:
                try:
                    store.cache_fingerprints(fresh)
                except StorageError as exc:   # only a cache: the next start recomputes them
                    self.log.warning("fingerprints not cached", error=str(exc))
        await trio.to_thread.run_sync(live.finish_load, abandon_on_cancel=True)
        return live

    def learn(self, outcome: PatternOutcome) -> None:
        """Store an outcome (with its fingerprint) and learn it now — or once the start-up load is done."""
        assert self.store is not None
        vec = self.patterns.fingerprint(outcome.text)
        self.store.record_outcome(outcome, self.patterns.fingerprint_name, pack_vector(vec))
        if self.patterns.loading:
            self._learned_while_loading.append((outcome, vec))
        else:
            self.patterns.add(outcome, vec)

    def handlers(self):
        return {DecideRoute: self.on_decide, ShowRules: self.on_show_rules, ReloadRules: self.on_reload,
                RouteChoice: self.on_route_choice, AvailabilityChanged: self.on_availability_change,
                ResolveModel: self.on_resolve_model, RateTurn: self.on_rate, GetPatternStats: self.on_pattern_stats}

    # --- config ----------------------------------------------------------------------------------

    def engine(self) -> tuple[RoutingEngine | None, tuple[str, ...]]:
        """The last-known-good engine, and the errors of a broken edit seen for the first time."""
        state = self.loader.current()
        if state.errors:
            self.log.warning("config invalid; keeping the last-known-good version", errors=list(state.errors))
        if state.errors and self.store is not None:
            roles_broken = state.errors[0].startswith(os.path.basename(self.loader.roles_path) + ":")
            broken = self.loader.roles_path if roles_broken else self.loader.routing_path
            self.store.record_event(None, None, ev.PolicyInvalid.TYPE,
                                    event_to_json_obj(ev.PolicyInvalid(state.errors, str(broken))))
        return state.engine, state.errors

    def resolve_model_name(self, name: str) -> str | None:
        engine = self.loader.engine
        spec = engine.registry.resolve(name) if engine else None
        return spec.id if spec else None

    async def reload(self) -> RulesReport:
        """Re-read both files; the report says what this reload changed."""
        old = self.loader.engine
        self.loader.reload(force=True)
        report = self._report()
        new = self.loader.engine
        if report.errors or new is None:
            return report
        changes = texts.config_changes(
            rule_rows(old.policy) if old else [], report.rules, list(old.registry.models) if old else [],
            list(new.registry.models), old.policy.global_default if old else None, new.policy.global_default,
            old.not_configured() if old else {}, report.not_configured)
        return attrs.evolve(report, changes=tuple(changes))

    def _report(self, workspace: str | None = None) -> RulesReport:
        self.engine()
        engine = self.loader.engine
        rows = rule_rows(engine.policy) if engine else []
        if workspace and engine is not None:
            rows = rules_for_workspace(engine.policy, rows, workspace)
        errors = self.loader.last_errors
        source = {"routing": str(self.loader.routing_path), "models": str(self.loader.models_path)}
        if self.loader.roles is not None or os.path.exists(self.loader.roles_path):
            source["roles"] = str(self.loader.roles_path)
        return RulesReport(not errors, tuple(rows), tuple(errors), tuple(self.loader.last_warnings), source,
                           engine.not_configured() if engine else {}, waiting_approval=tuple(self.waiting.values()))

    async def on_show_rules(self, env):
        return self._report(env.body.workspace)

    async def on_reload(self, env):
        return await self.reload()

    async def on_route_choice(self, env: Envelope[RouteChoice]) -> RouteChoiceResult:
        """/route override|ignore (spec §5.6): act on the session's surfaced suggestion, once."""
        msg = env.body
        if msg.action not in ("override", "ignore"):
            return RouteChoiceResult(False, f"unknown action {msg.action!r}: use override or ignore")
        s = self.pending.take(msg.session_id)
        if s is None:
            return RouteChoiceResult(False, "no pattern-store suggestion is pending for this session")
        event: ev.RouteOverridden | ev.OverrideDismissed
        if msg.action == "ignore":
            event = ev.OverrideDismissed(msg.session_id, s.turn_id, s.to_model)
            detail = f"dismissed: keeping {s.from_model} (the store suggested {s.to_model})"
            result = RouteChoiceResult(True, detail)
        else:
            event = ev.RouteOverridden(msg.session_id, s.turn_id, s.from_model, s.to_model)
            result = RouteChoiceResult(True, f"re-running the turn on {s.to_model}", s.to_model, s.text)
        if self.store is not None:
            self.store.record_event(msg.session_id, s.turn_id, event.TYPE, event_to_json_obj(event))
            self.learn(choice_outcome(s, msg.action, self.store.turn_facts(s.turn_id), time.time()))
        self.log.info(event.TYPE, session_id=msg.session_id, turn_id=s.turn_id)
        return result

    async def on_rate(self, env: Envelope[RateTurn]) -> TurnRated | Failure:
        """An explicit outcome: stored in the state database, then learned by the live store at once."""
        msg = env.body
        if not 0.0 <= msg.score <= 1.0:
            return Failure("invalid_score", f"score {msg.score} is outside [0, 1]")
        if self.store is None:
            return Failure("no_store", "this router has no state database")
        turn_id = msg.turn_id or (self.store.last_turn_id(msg.session_id) if msg.session_id else None)
        if not turn_id:
            return Failure("unknown_turn", "no turn to rate in this session yet")
        facts = self.store.turn_facts(turn_id)
        if facts is None:
            return Failure("unknown_turn", f"no turn {turn_id!r} in the database")
        if not facts.model or not facts.text:
            return Failure("unrateable_turn", f"turn {turn_id!r} has no model or no user text to learn from")
        outcome = PatternOutcome(turn_id, facts.session_id, facts.workspace, facts.text, facts.model, msg.score,
                                 facts.cost_usd, time.time())
        self.learn(outcome)
        self.log.info("turn rated", turn_id=turn_id, model=facts.model, score=msg.score)
        return TurnRated(turn_id, facts.model, msg.score, len(self.patterns.store) + len(self._learned_while_loading))

    async def on_pattern_stats(self, env) -> PatternStats:
        return PatternStats(self.patterns.stats())

    async def on_resolve_model(self, env) -> ModelResolved:
        return ModelResolved(env.body.name, self.resolve_model_name(env.body.name))

    async def on_availability_change(self, env) -> None:
        for t in env.body.transitions:
            event: ev.ProviderUnavailable | ev.ProviderRecovered = (
                ev.ProviderUnavailable(t.scope, t.reason, iso_utc(t.at)) if t.kind == "unavailable"
                else ev.ProviderRecovered(t.scope, t.reason))
            if self.store is not None:
                self.store.record_event(None, None, event.TYPE, event_to_json_obj(event))
            self.log.info(event.TYPE, scope=t.scope, reason=t.reason)

    # --- deciding --------------------------------------------------------------------------------

    async def on_decide(self, env: Envelope[DecideRoute]) -> RouteDecision | None:
        msg = env.body
        engine, _ = self.engine()
        if engine is None:
            return _no_config(msg, self.loader.last_errors)
        override = self._override(engine, msg)
        if not _waits_for_cost(engine) and not _waits_for_skills(engine, msg) and self._availability_known():
            # Every input is at hand: decided here, without a task or a round trip.
            return self._decide_now(msg, engine, override, {}, Decimal(0), frozenset())
        # Deciding waits on other actors (availability, maybe cost): in a task of its own, so one
        # decision's round trips never queue every other session's turn behind it (chaos/soak.py:
        # with 1,000 sessions the serial router failed turns with routing_error at its 30 s timeout).
        self.spawn(self._decide_and_reply, env, engine, override)
        return None

    async def _decide_and_reply(self, env: Envelope[DecideRoute], engine: RoutingEngine, override: Override) -> None:
        reply: RouteDecision | Failure
        try:
            reply = await self._decide(env.body, engine, override)
        except Exception as exc:  # answered like a handler's failure: the requester is not left waiting
            reply = self._fault(exc, "handling DecideRoute")
        await self._reply(env, reply)

    def _override(self, engine: RoutingEngine, msg: DecideRoute) -> Override:
        return (engine.parse_override(msg.text) if msg.override_model is None
                else Override(msg.text, msg.override_model, msg.override_model))

    def _availability_known(self) -> bool:
        """Whether availability's published view says nothing is unavailable and is current.

        Current means: the availability actor has handled every message delivered to it so far
        (``settled``), and it publishes a changed view before its handler returns. A turn path
        reports its calls' outcomes (``CallOutcome``) before it asks for the next decision, so
        the view includes them, as the ``GetAvailability`` round trip did (it queued behind them).
        A view that names a scope is not used: scopes also clear by the clock (AUTO_CLEAR_S),
        which only availability reads; then the router asks.
        """
        view = self.system.latest(self.name, AvailabilityView)
        return view is not None and not view.unavailable and self.system.settled(self.availability)

    async def _decide(self, msg: DecideRoute, engine: RoutingEngine, override: Override) -> RouteDecision:
        unavailable = {} if self._availability_known() else await self._unavailable()
        cost_today = await self._cost_today(engine)
        matched_skills = await self._matched_skills(engine, msg.workspace, override.body)
        return self._decide_now(msg, engine, override, unavailable, cost_today, matched_skills)

    def _decide_now(self, msg: DecideRoute, engine: RoutingEngine, override: Override, unavailable: dict,
                    cost_today: Decimal | None, matched_skills: frozenset[str]) -> RouteDecision:
        ctx = TurnContext(
            session_id=msg.session_id, turn_id=msg.turn_id, message_text=override.body, has_images=msg.has_images,
            has_tool_calls_in_history=msg.has_tool_calls_in_history, estimated_input_tokens=msg.estimated_input_tokens,
            has_tool_definitions=msg.has_tool_definitions, has_system_prompt=msg.has_system_prompt,
            requires_structured_output=msg.requires_structured_output, workspace=msg.workspace,
            sticky_model=msg.sticky_model, file_extensions=frozenset(msg.file_extensions),
            matched_skills=matched_skills, cost_today_usd=Decimal(0) if cost_today is None else cost_today,
            now_local=_now_local(engine), delegate_tier=msg.delegate_tier, is_worker=msg.is_worker,
            role=msg.role, role_tier=msg.role_tier, high_risk=msg.high_risk, delegated_by=msg.delegated_by,
        )

        availability = availability_from_snapshot(unavailable)
        if msg.failed_models:  # a mid-turn fallback: the models that failed this turn are out of it
            availability = excluding(availability, msg.failed_models)
        decision = engine.decide(ctx, override=override, availability=availability,
                                 pattern=self._pattern_source(engine))
        route = decision.to_event(msg.session_id, msg.turn_id)
        if msg.role:
            self._note_role_dispatch(msg, decision)
        # An explicit request wins over the role's hint; either is kept only when the chosen model declares it.
        requested = msg.effort if msg.effort is not None else decision.effort
        if requested is not None and decision.chosen_model is not None:
            effort, dropped = effective_effort(requested, engine.registry.models.get(decision.chosen_model))
            route = attrs.evolve(route, effort=effort, warnings=route.warnings + ((dropped,) if dropped else ()))
        if not msg.is_worker:
            self.pending.set(msg.session_id, surfaced_suggestion(
                msg.turn_id, override.body, decision.chain, decision.chosen_model,
                engine.policy.pattern_disagreement))
        banners = tuple(decision.banners)
        if self.loader.last_errors:
            banners = (policy_invalid_banner(self.loader.last_errors),) + banners
        if cost_today is None:  # never silent: a budget rule that could not be evaluated says so
            banners = banners + (BUDGET_UNCHECKED_BANNER,)
        chosen = engine.registry.models.get(decision.chosen_model) if decision.chosen_model else None
        return RouteDecision(route, override.body, banners, decision.error_code, decision.error,
                             can_delegate=bool(chosen and chosen.can_delegate and chosen.capabilities.supports_tools
                                               and not msg.is_worker), effort=route.effort)

    def _note_role_dispatch(self, msg: DecideRoute, decision) -> None:
        """A role dispatch whose configured models are all down waits for approval: an event, and
        an entry ``status`` shows until a later dispatch of the same role and tier succeeds."""
        entry = decision.chain[-1] if decision.chain else None
        key = (msg.role or "", entry.tier if entry is not None else msg.role_tier)
        if decision.error_code != WAITING_APPROVAL:
            if decision.ok:
                self.waiting.pop(key, None)
            return
        tried = tuple(f"{e.candidate_model} ({e.validation_failure.value if e.validation_failure else e.reason})"
                      for e in decision.chain if e.role is not None and e.candidate_model)
        event = ev.WaitingApproval(msg.session_id, msg.turn_id, key[0], key[1], tried, iso_utc(time.time()))
        self.waiting[key] = {"role": key[0], "tier": key[1], "turn_id": msg.turn_id, "session_id": msg.session_id,
                             "since": event.at, "tried": list(tried)}
        if self.store is not None:
            self.store.record_event(msg.session_id, msg.turn_id, event.TYPE, event_to_json_obj(event))
        self.log.warning(event.TYPE, role=key[0], tier=key[1], tried=list(tried))

    def _pattern_source(self, engine: RoutingEngine):
        if self.pattern is not None:
            return self.pattern
        return self.patterns.source(engine.registry.models) if self.store is not None else None

    async def _unavailable(self) -> dict:
        try:
            view: AvailabilityView = await self.request(self.availability, GetAvailability(), timeout=2)
            return view.unavailable
        except (RemoteError, RequestTimeout) as exc:
            self.log.warning("availability unknown; assuming healthy", error=str(exc))
            return {}

    async def _cost_today(self, engine: RoutingEngine) -> Decimal | None:
        """Today's spend; None when a budget rule needs it and the ledger cannot say."""
        if not _waits_for_cost(engine):
            return Decimal(0)  # no budget rule reads it: skip the round trip
        try:
            amount: CostAmount = await self.request(self.cost, GetCostToday(), timeout=2)
            value = Decimal(amount.usd)
        except (RemoteError, RequestTimeout, ArithmeticError, ValueError) as exc:
            self.log.warning("cost ledger unavailable; budget rules not checked", error=str(exc))
            return None
        return value if value.is_finite() else None

    async def _matched_skills(self, engine: RoutingEngine, workspace: str | None, text: str) -> frozenset[str]:
        if not workspace or "skills_matching_message_includes" not in engine.predicates_used:
            return frozenset()  # no rule reads it: touch no files
        # Reading skill files is blocking I/O: never on the event loop.
        index = await trio.to_thread.run_sync(self.skills.get, workspace)
        return index.match(text)


_UNREAD = datetime(1970, 1, 1, tzinfo=UTC)   # the context's default: no rule reads the clock


def _now_local(engine: RoutingEngine) -> datetime:
    """The wall clock in the user's timezone, read only when a rule tests the time of day (the
    only reader of ``TurnContext.now_local``): the timezone lookup is a fair share of a decision."""
    return datetime.now().astimezone() if "time_of_day_between" in engine.predicates_used else _UNREAD


def _waits_for_cost(engine: RoutingEngine) -> bool:
    """A budget rule reads today's spend: the cost actor has to be asked."""
    return "cost_today_exceeds_usd" in engine.predicates_used


def _waits_for_skills(engine: RoutingEngine, msg: DecideRoute) -> bool:
    """A skills rule applies to a turn in a workspace: its skill files are read in a thread."""
    return bool(msg.workspace) and "skills_matching_message_includes" in engine.predicates_used


def excluding(availability: Availability, failed: tuple[str, ...]) -> Availability:
    """``availability`` with ``failed`` unavailable (model scope): the chain falls through past them
    exactly as past an outage, and the trace says why."""
    out = frozenset(failed)

    def check(model: str) -> AvailabilityLike:
        if model in out:
            return AvailabilityVerdict(False, "model", f"{model} failed before answering this turn")
        return availability(model)

    return check


def rules_for_workspace(policy: RoutingPolicy, rows: list[dict], workspace: str) -> list[dict]:
    """The rules a turn in ``workspace`` is routed by, in evaluation order: the rules of the
    workspace entry that contains it (the longest path wins), then the global rules."""
    path = os.path.normpath(os.path.abspath(os.path.expanduser(workspace)))
    entry = policy.workspace_for(path)
    own = [r for r in rows if entry is not None and r["scope"] == entry.key and r["workspace_path"] == entry.path]
    return own + [r for r in rows if r["scope"] == "global"]


def _no_config(msg: DecideRoute, errors: tuple[str, ...]) -> RouteDecision:
    text = ("No model available for this turn.\nThe model registry or routing policy failed to load:\n"
            + "\n".join(errors) + "\nFix it, then run `orchestrator check`.")
    route = ev.RouteDecided(msg.session_id, msg.turn_id, iso_utc(time.time()), (), -1, None, 0.0, error=text)
    return RouteDecision(route, msg.text, (), "invalid_config", text)
