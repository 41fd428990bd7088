"""`orchestrator roles …` as a new user drives it from docs/roles.md (no daemon needed)."""
import json
import re
import textwrap
from pathlib import Path

import pytest

from actors.config.files import load_registry_text
from actors.roles import parse_roles_text
from orchestrator.cli import main

from .conftest import fixture_registry, models_text

DOCS = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def yaml_blocks(text: str) -> list[str]:
    return [textwrap.dedent(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def test_the_roles_yaml_example_in_the_docs_passes_its_own_check():
    """A user copies the example: it must not fail on an orchestrating agent it never declares."""
    config, errors = parse_roles_text(yaml_blocks(DOCS.read_text())[0], "roles.yaml", fixture_registry())
    assert errors == [] and config is not None


def test_the_roles_example_passes_against_the_models_yaml_the_docs_show_for_it():
    roles, models = yaml_blocks(DOCS.read_text())[:2]
    registry, problems = load_registry_text(models)
    assert registry is not None, problems
    assert parse_roles_text(roles, "roles.yaml", registry)[1] == []


@pytest.fixture
def home(short_tmp, monkeypatch):
    home = short_tmp / "home"
    home.mkdir()
    (home / "models.yaml").write_text(models_text())
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    monkeypatch.setenv("ORCHESTRATOR_STATE", str(short_tmp / "state"))
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "k")
    monkeypatch.setenv("FAKE_OPENAI_KEY", "k")
    return home


def test_roles_check_of_a_draft_outside_the_home_uses_the_homes_models_yaml(home, short_tmp, capsys):
    draft = short_tmp / "draft" / "roles.yaml"
    draft.parent.mkdir()
    draft.write_text((Path(__file__).parent / "fixtures" / "roles.yaml").read_text())
    assert main(["roles", "check", str(draft)]) == 0, capsys.readouterr()
    out = capsys.readouterr()
    assert out.out.strip() == "ok" and "file not found" not in out.err
    draft.write_text(draft.read_text().replace('fallbacks: ["openai:gpt-5.5"]', 'fallbacks: ["openai:gpt-9"]', 1))
    assert main(["roles", "check", str(draft)]) == 1
    assert "'openai:gpt-9' is not registered" in capsys.readouterr().out


def test_roles_resolve_of_a_draft_outside_the_home_works(home, short_tmp, capsys):
    draft = short_tmp / "draft.yaml"
    draft.write_text((Path(__file__).parent / "fixtures" / "roles.yaml").read_text())
    assert main(["roles", "resolve", "capable-reviewer", "--tier", "trivial", "--file", str(draft), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "anthropic:claude-sonnet-4-6"


def test_an_unknown_tier_is_a_usage_error_in_roles_resolve_as_in_ask(home, capsys):
    (home / "roles.yaml").write_text((Path(__file__).parent / "fixtures" / "roles.yaml").read_text())
    assert main(["roles", "resolve", "capable-reviewer", "--tier", "huge"]) == 2     # as `ask --role R --tier huge`
    assert "unknown tier 'huge'" in capsys.readouterr().err
    assert main(["roles", "resolve", "nobody"]) == 1                                  # depends on the file: exit 1
    assert "unknown role 'nobody'" in capsys.readouterr().err


def test_roles_check_without_a_roles_file_says_how_to_start_one(home, capsys):
    assert main(["roles", "check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("roles.yaml:1: file not found") and "docs/roles.md" in out and out.count("\n") == 1


def test_an_alias_instead_of_a_model_id_is_named_as_such():
    """docs/roles.md: "every model … is registered in models.yaml (an alias is named as such)"."""
    from .conftest import ROLES_TEXT

    text = ROLES_TEXT.replace('primary: "openai:gpt-5.4-mini"\n    cost_tier: low',
                              'primary: "mini"\n    cost_tier: low')
    config, errors = parse_roles_text(text, "roles.yaml", fixture_registry())
    assert config is None and len(errors) == 1
    assert errors[0].endswith("roles.fast-readonly.primary: 'mini' is not a model id (expected 'provider:model' as "
                              "in models.yaml): it is an alias of 'openai:gpt-5.4-mini': write the id")
    _, errors = parse_roles_text(text, "roles.yaml", None)       # no registry: still an error, no hint
    assert len(errors) == 1 and errors[0].endswith("'mini' is not a model id (expected 'provider:model' as in "
                                                   "models.yaml)")
