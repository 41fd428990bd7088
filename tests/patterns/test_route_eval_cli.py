"""`orchestrator patterns route-eval` end to end on tiny synthetic CSVs (DESIGN §4.7), in a subprocess."""
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHEAP, DEAR = "local:small", "cloud:large"


def write(path: Path, header, rows) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def route_eval(*args: str):
    return subprocess.run([sys.executable, "-m", "orchestrator", "patterns", "route-eval", *args, "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def synthetic(tmp_path: Path):
    """Maths prompts need the dear model, greetings do not; the cheap one is 20× cheaper."""
    prompts, outcomes = [], []
    for i in range(30):
        prompts.append((f"m{i}", f"prove the integral identity number {i} step by step", "ignored"))
        outcomes += [(f"m{i}", DEAR, 1.0, 0.02), (f"m{i}", CHEAP, 0.0, 0.001)]
        prompts.append((f"g{i}", f"say hello and good morning to the team, version {i}", "ignored"))
        outcomes += [(f"g{i}", DEAR, 1.0, 0.02), (f"g{i}", CHEAP, 1.0, 0.001)]
    train_p = write(tmp_path / "P.csv", ["prompt_id", "prompt_text", "category"], prompts)
    train_o = write(tmp_path / "O.csv", ["prompt_id", "model", "quality", "cost_usd", "extra"],
                    [(*o, "x") for o in outcomes])
    test_p = write(tmp_path / "T.csv", ["prompt_id", "prompt_text"],
                   [("t-math", "prove the integral identity number 77 step by step"),
                    ("t-hello", "say hello and good morning to the team, version 77"),
                    ("t-new", "qqq zzz")])
    return train_p, train_o, test_p


def test_route_eval_prints_one_decision_per_test_prompt_and_default_cost_weight(tmp_path):
    p, o, t = synthetic(tmp_path)
    run = route_eval("--train-prompts", str(p), "--train-outcomes", str(o), "--test-prompts", str(t))
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == 3 * 8
    assert {tuple(sorted(d)) for d in lines} == {("confidence", "cost_weight", "model", "prompt_id", "source")}
    assert sorted({d["cost_weight"] for d in lines}) == [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    assert {d["model"] for d in lines} <= {CHEAP, DEAR}
    by = {(d["prompt_id"], d["cost_weight"]): d for d in lines}
    assert (by[("t-math", 0.05)]["model"], by[("t-math", 0.05)]["source"]) == (DEAR, "pattern")
    assert (by[("t-hello", 0.05)]["model"], by[("t-hello", 0.05)]["source"]) == (CHEAP, "pattern")
    assert by[("t-new", 0.05)]["source"] == "prior" and by[("t-new", 0.05)]["confidence"] == 0
    assert by[("t-math", 1.0)]["model"] == CHEAP


def test_route_eval_takes_repeated_cost_weights(tmp_path):
    p, o, t = synthetic(tmp_path)
    run = route_eval("--train-prompts", str(p), "--train-outcomes", str(o), "--test-prompts", str(t),
                     "--cost-weight", "0", "--cost-weight", "0.4", "--fingerprint", "hashed")
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["cost_weight"] for line in run.stdout.splitlines()] == [0, 0.4] * 3


def test_route_eval_names_a_missing_file_in_one_line(tmp_path):
    p, o, _ = synthetic(tmp_path)
    run = route_eval("--train-prompts", str(p), "--train-outcomes", str(o), "--test-prompts",
                     str(tmp_path / "absent.csv"))
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.strip() == f"error: {tmp_path / 'absent.csv'}: no such file"


def test_route_eval_names_missing_columns(tmp_path):
    p, _, t = synthetic(tmp_path)
    bad = write(tmp_path / "bad.csv", ["prompt_id", "model", "score"], [("m1", DEAR, "1")])
    run = route_eval("--train-prompts", str(p), "--train-outcomes", str(bad), "--test-prompts", str(t))
    assert run.returncode == 1
    assert "missing column(s) quality, cost_usd" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_route_eval_refuses_out_of_range_quality_with_the_line_number(tmp_path):
    p, _, t = synthetic(tmp_path)
    bad = write(tmp_path / "bad.csv", ["prompt_id", "model", "quality", "cost_usd"],
                [("m1", DEAR, "1", "0.1"), ("m2", DEAR, "7", "0.1")])
    run = route_eval("--train-prompts", str(p), "--train-outcomes", str(bad), "--test-prompts", str(t))
    assert run.returncode == 1 and "bad.csv:3: quality must be in [0, 1]" in run.stderr


def test_route_eval_refuses_outcomes_that_match_no_training_prompt(tmp_path):
    p, _, t = synthetic(tmp_path)
    bad = write(tmp_path / "bad.csv", ["prompt_id", "model", "quality", "cost_usd"], [("other", DEAR, "1", "0.1")])
    run = route_eval("--train-prompts", str(p), "--train-outcomes", str(bad), "--test-prompts", str(t))
    assert run.returncode == 1 and "no training outcome matches a training prompt_id" in run.stderr


def test_route_eval_refuses_a_cost_weight_outside_zero_to_one(tmp_path):
    p, o, t = synthetic(tmp_path)
    run = route_eval("--train-prompts", str(p), "--train-outcomes", str(o), "--test-prompts", str(t),
                     "--cost-weight", "1.5")
    assert run.returncode == 1 and "--cost-weight must be in [0, 1]" in run.stderr
