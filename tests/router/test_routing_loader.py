"""Hot reload (spec §4.7, §10.1 test 4): stat-only when unchanged, last-known-good on a broken edit."""
import os

import pytest
from routing_helpers import BASE, BOTH_KEYS, HAIKU, MODELS_YAML, OPUS, SONNET, ctx

from actors.router.loader import PolicyLoader


class CountingStat:
    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, path):
        self.calls.append(os.path.basename(path))
        return os.stat(path)


@pytest.fixture
def files(tmp_path):
    models, routing = tmp_path / "models.yaml", tmp_path / "routing.yaml"
    models.write_text(MODELS_YAML)
    routing.write_text(BASE)
    return models, routing


def edit(path, text):
    """Write and force a distinct mtime: coarse filesystem timestamps must not hide an edit."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_4_editing_the_rule_file_changes_the_next_decision(files):
    models, routing = files
    loader = PolicyLoader(str(models), str(routing), BOTH_KEYS)
    first = loader.current()
    assert first.reloaded and first.errors == () and first.generation == 1
    assert first.engine.decide(ctx("/commit it")).chosen_model == SONNET
    edit(routing, BASE + "rules:\n  - {name: commits, when: {message_matches: '^/commit'}, use: haiku}\n")
    second = loader.current()
    assert second.reloaded and second.generation == 2
    assert second.engine.decide(ctx("/commit it")).chosen_model == HAIKU


def test_unchanged_files_cost_one_stat_each_and_no_parse(files):
    models, routing = files
    stat = CountingStat()
    loader = PolicyLoader(str(models), str(routing), BOTH_KEYS, stat=stat)
    engine = loader.current().engine
    parses = (loader.registry_parses, loader.policy_parses)
    stat.calls.clear()
    for _ in range(5):
        state = loader.current()
        assert state.engine is engine and not state.reloaded and state.errors == ()
    assert stat.calls == ["models.yaml", "routing.yaml", "roles.yaml"] * 5
    assert (loader.registry_parses, loader.policy_parses) == parses == (1, 1)


def test_routing_edit_reparses_only_routing_and_models_edit_reparses_both(files):
    models, routing = files
    loader = PolicyLoader(str(models), str(routing), BOTH_KEYS)
    loader.current()
    edit(routing, BASE.replace("sonnet", "opus"))
    assert loader.current().engine.policy.global_default == OPUS
    assert (loader.registry_parses, loader.policy_parses) == (1, 2)
    edit(models, MODELS_YAML + "  openai:o3: {tier: deep}\n")
    assert "openai:o3" in loader.current().registry.models
    assert (loader.registry_parses, loader.policy_parses) == (2, 3)


def test_broken_edit_keeps_last_known_good_and_reports_errors_once(files):
    models, routing = files
    loader = PolicyLoader(str(models), str(routing), BOTH_KEYS)
    good = loader.current().engine
    edit(routing, BASE + "rules:\n  - {when: {}, use: x:y}\n")
    broken = loader.current()
    assert broken.engine is good and not broken.reloaded
    assert broken.errors == ("routing.yaml:4: rules[0].use: model 'x:y' is not registered",)
    again = loader.current()
    assert again.errors == () and again.engine is good          # reported once per broken version
    assert loader.last_errors == broken.errors                  # …but still visible
    assert again.engine.decide(ctx("x")).chosen_model == SONNET
    edit(routing, BASE.replace("sonnet", "haiku"))
    fixed = loader.current()
    assert fixed.reloaded and fixed.engine.policy.global_default == HAIKU and loader.last_errors == ()


def test_broken_models_file_blocks_routing_edits_until_fixed(files):
    models, routing = files
    loader = PolicyLoader(str(models), str(routing), BOTH_KEYS)
    good = loader.current().engine
    edit(models, "providers: [\n")
    assert loader.current().errors[0].startswith("models.yaml:")
    edit(routing, BASE.replace("sonnet", "opus"))
    state = loader.current()
    assert state.engine is good and state.errors and state.errors[0].startswith("models.yaml:")
    edit(models, MODELS_YAML)
    assert loader.current().engine.policy.global_default == OPUS


def test_model_removed_from_registry_invalidates_policy_that_uses_it(files):
    models, routing = files
    loader = PolicyLoader(str(models), str(routing), BOTH_KEYS)
    good = loader.current().engine
    edit(models, MODELS_YAML.replace("aliases: [sonnet, balanced]", "aliases: [balanced]"))
    state = loader.current()
    assert state.engine is good
    assert state.errors == ("routing.yaml:2: global_default: model 'sonnet' is not registered",)


def test_missing_routing_file_uses_implicit_policy_and_missing_models_has_no_engine(tmp_path, files):
    models, routing = files
    routing.unlink()
    state = PolicyLoader(str(models), str(routing), BOTH_KEYS).current()
    assert state.engine.policy.implicit and state.engine.policy.global_default == SONNET
    assert state.warnings[0].startswith("routing.yaml:1: file not found; using the built-in policy")
    none = PolicyLoader(str(tmp_path / "nope.yaml"), str(routing)).current()
    assert none.engine is None and none.errors[0].startswith("nope.yaml:1: file not found")


def test_forced_reload_reparses_unchanged_files(files):
    models, routing = files
    loader = PolicyLoader(str(models), str(routing), BOTH_KEYS)
    loader.current()
    state = loader.reload()
    assert state.reloaded and (loader.registry_parses, loader.policy_parses) == (2, 2)
    assert not loader.reload(force=False).reloaded
