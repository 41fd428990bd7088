"""The review spec ``backend[:model[:effort]]`` (DESIGN §4.8), parsed against the model registry.

Sans-IO: a string and a registry in, a ``SpecParse`` out — never an exception.

- ``backend`` is a provider name of models.yaml (``cli`` providers such as ``codex`` included) or
  ``none`` (review disabled). Names are case-sensitive: ``Codex`` is not ``codex`` (the error
  says which one was meant).
- ``model`` is that provider's own model name (``codex:gpt-5.5`` → registry id ``codex:gpt-5.5``).
  A model the registry does not know is accepted with a warning: the spec is the user's word, and
  the registry may simply lag behind it (running the turn still needs it registered).
- ``effort`` must be one of the efforts that model declares in models.yaml (strict, unlike a
  turn's advisory effort); on an unknown model it must at least be an effort word.
- Each part is trimmed; an empty part is an error. Model names may contain ``:`` (``llama3:8b``):
  a last part that is an effort word is the effort, anything else stays part of the model name —
  except a word of letters after a registered model (``gpt-5.5:hihg``): that is a misspelt effort.
"""
from __future__ import annotations

from attrs import frozen

from actors.config.registry import EFFORTS, TIERS, ModelRegistry, ModelSpec

NONE = "none"
MAX_SPEC_CHARS = 300


@frozen
class ReviewSpec:
    backend: str                 # a provider name, or "none"
    model: str | None = None     # the provider's model name, when the spec names one
    effort: str | None = None

    @property
    def model_id(self) -> str | None:
        return f"{self.backend}:{self.model}" if self.model is not None else None

    @property
    def disabled(self) -> bool:
        return self.backend == NONE

    def text(self) -> str:
        return ":".join(p for p in (self.backend, self.model, self.effort) if p is not None)


@frozen
class SpecParse:
    spec: ReviewSpec | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.spec is not None


def _fail(message: str) -> SpecParse:
    return SpecParse(None, (message,))


def parse_spec(text: object, registry: ModelRegistry) -> SpecParse:
    """``backend[:model[:effort]]`` checked against ``registry``; errors and warnings are one line each."""
    if not isinstance(text, str):
        return _fail(f"a review spec is a string like 'codex' or 'openai:gpt-5.4:high', got {type(text).__name__}")
    if len(text) > MAX_SPEC_CHARS:
        return _fail(f"review spec is {len(text)} characters long (at most {MAX_SPEC_CHARS})")
    shown = text.strip()
    if not shown:
        return _fail("empty review spec (expected backend[:model[:effort]], e.g. 'codex' or 'none')")
    backend, sep, rest = (part for part in text.partition(":"))
    backend = backend.strip()
    if not backend:
        return _fail(f"review spec {shown!r}: empty backend (expected backend[:model[:effort]])")
    if backend == NONE:
        if sep:
            return _fail(f"review spec {shown!r}: 'none' takes no model or effort")
        return SpecParse(ReviewSpec(NONE))
    if backend not in registry.providers:
        return _fail(f"review spec {shown!r}: {_unknown_backend(backend, registry)}")
    if not sep:
        return SpecParse(ReviewSpec(backend))
    model, effort = _split_model_effort(rest)
    if not model:
        return _fail(f"review spec {shown!r}: empty model (expected {backend}:MODEL[:EFFORT])")
    if effort is not None and not effort:
        return _fail(f"review spec {shown!r}: empty effort (expected one of: {', '.join(EFFORTS)})")
    spec = ReviewSpec(backend, model, effort)
    entry = registry.models.get(f"{backend}:{model}")
    warnings: tuple[str, ...] = ()
    if entry is None and effort is None:
        meant = _misspelt_effort(backend, model, registry)
        if meant is not None:
            return _fail(f"review spec {shown!r}: {meant}")
    if entry is None:
        known = [m.name for m in registry.models.values() if m.provider == backend]
        listed = f" (registered: {', '.join(known)})" if known else ""
        warnings = (f"review spec {shown!r}: model {model!r} is not registered for backend '{backend}'{listed}; "
                    "accepted as written",)
        if effort is not None and effort not in EFFORTS:
            return SpecParse(None, (f"review spec {shown!r}: {effort!r} is not an effort "
                                    f"(expected one of: {', '.join(EFFORTS)})",), warnings)
        return SpecParse(spec, (), warnings)
    if effort is not None and effort not in entry.efforts:
        accepts = f"accepts {', '.join(entry.efforts)}" if entry.efforts else "declares no efforts"
        return _fail(f"review spec {shown!r}: effort {effort!r} is not supported: {entry.id} {accepts} "
                     "(models.yaml efforts)")
    return SpecParse(spec)


def _split_model_effort(rest: str) -> tuple[str, str | None]:
    """``gpt-5.4:high`` → (gpt-5.4, high); ``llama3:8b`` → (llama3:8b, None); ``m:`` → (m, "")."""
    head, sep, tail = rest.rpartition(":")
    if not sep:
        return rest.strip(), None
    last = tail.strip()
    if last in EFFORTS or last == "" or ":" not in head and _looks_like_effort(last):
        return head.strip(), last
    return rest.strip(), None


def _misspelt_effort(backend: str, model: str, registry: ModelRegistry) -> str | None:
    """``gpt-5.5:hihg`` where ``gpt-5.5`` is registered: a wrong effort, not a new model name (a
    digit in the last part, as in ``llama3:8b``, keeps it a model name)."""
    head, sep, last = model.rpartition(":")
    entry = registry.models.get(f"{backend}:{head.strip()}") if sep else None
    if entry is None or not last.strip().isalpha():
        return None
    accepts = f"accepts ({', '.join(entry.efforts)})" if entry.efforts else "accepts none (models.yaml efforts)"
    return f"{last.strip()!r} is not an effort {entry.id} {accepts}"


def _looks_like_effort(word: str) -> bool:
    """A last part that reads like an effort (letters only, e.g. ``HIGH`` or ``max``) is reported
    as a wrong effort instead of being glued onto the model name silently."""
    return word.isalpha() and word.lower() in (*EFFORTS, "max", "maximum", "none", "min")


def _unknown_backend(backend: str, registry: ModelRegistry) -> str:
    providers = sorted(registry.providers)
    same = [p for p in providers if p.lower() == backend.lower()]
    if same:
        return f"unknown backend {backend!r} (backend names are case-sensitive: did you mean '{same[0]}'?)"
    return f"unknown backend {backend!r} (expected a provider of models.yaml: {', '.join(providers)}, or none)"


_TIER_RANK = {tier: i for i, tier in enumerate(reversed(TIERS))}   # deep first


def reviewer_order(models: list[ModelSpec]) -> list[ModelSpec]:
    """Reviewers are judges: the deepest tier first, then the order of models.yaml."""
    return sorted(models, key=lambda m: _TIER_RANK.get(m.tier or "", len(TIERS)))


def backend_model(spec: ReviewSpec, registry: ModelRegistry) -> ModelSpec | None:
    """The model a backend-only spec runs on: that provider's deepest registered model."""
    ranked = reviewer_order([m for m in registry.models.values() if m.provider == spec.backend])
    return ranked[0] if ranked else None
