"""workflows.yaml is part of `orchestrator check`."""
from orchestrator.check import check_home, kind_of

from tests.roles.conftest import models_text


def _home(tmp_path, workflows: str):
    (tmp_path / "models.yaml").write_text(models_text())
    (tmp_path / "workflows.yaml").write_text(workflows)
    return tmp_path


def test_check_reports_workflows_errors_with_file_and_line(tmp_path):
    home = _home(tmp_path, "workflows:\n  w:\n    steps:\n      - {name: a, prompt: p, model: nobody:x}\n")
    report = check_home(home, env={}, price_check=False)
    assert not report.ok
    assert "workflows.yaml:4: workflows.w.steps[0].model: 'nobody:x' is not registered in models.yaml" in report.errors
    assert str(home / "workflows.yaml") in report.files


def test_a_valid_workflows_file_checks_ok_and_is_recognised_by_content(tmp_path):
    home = _home(tmp_path, "fallback_chains:\n  c: [{model: opus, timeout: 10s}]\n")
    report = check_home(home, env={}, price_check=False)
    assert report.ok, report.errors
    other = tmp_path / "mine.yaml"
    other.write_text("fallback_chains: {}\n")
    assert kind_of(other) == "workflows"


def test_a_workflow_naming_a_role_that_roles_yaml_lacks_is_an_error(tmp_path):
    home = _home(tmp_path, "workflows:\n  w:\n    steps:\n      - {name: a, prompt: p, role: ghost}\n")
    report = check_home(home, env={}, price_check=False)
    assert "workflows.yaml:4: workflows.w.steps[0].role: no role named 'ghost' in roles.yaml" in report.errors


def test_an_invalid_chain_or_step_is_reported_once_not_again_as_missing_where_it_is_used(tmp_path):
    # The docs' example on a home without those models: the chain and the parallel step exist but
    # name unregistered models; "no fallback chain named" / "names no earlier step" were cascades.
    home = _home(tmp_path, (
        "fallback_chains:\n"
        "  production:\n"
        "    - {model: 'nobody:x'}\n"
        "workflows:\n"
        "  w:\n"
        "    steps:\n"
        "      - {name: answer, chain: production, prompt: p}\n"
        "      - {name: check, parallel: [{model: 'nobody:y'}, {model: opus}], prompt: p}\n"
        "      - {name: final, model: opus, prompt: '{steps.check}'}\n"
    ))
    report = check_home(home, env={}, price_check=False)
    assert list(report.errors) == [
        "workflows.yaml:3: fallback_chains.production[0].model: 'nobody:x' is not registered in models.yaml",
        "workflows.yaml:8: workflows.w.steps[1].parallel[0].model: 'nobody:y' is not registered in models.yaml",
    ]


def test_with_an_unreadable_models_yaml_the_workflows_model_names_are_said_to_be_unchecked(tmp_path):
    home = _home(tmp_path, "workflows:\n  w:\n    steps:\n      - {name: a, prompt: p, model: nobody:x}\n")
    (home / "models.yaml").write_text("providers: [not, a, mapping\n")
    report = check_home(home, env={}, price_check=False)
    assert not report.ok
    assert "workflows.yaml:1: model references not checked: models.yaml could not be read" in report.errors
