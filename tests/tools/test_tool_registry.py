import json
from pathlib import Path

import pytest

from actors.tools import TOOL_NAMES, ToolContext, builtin_tool_definitions, dispatch

FILE_AND_STATE_TOOLS = {"read_file", "list_files", "write_file", "edit_file", "memory_add", "memory_replace",
                        "load_skill"}


def names(ctx, allowed=None):
    return {d.name for d in builtin_tool_definitions(ctx, allowed)}


def test_definitions_are_json_schema_objects(workspace):
    defs = builtin_tool_definitions(ToolContext(workspace=workspace, run_command_allowed=True))
    assert {d.name for d in defs} == set(TOOL_NAMES)
    for d in defs:
        assert d.description
        assert d.input_schema["type"] == "object"
        assert set(d.input_schema["required"]) <= set(d.input_schema["properties"])
        json.dumps(d.input_schema)


def test_run_command_is_offered_only_when_the_workspace_allows_it(workspace):
    assert names(ToolContext(workspace=workspace)) == FILE_AND_STATE_TOOLS
    assert "run_command" in names(ToolContext(workspace=workspace, run_command_allowed=True))


async def test_run_command_cannot_be_dispatched_unless_allowed(ctx, workspace):
    outcome = await dispatch(ctx, "run_command", {"command": "touch made"})
    assert outcome.is_error and outcome.content == "unknown tool: run_command"
    assert not (workspace / "made").exists()


def test_workers_are_not_offered_memory_tools_even_if_allowed(workspace):
    worker = ToolContext(workspace=workspace, is_worker=True, run_command_allowed=True)
    offered = names(worker, allowed={"memory_add", "memory_replace", "read_file", "load_skill"})
    assert offered == {"read_file", "load_skill"}
    assert "memory_add" not in names(worker)


async def test_worker_calling_memory_add_gets_unknown_tool(workspace):
    worker = ToolContext(workspace=workspace, is_worker=True)
    outcome = await dispatch(worker, "memory_add", {"text": "x"}, allowed={"memory_add"})
    assert outcome.is_error and outcome.content == "unknown tool: memory_add"
    assert not (workspace / ".orchestrator").exists()


def test_allowed_filters_the_offer(ctx):
    assert names(ctx, allowed={"read_file", "no_such_tool"}) == {"read_file"}
    assert names(ctx, allowed=set()) == set()


async def test_dispatch_refuses_tools_outside_allowed(ctx):
    outcome = await dispatch(ctx, "write_file", {"path": "a", "content": ""}, allowed={"read_file"})
    assert outcome.is_error and outcome.content == "unknown tool: write_file"


async def test_unknown_tool_name_is_an_error_outcome(ctx):
    outcome = await dispatch(ctx, "rm_rf", {})
    assert outcome.is_error and outcome.content == "unknown tool: rm_rf"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("read_file", ["a.txt"], "input must be a JSON object"),
        ("read_file", {}, "missing required argument path"),
        ("read_file", {"file_path": "a.txt"}, "unexpected argument file_path; expected: path"),
        ("read_file", {"path": 3}, "path must be string"),
        ("read_file", {"path": "a.txt", "start_line": True}, "start_line must be integer >= 1"),
        ("read_file", {"path": "a.txt", "start_line": 0}, "start_line must be integer >= 1"),
        ("edit_file", {"path": "a.txt", "old_string": "x"}, "missing required argument new_string"),
        ("list_files", {"recursive": "yes"}, "recursive must be boolean"),
        ("write_file", {"path": "", "content": ""}, "path must be a non-empty string"),
    ],
)
async def test_bad_input_is_reported_not_raised(ctx, tool, arguments, message):
    outcome = await dispatch(ctx, tool, arguments)
    assert outcome.is_error
    assert message in outcome.content


async def test_null_optional_arguments_count_as_omitted(ctx, workspace):
    (workspace / "a.txt").write_text("one\n")
    outcome = await dispatch(ctx, "read_file", {"path": "a.txt", "start_line": None, "end_line": None})
    assert not outcome.is_error and outcome.content == "one\n"


def test_no_workspace_means_no_tools():
    assert builtin_tool_definitions(ToolContext()) == ()


def test_workspace_must_be_absolute():
    with pytest.raises(ValueError, match="absolute"):
        ToolContext(workspace=Path("relative/dir"))


def test_outcome_becomes_a_tool_result_block():
    from actors.tools import ToolOutcome

    block = ToolOutcome("boom", is_error=True).to_result_block("toolu_1")
    assert (block.tool_use_id, block.content, block.is_error) == ("toolu_1", "boom", True)
