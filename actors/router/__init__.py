"""The routing engine's sans-IO core (spec: routing-engine-spec §4–§7).

Kept import-light on purpose (``actors.config.files`` imports submodules of this package), so
import from the submodules:

* ``context``         — :class:`TurnContext`, :func:`build_turn_context`
* ``predicates``      — the closed predicate set, compiled once
* ``fastregex``       — alternation-splitting regex search used by the predicates
* ``policy``          — validated routing.yaml data; ``rule_rows`` for ``rules show``
* ``policy_file``     — routing.yaml text → :class:`RoutingPolicy`
* ``override``        — ``@model`` parsing
* ``validation``      — capability/availability gates, :class:`AvailabilityVerdict`
* ``chain``           — :class:`RoutingEngine`, :class:`Decision`
* ``pattern_scoring`` — spec §5.5 scoring
* ``texts``/``trace`` — banners, hard-failure texts, the §7.4 trace view
* ``loader``          — :class:`PolicyLoader` (hot reload, last-known-good)
* ``shadow``          — shadowed-rule warnings
* ``skills``          — the skill-description index
"""
