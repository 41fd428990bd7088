"""Delegation of implementation work to a command-line coding agent (docs/delegation.md).

Sans-IO cores: ``config`` (the ``delegate:`` section), ``consent`` (the blast radius and its
fingerprint), ``verify`` (the acceptance decision), ``breaker`` (circuit breaker and escalation).
Thin IO: ``gitio`` (snapshot, changes, scoped rollback, the test command), ``state`` (the state
database), ``tool`` (the ``delegate_code`` tool the planner offers).
"""
