"""Which review spec applies: per-task → per-spec → ``ORCHESTRATOR_REVIEW_BACKEND`` → config → default.

Sans-IO: the caller gathers each layer's text (a flag, a workflow's default, the environment,
``review: {backend: …}`` of the workspace's ``.orchestrator/workspace.yaml`` or else of
daemon.yaml) and the default; the first layer that is set decides. A set layer that does not
parse is an error naming where it came from — it never falls silently to the next layer, or a
typo in a pin would review on a model nobody chose. An empty or whitespace-only value counts as
unset (``ORCHESTRATOR_REVIEW_BACKEND=`` in a shell).
"""
from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from actors.config.registry import ModelRegistry
from actors.review.spec import ReviewSpec, parse_spec

SOURCES = ("task", "spec", "env", "config", "default")
ENV_VAR = "ORCHESTRATOR_REVIEW_BACKEND"


@frozen
class Layer:
    source: str            # one of SOURCES
    value: str | None      # the spec text as written; None or blank: not set
    origin: str = ""       # where it was written, for messages (e.g. "daemon.yaml:4: review.backend")


@frozen
class Resolved:
    spec: ReviewSpec | None
    source: str | None
    origin: str = ""
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.spec is not None


def resolve(layers: Sequence[Layer], registry: ModelRegistry) -> Resolved:
    """The first set layer in precedence order (``layers`` may come in any order)."""
    unknown = [layer.source for layer in layers if layer.source not in SOURCES]
    if unknown:
        raise ValueError(f"unknown review spec source(s): {unknown}")   # a programming error
    for layer in sorted(layers, key=lambda layer: SOURCES.index(layer.source)):
        if layer.value is None or not layer.value.strip():
            continue
        parsed = parse_spec(layer.value, registry)
        where = layer.origin or layer.source
        if parsed.spec is None:
            return Resolved(None, layer.source, layer.origin, tuple(f"{where}: {e}" for e in parsed.errors),
                            tuple(f"{where}: {w}" for w in parsed.warnings))
        return Resolved(parsed.spec, layer.source, layer.origin, (),
                        tuple(f"{where}: {w}" for w in parsed.warnings))
    return Resolved(None, None, "", ("no review backend: nothing is configured and there is no default model",))


def default_spec(global_default: str | None, registry: ModelRegistry) -> str | None:
    """The default review spec: the routing policy's global default model, as ``backend:model``."""
    spec = registry.models.get(global_default) if global_default else None
    return f"{spec.provider}:{spec.name}" if spec is not None else None
