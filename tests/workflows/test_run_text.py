"""The text form of `orchestrator run`'s terminal line."""
from orchestrator.workflows_cli import _terminal


def _completed(steps: int) -> dict:
    prov = [{"step": f"s{i}", "model": "demo:swift", "status": "run", "reason": "pinned"} for i in range(steps)]
    return {"type": "workflow.completed",
            "result": {"provenance": prov, "confidence": 70, "steps_completed": steps}}


def test_the_summary_line_says_1_step_not_1_steps(capsys):
    _terminal(_completed(1), as_json=False)
    assert capsys.readouterr().err.splitlines()[-1] == "[1 step · confidence 70]"
    _terminal(_completed(3), as_json=False)
    assert capsys.readouterr().err.splitlines()[-1] == "[3 steps · confidence 70]"
