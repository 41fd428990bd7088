"""The router actor: a thin loop around the sans-IO routing engine (``actors.router``).

Per turn it re-reads the config files if their mtime changed (else one stat each), asks the
availability and cost actors for the inputs the predicates need, runs the chain and answers with
the ``route.decided`` record, banners, and the message with its @override token stripped.
"""
from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal

from protocol import events as ev
from protocol.codec import event_to_json_obj
from protocol.errors import RemoteError
from protocol.messages import (
    Ack, AvailabilityChanged, AvailabilityView, CostAmount, DecideRoute, GetAvailability, GetCostToday, ModelResolved,
    ReloadRules, ResolveModel, RouteChoice, RouteDecision, RulesReport, ShowRules,
)

from actors.availability.state import iso_utc
from actors.runtime.kernel import Actor, RequestTimeout
from actors.router.chain import RoutingEngine
from actors.router.context import TurnContext
from actors.router.loader import PolicyLoader
from actors.router.policy import rule_rows
from actors.router.skills import SkillIndex
from actors.router.validation import availability_from_snapshot
from actors.runtime.store import Store

POLICY_INVALID_BANNER = "routing.yaml is invalid; using the last-known-good rules. Run /rules check."


class RouterActor(Actor):
    name = "router"

    def __init__(self, system, loader: PolicyLoader, *, store: Store | None = None, availability: str = "availability",
                 cost: str = "cost", env=None, pattern=None):
        super().__init__(system)
        self.loader = loader
        self.store = store
        self.availability = availability
        self.cost = cost
        self.env = env
        self.pattern = pattern
        self._generation = -1
        self._skills: dict[str | None, SkillIndex] = {}

    def handlers(self):
        return {DecideRoute: self.on_decide, ShowRules: self.on_show_rules, ReloadRules: self.on_reload,
                RouteChoice: self.on_route_choice, AvailabilityChanged: self.on_availability_change,
                ResolveModel: self.on_resolve_model}

    # --- config ----------------------------------------------------------------------------------

    def engine(self) -> tuple[RoutingEngine | None, tuple[str, ...]]:
        """The last-known-good engine, and the errors of a broken edit seen for the first time."""
        state = self.loader.current()
        if state.errors and self.store is not None:
            self.store.record_event(None, None, ev.PolicyInvalid.TYPE,
                                    event_to_json_obj(ev.PolicyInvalid(state.errors, str(self.loader.routing_path))))
        if state.generation != self._generation:
            self._generation = state.generation
            self._skills.clear()
        return state.engine, state.errors

    def resolve_model_name(self, name: str) -> str | None:
        engine = self.loader.engine
        spec = engine.registry.resolve(name) if engine else None
        return spec.id if spec else None

    async def reload(self) -> RulesReport:
        self.loader.reload(force=True)
        return self._report()

    def _report(self, workspace: str | None = None) -> RulesReport:
        self.engine()
        engine = self.loader.engine
        rows = rule_rows(engine.policy) if engine else []
        if workspace:
            rows = [r for r in rows if r.get("scope") == "global" or workspace.startswith(str(r.get("workspace", "")))]
        errors = self.loader.last_errors
        return RulesReport(not errors, tuple(rows), tuple(errors), tuple(self.loader.last_warnings),
                           {"routing": str(self.loader.routing_path), "models": str(self.loader.models_path)})

    async def on_show_rules(self, env):
        return self._report(env.body.workspace)

    async def on_reload(self, env):
        return await self.reload()

    async def on_route_choice(self, env):
        return Ack(ok=False, detail="no pattern-store suggestion is pending for this session")

    async def on_resolve_model(self, env) -> ModelResolved:
        return ModelResolved(env.body.name, self.resolve_model_name(env.body.name))

    async def on_availability_change(self, env) -> None:
        for t in env.body.transitions:
            cls = ev.ProviderUnavailable if t.kind == "unavailable" else ev.ProviderRecovered
            event = cls(t.scope, t.reason) if cls is ev.ProviderRecovered else cls(t.scope, t.reason, iso_utc(t.at))
            if self.store is not None:
                self.store.record_event(None, None, cls.TYPE, event_to_json_obj(event))
            self.log.info(cls.TYPE, scope=t.scope, reason=t.reason)

    # --- deciding --------------------------------------------------------------------------------

    async def on_decide(self, env):
        msg: DecideRoute = env.body
        engine, _ = self.engine()
        if engine is None:
            return _no_config(msg, self.loader.last_errors)
        override = engine.parse_override(msg.text)
        unavailable = await self._unavailable()
        cost_today = await self._cost_today(engine)
        ctx = TurnContext(
            session_id=msg.session_id, turn_id=msg.turn_id, message_text=override.body, has_images=msg.has_images,
            has_tool_calls_in_history=msg.has_tool_calls_in_history, estimated_input_tokens=msg.estimated_input_tokens,
            has_tool_definitions=msg.has_tool_definitions, has_system_prompt=msg.has_system_prompt,
            requires_structured_output=msg.requires_structured_output, workspace=msg.workspace,
            sticky_model=msg.sticky_model, file_extensions=frozenset(msg.file_extensions),
            matched_skills=self._skill_index(msg.workspace).match(override.body), cost_today_usd=cost_today,
            now_local=datetime.now().astimezone(), delegate_tier=msg.delegate_tier, is_worker=msg.is_worker,
        )

        decision = engine.decide(ctx, override=override, availability=availability_from_snapshot(unavailable),
                                 pattern=self.pattern)
        route = decision.to_event(msg.session_id, msg.turn_id)
        banners = tuple(decision.banners)
        if self.loader.last_errors:
            banners = (POLICY_INVALID_BANNER,) + banners
        chosen = engine.registry.models.get(decision.chosen_model) if decision.chosen_model else None
        return RouteDecision(route, override.body, banners, decision.error_code, decision.error,
                             can_delegate=bool(chosen and chosen.can_delegate and not msg.is_worker))

    async def _unavailable(self) -> dict:
        try:
            view: AvailabilityView = await self.request(self.availability, GetAvailability(), timeout=2)
            return view.unavailable
        except (RemoteError, RequestTimeout) as exc:
            self.log.warning("availability unknown; assuming healthy", error=str(exc))
            return {}

    async def _cost_today(self, engine: RoutingEngine) -> Decimal:
        if "cost_today_exceeds_usd" not in engine.predicates_used:
            return Decimal(0)  # no budget rule reads it: skip the round trip
        try:
            amount: CostAmount = await self.request(self.cost, GetCostToday(), timeout=2)
            return Decimal(amount.usd)
        except (RemoteError, RequestTimeout) as exc:
            self.log.warning("cost ledger unavailable", error=str(exc))
            return Decimal(0)

    def _skill_index(self, workspace: str | None) -> SkillIndex:
        index = self._skills.get(workspace)
        if index is None:
            index = self._skills[workspace] = SkillIndex.build(workspace)
        return index


def _no_config(msg: DecideRoute, errors: tuple[str, ...]) -> RouteDecision:
    text = "No model available for this turn.\nThe model registry or routing policy failed to load:\n" + "\n".join(errors)
    route = ev.RouteDecided(msg.session_id, msg.turn_id, iso_utc(time.time()), (), -1, None, 0.0, error=text)
    return RouteDecision(route, msg.text, (), "invalid_config", text)
