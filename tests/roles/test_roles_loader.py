"""roles.yaml hot reload: edits apply to the next decision; a broken edit keeps the last good roles."""
import os

from actors.router.context import TurnContext
from actors.router.loader import PolicyLoader

from .conftest import ROLES_TEXT, models_text

KEYS = {"FAKE_ANTHROPIC_KEY": "a", "FAKE_OPENAI_KEY": "o"}
ROUTING = "schema_version: 1\nglobal_default: anthropic:claude-sonnet-4-6\n"


def edit(path, text):
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def chosen(loader, role="fast-readonly"):
    return loader.current().engine.decide(TurnContext(role=role)).chosen_model


def test_roles_edits_apply_to_the_next_decision_and_a_broken_edit_keeps_the_last_good_roles(tmp_path):
    (tmp_path / "models.yaml").write_text(models_text())
    (tmp_path / "routing.yaml").write_text(ROUTING)
    roles = tmp_path / "roles.yaml"
    loader = PolicyLoader(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"), KEYS)
    assert loader.current().engine.roles is None and loader.last_errors == ()
    edit(roles, ROLES_TEXT)
    assert chosen(loader) == "openai:gpt-5.4-mini"
    edit(roles, ROLES_TEXT.replace('primary: "openai:gpt-5.4-mini"\n    cost_tier: low',
                                   'primary: "openai:gpt-5.4"\n    cost_tier: low'))
    assert chosen(loader) == "openai:gpt-5.4"
    edit(roles, ROLES_TEXT.replace("cost_tier: low", "cost_tier: cheap"))
    broken = loader.current()
    assert broken.errors and broken.errors[0].startswith("roles.yaml:")
    assert chosen(loader) == "openai:gpt-5.4"                     # last-known-good
    assert loader.last_errors == broken.errors                    # …and still visible
    edit(roles, ROLES_TEXT)
    assert chosen(loader) == "openai:gpt-5.4-mini" and loader.last_errors == ()


def test_a_models_edit_revalidates_roles_against_the_new_registry(tmp_path):
    (tmp_path / "models.yaml").write_text(models_text())
    (tmp_path / "routing.yaml").write_text(ROUTING)
    edit(tmp_path / "roles.yaml", ROLES_TEXT)
    loader = PolicyLoader(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"), KEYS)
    assert loader.current().errors == ()
    without_mini = models_text().replace('  "openai:gpt-5.4-mini":\n    tier: fast\n    aliases: [mini]\n'
                                         '    pricing: {input_per_mtok: 0.25, output_per_mtok: 2.0}\n', "")
    edit(tmp_path / "models.yaml", without_mini)
    state = loader.current()
    assert any("model 'openai:gpt-5.4-mini' is not registered in models.yaml" in e for e in state.errors)
    assert state.engine.roles is not None and "fast-readonly" in state.engine.roles.roles   # kept


def test_deleting_roles_yaml_removes_the_roles(tmp_path):
    (tmp_path / "models.yaml").write_text(models_text())
    (tmp_path / "routing.yaml").write_text(ROUTING)
    edit(tmp_path / "roles.yaml", ROLES_TEXT)
    loader = PolicyLoader(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"), KEYS)
    assert chosen(loader) == "openai:gpt-5.4-mini"
    (tmp_path / "roles.yaml").unlink()
    decision = loader.current().engine.decide(TurnContext(role="fast-readonly"))
    assert decision.error_code == "unknown_role" and "no roles.yaml" in decision.error


def test_a_role_turn_while_roles_yaml_is_invalid_and_none_was_ever_good_says_so(tmp_path):
    """Not only "there is no roles.yaml": there is one, and the user must fix it."""
    (tmp_path / "models.yaml").write_text(models_text())
    (tmp_path / "routing.yaml").write_text(ROUTING)
    loader = PolicyLoader(str(tmp_path / "models.yaml"), str(tmp_path / "routing.yaml"), KEYS)
    assert chosen(loader) is None                                  # no roles.yaml yet
    edit(tmp_path / "roles.yaml", ROLES_TEXT.replace("cost_tier: low", "cost_tier: cheap"))
    decision = loader.current().engine.decide(TurnContext(role="fast-readonly"))
    assert decision.error_code == "unknown_role"
    assert "invalid" in decision.error
    assert "orchestrator roles check" in decision.error
