"""Cross-entry checks of roles.yaml: the seed's drift checks and the tier-floor invariant.

* agent index ↔ consumers, both ways: an agent's role lists it as a consumer, and every consumer
  of a role is an agent of that role;
* a pinned agent's model is its role's top-level primary; an auto agent carries no model;
* every model (rows, fallbacks, pins) is registered in models.yaml;
* the tier floor: the orchestrating agent's cost tier is at least every pinned subagent's — else
  a subagent would be capped down to the orchestrator's model (the seed only documents this one).

Entries that failed to parse are declared (their line is in ``lines``) but absent from the
config: references to them are not reported again as "unknown".
"""
from __future__ import annotations

from actors.config.registry import ModelRegistry
from actors.router.yamlpos import Problems

from actors.roles.model import RolesConfig, cost_rank
from actors.roles.parse import Lines, join


def drift_problems(config: RolesConfig, lines: Lines, registry: ModelRegistry | None, problems: Problems) -> None:
    _agents_and_consumers(config, lines, problems)
    _pins(config, lines, problems)
    _not_ids(lines, registry, problems)
    if registry is not None:
        _registered(lines, registry, problems)
    _tier_floor(config, lines, problems)


def _declared(lines: Lines, section: str, name: str) -> bool:
    return join(section, name) in lines


def _agents_and_consumers(config: RolesConfig, lines: Lines, problems: Problems) -> None:
    for agent in config.agents.values():
        path = join("agents", agent.name)
        role = config.roles.get(agent.role)
        if role is None:
            if not _declared(lines, "roles", agent.role):
                problems.add(lines.at(join(path, "role")), join(path, "role"),
                             f"role '{agent.role}' is not declared under roles")
            continue
        if agent.name not in role.consumers:
            problems.add(lines.at(path), path, f"agent '{agent.name}' uses role '{role.name}' but "
                                               f"roles.{role.name}.consumers does not list it")
    for role in config.roles.values():
        cpath = join(join("roles", role.name), "consumers")
        for consumer in role.consumers:
            line = lines.at(join(cpath, consumer), lines.at(cpath))
            consumer_agent = config.agents.get(consumer)
            if consumer_agent is None:
                if not _declared(lines, "agents", consumer):
                    problems.add(line, cpath, f"consumer '{consumer}' is not an agent under agents")
            elif consumer_agent.role != role.name:
                problems.add(line, cpath, f"consumer '{consumer}' is listed by role '{role.name}' but "
                                          f"agents.{consumer}.role is '{consumer_agent.role}'")


def _pins(config: RolesConfig, lines: Lines, problems: Problems) -> None:
    for agent in config.agents.values():
        path = join("agents", agent.name)
        role = config.roles.get(agent.role)
        if agent.mode == "auto":
            if agent.model is not None:
                problems.add(lines.at(join(path, "model"), lines.at(path)), join(path, "model"),
                             "an auto agent carries no model (its model comes from its role at dispatch); "
                             "remove it, or set mode: pinned")
            continue
        if role is None:
            continue
        primary = role.default.primary
        if agent.model is None:
            problems.add(lines.at(path), join(path, "model"),
                         f"missing: a pinned agent names its model (role '{role.name}''s top-level primary "
                         f"'{primary}')")
        elif agent.model != primary:
            problems.add(lines.at(join(path, "model"), lines.at(path)), join(path, "model"),
                         f"pinned model '{agent.model}' is not role '{role.name}''s top-level primary '{primary}'")


def _not_ids(lines: Lines, registry: ModelRegistry | None, problems: Problems) -> None:
    for path, line, value in lines.bare:
        spec = registry.resolve(value) if registry is not None else None
        hint = f": it is an alias of '{spec.id}': write the id" if spec is not None else ""
        problems.add(line, path, f"'{value}' is not a model id (expected 'provider:model' as in models.yaml){hint}")


def _registered(lines: Lines, registry: ModelRegistry, problems: Problems) -> None:
    """Every model reference that parsed as an id, also in entries that failed otherwise."""
    for path, line, model in lines.refs:
        if model in registry.models:
            continue
        spec = registry.resolve(model)
        hint = f" (it is an alias of '{spec.id}': write the id)" if spec is not None else ""
        problems.add(line, path, f"model '{model}' is not registered in models.yaml{hint}")


def _tier_floor(config: RolesConfig, lines: Lines, problems: Problems) -> None:
    name = config.orchestrator
    if name is None:
        return
    orchestrator = config.agents.get(name)
    if orchestrator is None:
        if not _declared(lines, "agents", name):
            problems.add(lines.at("orchestrator"), "orchestrator", f"'{name}' is not an agent under agents")
        return
    own = config.roles.get(orchestrator.role)
    if own is None:
        return
    floor = cost_rank(own.default.cost_tier)
    cost_path = join(join("roles", own.name), "cost_tier")
    for agent in config.agents.values():
        role = config.roles.get(agent.role)
        if agent.name == name or agent.mode != "pinned" or role is None:
            continue
        rank = cost_rank(role.default.cost_tier)
        if floor is not None and rank is not None and rank > floor:
            problems.add(lines.at(cost_path, lines.at(join("agents", name))), cost_path,
                         f"tier floor: the orchestrating agent '{name}' (role {own.name}, cost_tier "
                         f"{own.default.cost_tier}) is below pinned subagent '{agent.name}' (role {role.name}, "
                         f"cost_tier {role.default.cost_tier}); the subagent would be capped down to the "
                         f"orchestrator's model — raise {own.name}'s cost_tier or unpin {agent.name}")
