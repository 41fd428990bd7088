"""Hot reload of models.yaml + routing.yaml (spec §4.7, DESIGN §4.2).

``PolicyLoader.current()`` is called at every turn start. It stats both files (one ``stat`` each)
and re-parses only when a file's (mtime_ns, size, inode) changed; models.yaml changing re-parses
routing.yaml too, because the policy's model references are validated against the registry.

A new version that fails validation does not replace anything: the last-known-good pair stays
active and the errors are returned by that one call (so the caller emits exactly one
``routing.policy_invalid`` per broken edit) and kept in :attr:`PolicyLoader.last_errors`.

Missing routing.yaml is not an error: the implicit policy of
:func:`actors.router.policy_file.implicit_policy` applies (no rules; global default = first
``balanced`` model of models.yaml, else its first model) and a warning says so. Missing or
invalid models.yaml with no earlier good version leaves ``engine`` as None: nothing can be routed.

roles.yaml (optional, beside models.yaml) is loaded the same way: re-parsed when it or the active
registry changed, validated against that registry; an invalid version keeps the last-known-good
roles (its errors join ``last_errors``) while models.yaml and routing.yaml reload independently.
A missing roles.yaml means no roles (dispatch by role then fails with ``unknown role``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import attrs
from attrs import frozen

from actors.config.files import load_policy_text, load_registry_text, read_text
from actors.config.registry import ModelRegistry
from actors.roles import RolesConfig, parse_roles_text

from actors.router.chain import RoutingEngine
from actors.router.policy import RoutingPolicy
from actors.router.policy_file import implicit_policy

Signature = tuple | None


@frozen
class LoadState:
    engine: RoutingEngine | None        # last-known-good; None until a valid pair was loaded
    errors: tuple[str, ...] = ()        # errors found by this call only
    warnings: tuple[str, ...] = ()      # warnings of the version activated by this call
    reloaded: bool = False              # a new version became active in this call
    generation: int = 0                 # bumps with every activated version

    @property
    def policy(self) -> RoutingPolicy | None:
        return self.engine.policy if self.engine else None

    @property
    def registry(self) -> ModelRegistry | None:
        return self.engine.registry if self.engine else None


class PolicyLoader:
    def __init__(self, models_path: str, routing_path: str, env: Mapping[str, str] | None = None, *,
                 home: str | None = None, stat: Callable[[str], os.stat_result] = os.stat,
                 read: Callable[[str], str | None] = read_text, roles_path: str | None = None):
        self.models_path = models_path
        self.routing_path = routing_path
        self.roles_path = roles_path or os.path.join(os.path.dirname(models_path), "roles.yaml")
        self.env = env
        self.home = home if home is not None else (env.get("HOME") if env is not None else None)
        self._stat = stat
        self._read = read
        self._seen: tuple[Signature, Signature, Signature] | None = None
        self._engine: RoutingEngine | None = None
        self._registry_sig: Signature = None     # signature of the models.yaml behind _engine
        self._generation = 0
        self._policy_errors: tuple[str, ...] = ()
        self._roles: RolesConfig | None = None    # last-known-good roles.yaml (None: no file)
        self._roles_seen: tuple[Signature, int] | None = None   # (roles.yaml signature, id of the registry)
        self._roles_errors: tuple[str, ...] = ()
        self.roles_parses = 0
        self.last_warnings: tuple[str, ...] = ()
        self.registry_parses = 0
        self.policy_parses = 0

    @property
    def engine(self) -> RoutingEngine | None:
        return self._engine

    @property
    def last_errors(self) -> tuple[str, ...]:
        """The errors keeping a last-known-good version active: models/routing, then roles."""
        return self._policy_errors + self._roles_errors

    @property
    def roles(self) -> RolesConfig | None:
        return self._roles

    def _signature(self, path: str) -> Signature:
        try:
            st = self._stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ("error", str(exc))
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _signatures(self) -> tuple[Signature, Signature, Signature]:
        return (self._signature(self.models_path), self._signature(self.routing_path),
                self._signature(self.roles_path))

    def current(self) -> LoadState:
        sigs = self._signatures()
        if sigs == self._seen:
            return LoadState(self._engine, generation=self._generation)
        return self._load(sigs, force=False)

    def reload(self, force: bool = True) -> LoadState:
        """``/rules reload``: re-read the files even when their stat is unchanged."""
        sigs = self._signatures()
        if not force and sigs == self._seen:
            return LoadState(self._engine, generation=self._generation)
        return self._load(sigs, force=force)

    def _read_or_error(self, path: str) -> tuple[str | None, str | None]:
        name = os.path.basename(path)
        try:
            return self._read(path), None
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"{name}:1: cannot read file: {exc}"

    def _load(self, sigs: tuple[Signature, Signature, Signature], force: bool) -> LoadState:
        self._seen = sigs
        state = self._load_policy(sigs, force)
        roles_errors, roles_changed = self._load_roles(sigs[2], force)
        if roles_changed and self._engine is not None:
            engine = self._engine
            self._engine = RoutingEngine(engine.policy, engine.registry, self.env, roles=self._roles)
            if not state.reloaded:
                self._generation += 1
            return LoadState(self._engine, state.errors + roles_errors, state.warnings, True, self._generation)
        return attrs.evolve(state, errors=state.errors + roles_errors)

    def _load_roles(self, sig: Signature, force: bool) -> tuple[tuple[str, ...], bool]:
        """(errors found now, whether the active roles changed)."""
        registry = self._engine.registry if self._engine else None
        seen = (sig, id(registry))
        if not force and seen == self._roles_seen:
            return (), False
        self._roles_seen = seen
        if registry is None:
            return (), False     # nothing routes yet; roles are checked once a registry loads
        self.roles_parses += 1
        text, err = self._read_or_error(self.roles_path)
        if err is not None:
            self._roles_errors = (err,)
            return self._roles_errors, False
        if text is None:
            changed = self._roles is not None
            self._roles, self._roles_errors = None, ()
            return (), changed
        roles, errors = parse_roles_text(text, self.roles_path, registry)
        if roles is None:
            self._roles_errors = tuple(errors)
            return self._roles_errors, False
        changed = roles != self._roles
        self._roles, self._roles_errors = roles, ()
        return (), changed

    def _load_policy(self, sigs: tuple[Signature, Signature, Signature], force: bool) -> LoadState:
        # Compared with the models.yaml that is *active*, not the last one seen: while models.yaml
        # is broken, an edit to routing.yaml alone must not activate against the old registry.
        models_changed = force or self._engine is None or sigs[0] != self._registry_sig
        registry = self._engine.registry if self._engine else None
        if models_changed:
            self.registry_parses += 1
            text, err = self._read_or_error(self.models_path)
            if text is None:
                name = os.path.basename(self.models_path)
                return self._fail((err or f"{name}:1: file not found ({self.models_path})",))
            registry, errors = load_registry_text(text, self.models_path)
            if registry is None:
                return self._fail(tuple(errors))
        assert registry is not None
        self.policy_parses += 1
        text, err = self._read_or_error(self.routing_path)
        if err is not None:
            return self._fail((err,))
        warnings: list[str] = []
        if text is None:
            name = os.path.basename(self.routing_path)
            policy = implicit_policy(registry, name)
            warnings.append(f"{name}:1: file not found; using the built-in policy "
                            f"(no rules, global_default {policy.global_default})")
        else:
            loaded, errors, warnings = load_policy_text(text, self.routing_path, registry, home=self.home)
            if loaded is None:
                return self._fail(tuple(errors))
            policy = loaded
        self._engine = RoutingEngine(policy, registry, self.env, roles=self._roles)
        self._registry_sig = sigs[0]
        self._generation += 1
        self._policy_errors = ()
        self.last_warnings = tuple(warnings)
        return LoadState(self._engine, (), tuple(warnings), True, self._generation)

    def _fail(self, errors: tuple[str, ...]) -> LoadState:
        self._policy_errors = errors
        return LoadState(self._engine, errors, (), False, self._generation)
