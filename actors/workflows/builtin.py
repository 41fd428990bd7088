"""The built-in ``qc`` workflow (the seed's five-step loop), available without workflows.yaml.

produce → self-review (the producer's own model, by design: a pin) → cross-check (never the
producer's family) → synthesize (the deepest tier). Step 5, "deliver", is the run's result: the
synthesizer's output with its confidence, concerns and the provenance of every step.
"""
from __future__ import annotations

from importlib import resources

from actors.workflows.model import Selector, Step, Workflow

PRODUCE = "Complete this task:\n{input}"
SELF_REVIEW = """Review this output for errors, omissions and quality.
TASK: {input}
OUTPUT: {steps.produce}
Score 1-10 on: accuracy, completeness, clarity. List specific issues to fix."""
CROSS_CHECK = """Independent review. Do NOT assume the draft is correct.
TASK: {input}
DRAFT: {steps.produce}
SELF-REVIEW: {steps.self-review}
Identify: factual errors, logical gaps, missing context, biases."""
SYNTHESIZE = """Synthesize and produce the final output.
TASK: {input}
DRAFT: {steps.produce}
SELF-REVIEW: {steps.self-review}
CROSS-CHECK: {steps.cross-check}
Resolve any conflicts. Produce the best possible final output.
List any unresolved concerns under a line 'Concerns:' (one '- ' bullet each).
End with a line 'Confidence: N' (0-100)."""

QC = Workflow(
    name="qc",
    description="produce → self-review → cross-check → synthesize, with provenance and a confidence score",
    steps=(
        Step("produce", PRODUCE, Selector(tier="balanced")),
        Step("self-review", SELF_REVIEW, Selector(same_model_as="produce"), skip_when=frozenset({"time_critical"}),
             review=True),
        Step("cross-check", CROSS_CHECK, Selector(other_family_than="produce"),
             skip_when=frozenset({"low_stakes", "time_critical", "has_tests", "creative"}), review=True),
        Step("synthesize", SYNTHESIZE, Selector(tier="deep"), skip_when=frozenset({"low_stakes", "time_critical"})),
    ),
)

BUILTIN = {QC.name: QC}


def example_text() -> str:
    """The shipped example workflows.yaml (a fallback chain and a workflow over it)."""
    return resources.files("actors.workflows").joinpath("example_workflows.yaml").read_text()
