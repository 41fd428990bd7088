"""``review: {backend: SPEC}`` in daemon.yaml or a workspace's ``.orchestrator/workspace.yaml`` (sans-IO).

Only the shape is checked here (a mapping whose ``backend`` is a string); the spec itself is
checked against models.yaml when it is resolved, with its origin ``file:line: review.backend``.
"""
from __future__ import annotations

from typing import Any

from attrs import frozen

from actors.router.yamlpos import Problems, describe, key_line, parse_yaml

REVIEW_KEYS = ("backend",)


@frozen
class ReviewConfig:
    backend: str | None = None
    origin: str = ""                  # "daemon.yaml:4: review.backend"
    errors: tuple[str, ...] = ()


def section_problem(value: Any) -> str | None:
    """Why a ``review:`` value is malformed, or None (also for daemon.yaml's strict settings check)."""
    if not isinstance(value, dict):
        return f"expected a mapping like {{backend: codex}}, got {describe(value)}"
    unknown = [str(k) for k in value if k not in REVIEW_KEYS]
    if unknown:
        return f"unknown key(s) {', '.join(unknown)} (expected: {', '.join(REVIEW_KEYS)})"
    backend = value.get("backend")
    if backend is not None and not isinstance(backend, str):
        return f"backend: expected a review spec such as codex or openai:gpt-5.4:high, got {describe(backend)}"
    return None


def review_config_text(text: str | None, filename: str) -> ReviewConfig:
    """The ``review:`` section of a YAML file's text (None: the file does not exist); ``filename``
    as it should appear in messages."""
    if text is None:
        return ReviewConfig()
    name = filename    # as it should appear in messages: "daemon.yaml", ".orchestrator/workspace.yaml"
    problems = Problems(name)
    data, ok = parse_yaml(text, problems)
    if not ok:
        return ReviewConfig(errors=tuple(problems.sorted()))
    if not isinstance(data, dict) or "review" not in data:
        return ReviewConfig()
    section = data["review"]
    line = key_line(data, "review", 1)
    problem = section_problem(section)
    if problem is not None:
        return ReviewConfig(errors=(f"{name}:{line}: review: {problem}",))
    backend = section.get("backend")
    if backend is None:
        return ReviewConfig()
    return ReviewConfig(str(backend), f"{name}:{key_line(section, 'backend', line)}: review.backend")
