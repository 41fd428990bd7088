"""roles.yaml in one pass: the entry-local parse, then the drift checks and the tier floor."""
from __future__ import annotations

from actors.config.registry import ModelRegistry

from actors.roles.checks import drift_problems
from actors.roles.model import RolesConfig
from actors.roles.parse import parse_roles


def parse_roles_text(text: str, filename: str = "roles.yaml",
                     registry: ModelRegistry | None = None) -> tuple[RolesConfig | None, list[str]]:
    """The whole check: entry-local problems, then (on what parsed) drift and the tier floor.

    ``registry`` None: models.yaml could not be read; model references are not checked."""
    config, problems, lines = parse_roles(text, filename)
    if config is not None:
        drift_problems(config, lines, registry, problems)
    errors = problems.sorted()
    return (config if not errors else None), errors
