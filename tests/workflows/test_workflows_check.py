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
