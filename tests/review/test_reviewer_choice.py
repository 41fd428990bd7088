"""The cross-family rule, the verdict format and the review config sections (all sans-IO)."""
import pytest

from actors.review.choose import choose_reviewer
from actors.review.config import review_config_text
from actors.review.precedence import Layer, resolve
from actors.review.verdict import Finding, UnparseableReview, parse_review, review_prompt

from .registry_fixture import registry

REG = registry()
CLAUDE = "anthropic:claude-sonnet-4-6"


def choose(source: str, spec: str, writer: str | None, unusable=None):
    return choose_reviewer(resolve([Layer(source, spec)], REG), REG, writer, unusable)


def test_default_reviewer_of_the_writers_family_gives_way_to_another_family_and_says_so():
    choice = choose("default", CLAUDE, writer=CLAUDE)
    assert choice.model == "codex:gpt-5.5"        # deepest other-family model (declared family openai)
    assert "is the writer's family (anthropic)" in choice.notes[0] and "codex:gpt-5.5" in choice.notes[0]


def test_the_other_family_pick_avoids_models_that_cannot_run():
    choice = choose("default", CLAUDE, writer=CLAUDE, unusable={"codex:gpt-5.5": "not_configured"})
    assert choice.model == "openai:gpt-5.4"


def test_an_explicit_same_family_pin_runs_and_says_so():
    choice = choose("task", "anthropic:claude-opus-4-8:high", writer=CLAUDE)
    assert (choice.model, choice.effort) == ("anthropic:claude-opus-4-8", "high")
    assert choice.notes[0].startswith("same-family review:") and "pinned explicitly by task" in choice.notes[0]


def test_a_backend_without_a_model_never_lands_on_the_writers_family():
    choice = choose("env", "anthropic", writer=CLAUDE)
    assert not choice.ok and "only models of the writer's family" in choice.error


def test_a_backend_picks_its_deepest_model():
    assert choose("config", "openai", writer=CLAUDE).model == "openai:gpt-5.4"


def test_family_defaults_to_the_providers_kind_and_can_be_declared():
    assert REG.family_of("openai:gpt-5.4") == "openai"
    assert REG.family_of("codex:gpt-5.5") == "openai"     # declared: the codex cli runs OpenAI models
    assert REG.family_of("local:llama3:8b") == "openai_compatible"
    # The codex reviewer is the writer's family when OpenAI wrote: the default gives way again.
    assert choose("default", "codex:gpt-5.5", writer="openai:gpt-5.4").model == "anthropic:claude-opus-4-8"


def test_without_a_known_writer_the_spec_runs_as_resolved():
    choice = choose("default", CLAUDE, writer=None)
    assert choice.model == CLAUDE and choice.notes == ()


def test_backend_none_skips_the_review():
    choice = choose("config", "none", writer=CLAUDE)
    assert choice.skipped and choice.model is None


def test_an_unregistered_model_cannot_run_and_says_how_to_fix_it():
    choice = choose("task", "openai:gpt-9", writer=CLAUDE)
    assert not choice.ok and "not registered in models.yaml" in choice.error


def test_no_other_family_at_all_is_an_error_not_a_self_review():
    only = registry("""\
providers: {anthropic: {kind: anthropic}}
models: {"anthropic:a": {tier: deep}, "anthropic:b": {}}
""")
    choice = choose_reviewer(resolve([Layer("default", "anthropic:a")], only), only, "anthropic:b")
    assert not choice.ok and "no model outside the writer's family" in choice.error


# --- the verdict format ----------------------------------------------------------------------------

def test_verdict_and_findings_parse_from_the_documented_format():
    review = parse_review("Looks mostly fine.\n\nFINDINGS:\n- high | app.py:3 | divides by zero\n"
                          "- low | README.md | flag undocumented\n- plain remark\nVERDICT: NEEDS_WORK\n")
    assert review.verdict == "NEEDS_WORK"
    assert review.findings == (Finding("divides by zero", "high", "app.py", 3),
                               Finding("flag undocumented", "low", "README.md", None),
                               Finding("plain remark"))


@pytest.mark.parametrize("line", ["VERDICT: SHIP", "**VERDICT: SHIP**", "`VERDICT: SHIP`", "Verdict:  SHIP.",
                                  "VERDICT: __SHIP__"])
def test_verdict_line_tolerates_markdown(line):
    assert parse_review(f"FINDINGS: none\n{line}").verdict == "SHIP"


def test_the_last_verdict_line_wins():
    assert parse_review("VERDICT: SHIP\nactually no\nVERDICT: MAJOR_RETHINK").verdict == "MAJOR_RETHINK"


@pytest.mark.parametrize(("answer", "why"), [("Looks good to me!", "no 'VERDICT:"),
                                             ("VERDICT: ship", "not one of"),
                                             ("VERDICT: LGTM", "not one of"), ("", "no 'VERDICT:")])
def test_an_unparseable_answer_is_an_error_never_a_guess(answer, why):
    with pytest.raises(UnparseableReview, match=why):
        parse_review(answer)


def test_the_prompt_carries_the_format_and_the_diff():
    prompt = review_prompt("+x = 1", base="HEAD", workspace="/w", untracked=2)
    assert "VERDICT: <SHIP|NEEDS_WORK|MAJOR_RETHINK>" in prompt and "```diff\n+x = 1\n```" in prompt
    assert "2 untracked file(s)" in prompt
    assert "````diff\n+```py\n" in review_prompt("+```py\n", base="HEAD", workspace="/w")   # a longer fence


# --- review: sections --------------------------------------------------------------------------------

def test_review_section_gives_the_backend_and_its_line():
    found = review_config_text("log_level: info\nreview:\n  backend: codex:gpt-5.5\n", "daemon.yaml")
    assert (found.backend, found.origin) == ("codex:gpt-5.5", "daemon.yaml:3: review.backend")


@pytest.mark.parametrize(("text", "error"), [
    ("review: codex\n", "daemon.yaml:1: review: expected a mapping"),
    ("x: 1\nreview: {backend: 3}\n", "daemon.yaml:2: review: backend: expected a review spec"),
    ("review: {backend: codex, model: x}\n", "unknown key(s) model"),
    ("review: [\n", "daemon.yaml:"),
])
def test_malformed_review_sections_are_file_line_key_errors(text, error):
    found = review_config_text(text, "daemon.yaml")
    assert found.backend is None and error in found.errors[0]


def test_a_missing_file_or_section_is_no_config():
    assert review_config_text(None, "daemon.yaml").backend is None
    assert review_config_text("tools: {run_command: true}\n", ".orchestrator/workspace.yaml").backend is None
