"""`orchestrator mcp`: an MCP client from the official SDK lists the tools and runs run_workflow
against a live daemon, over stdio."""
import json
import os
import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from orchestrator.mcp_server import build_server, max_concurrent
from tests.fakes import Answer
from tests.review.conftest import make_repo

from .conftest import start, write_home

FINAL = "Use a queue.\nConcerns:\n- none\nConfidence: 88"


def _params(paths) -> StdioServerParameters:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(paths.home), "ORCHESTRATOR_STATE": str(paths.state),
           "ORCHESTRATOR_ENDPOINT": paths.endpoint}
    return StdioServerParameters(command=sys.executable, args=["-m", "orchestrator", "mcp", "--max-concurrent", "2"],
                                 env=env)


async def test_an_mcp_client_lists_the_tools_and_runs_a_workflow_against_the_daemon(nursery, short_tmp, fakes):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    anth.script(Answer(text=("draft",)), Answer(text=("looks fine",)), Answer(text=(FINAL,)))
    oai.script(Answer(text=("no gaps",)))
    with anyio.fail_after(60):
        async with Client(_params(paths)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"run_workflow", "delegate", "review", "cost", "trace"} <= tools
            result = await client.call_tool("run_workflow", {"input": "how should I buffer events?"})
            assert not result.is_error, result.content
            data = result.structured_content or json.loads(result.content[0].text)
            assert data["output"] == FINAL and data["confidence"] == 88
            assert [p["status"] for p in data["provenance"]] == ["run"] * 4
            turn_id = data["provenance"][2]["turn_id"]
            traced = await client.call_tool("trace", {"turn_id": turn_id})
            assert not traced.is_error
            assert (traced.structured_content or json.loads(traced.content[0].text))["chosen_model"] == "openai:gpt-5.4"
            oai.script(Answer(text=("FINDINGS: none\n", "VERDICT: SHIP")))
            repo = make_repo(short_tmp)
            review = await client.call_tool("review", {"workspace": str(repo), "backend": "openai:gpt-5.4"})
            assert not review.is_error, review.content
            verdict = review.structured_content or json.loads(review.content[0].text)
            assert (verdict["verdict"], verdict["model"]) == ("SHIP", "openai:gpt-5.4") and verdict["turn_id"]
            not_a_repo = short_tmp / "plain"
            not_a_repo.mkdir()
            failed = await client.call_tool("review", {"workspace": str(not_a_repo)})
            assert failed.is_error and "\n" not in failed.content[0].text.strip(), failed.content
            assert "orchestrator:" not in failed.content[0].text    # the CLI's prefix is not part of the error
    daemon.request_stop("test over")


async def test_delegate_by_tier_runs_one_turn_on_that_tier(nursery, short_tmp, fakes, monkeypatch):
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    oai.script(Answer(text=("renamed",)))
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(paths.home))
    async with Client(build_server(1, paths.endpoint)) as client:
        result = await client.call_tool("delegate", {"task": "rename x to y", "tier": "fast"})
        assert not result.is_error, result.content
        data = result.structured_content or json.loads(result.content[0].text)
        assert (data["output"], data["model"]) == ("renamed", "openai:gpt-5.4-mini")
        bad = await client.call_tool("delegate", {"task": "x", "tier": "huge"})
        assert bad.is_error and "tier must be fast, balanced or deep" in bad.content[0].text
    daemon.request_stop("test over")


def test_the_concurrency_cap_comes_from_the_flag_or_the_environment():
    assert max_concurrent(3, {}) == 3
    assert max_concurrent(None, {"ORCHESTRATOR_MCP_MAX_CONCURRENT": "7"}) == 7
    assert max_concurrent(None, {"ORCHESTRATOR_MCP_MAX_CONCURRENT": "lots"}) == 4
    assert max_concurrent(0, {}) == 1


async def test_an_unknown_workflow_or_turn_is_a_one_line_tool_error_naming_it(nursery, short_tmp, fakes, monkeypatch):
    # These errors are raised inside the client's nursery and arrive as an exception group: they
    # used to reach the host as a bare "Error executing tool run_workflow" (traceback on stderr).
    anth, oai = fakes
    paths = write_home(short_tmp, anth.base_url, oai.base_url)
    daemon = await start(nursery, paths)
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(paths.home))
    async with Client(build_server(1, paths.endpoint)) as client:
        unknown = await client.call_tool("run_workflow", {"input": "x", "workflow": "nope"})
        assert unknown.is_error and "no workflow named 'nope'" in unknown.content[0].text
        assert "[unknown_workflow]" in unknown.content[0].text
        missing = await client.call_tool("trace", {"turn_id": "t_nope"})
        assert missing.is_error and "no turn 't_nope'" in missing.content[0].text
        assert "\n" not in missing.content[0].text.strip()
    daemon.request_stop("test over")
