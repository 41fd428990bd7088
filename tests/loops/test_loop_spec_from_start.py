"""`loop start` → LoopSpec: one converter, by field name (the wire message and the spec cannot drift)."""
import attrs

from actors.loops.driver import PILOT, PROMPT, WORKFLOW, LoopSpec
from protocol.messages import StartLoop


def test_start_loop_and_loop_spec_have_the_same_fields():
    assert [f.name for f in attrs.fields(StartLoop)] == [f.name for f in attrs.fields(LoopSpec)]


def test_a_pilot_loop_keeps_land_and_drops_a_workflow_and_takes_the_resolved_workspace():
    start = StartLoop(PILOT, "pilot it", land="land it", workflow="wf", every_s=30, max_ticks=4, budget_usd="1.50",
                      workspace="~/repo")
    assert LoopSpec.from_start(start, "/home/u/repo") == LoopSpec(PILOT, "pilot it", "land it", None, 30.0, 4, "1.50",
                                                                  "/home/u/repo")


def test_a_workflow_loop_keeps_its_workflow_and_drops_land():
    spec = LoopSpec.from_start(StartLoop(WORKFLOW, land="x", workflow="nightly"), None)
    assert (spec.land, spec.workflow, spec.workspace) == (None, "nightly", None)
    assert LoopSpec.from_start(StartLoop(PROMPT, "go", land="x", workflow="y"), None).land is None
    assert isinstance(LoopSpec.from_start(StartLoop(PROMPT, "go", every_s=5), None).every_s, float)
