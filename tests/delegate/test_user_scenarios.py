"""What a new user tries first with delegation: deletions, writes outside allow, hanging or missing
test commands and agents, revoke, and delegate_code inside a loop with and without consent."""
from __future__ import annotations


from tests.fakes import Answer

from .conftest import USER_APP, delegate_call, git, tool_result


async def test_a_delegate_that_deletes_the_users_dirty_files_is_rolled_back_with_their_edits(stack):
    data = await stack.rolled_back("delete")
    assert any("notes.txt" in r for r in data["reasons"]), data


async def test_a_delegate_that_writes_outside_allow_is_rolled_back_and_untracked_user_files_survive(stack):
    data = await stack.rolled_back("outside")
    assert data["rolled_back"] == ["notes.txt", "scratch.txt", "src/app.py"], data


async def test_revoke_then_a_turn_refuses(stack):
    assert stack.consent("--yes").returncode == 0
    assert stack.cli("revoke").returncode == 0
    before = stack.tree()
    _, events = await stack.turn(None, delegate_call(), Answer(text=("ok",)))
    assert "no consent" in tool_result(events).content
    assert stack.runs() == [] and stack.tree() == before


def set_workspace_yaml(stack, extra: str = "", **over: str) -> None:
    lines = {"agent": '"agent:coder"', "effort": "medium", "test_command": '"! grep -rq BROKEN src"',
             "allow": '["src/**"]', **over}
    body = "delegate:\n" + "".join(f"  {k}: {v}\n" for k, v in lines.items()) + extra
    (stack.ws / ".orchestrator" / "workspace.yaml").write_text(body)


async def test_a_test_command_that_hangs_times_out_and_is_rolled_back(stack):
    set_workspace_yaml(stack, test_command='"sleep 30"', test_timeout_s="1")
    await stack.rolled_back()


async def test_a_missing_test_command_is_not_accepted(stack):
    set_workspace_yaml(stack, test_command='"no-such-test-runner-xyz"')
    await stack.rolled_back()


async def test_an_agent_command_that_is_not_found_opens_the_breaker(stack):
    models = stack.paths.home / "models.yaml"
    models.write_text(models.read_text().replace('command: ["', 'command: ["/nonexistent/agent", "'))
    await stack.restart()
    assert "breaker" in await stack.rolled_back()


async def test_an_agent_that_hangs_is_killed_at_its_timeout_and_rolled_back(stack):
    models = stack.paths.home / "models.yaml"
    models.write_text(models.read_text().replace("timeout_s: 30", "timeout_s: 2"))
    await stack.restart()
    assert "breaker" in await stack.rolled_back("slow")


async def _loop_one_tick(stack):
    import trio
    from orchestrator.client import open_client
    from protocol.messages import ShowLoop, StartLoop
    async with open_client(stack.daemon.paths.endpoint) as client:
        info = await client.request("loops", StartLoop("prompt", "implement T1", max_ticks=1, workspace=str(stack.ws)))
        loop_id = info.loop["id"]
        with trio.fail_after(30):
            while True:
                loop = (await client.request("loops", ShowLoop(loop_id))).loop
                if loop["state"] != "running" and loop["current_tick"] is None:
                    return loop
                await trio.sleep(0.05)


async def test_a_loop_without_consent_writes_nothing(stack):
    before = stack.tree()
    stack.fake.script(delegate_call(), Answer(text=("myself\n",)))
    loop = await _loop_one_tick(stack)
    assert loop["stop_reason"] == "max_ticks"
    assert stack.runs() == [] and stack.tree() == before
    tools = [t["function"]["name"] for t in stack.fake.requests[0].json.get("tools", [])]
    assert "delegate_code" not in tools


async def test_a_loop_with_consent_delegates(stack):
    assert stack.consent("--yes").returncode == 0
    stack.fake.script(delegate_call(), Answer(text=("done\n",)))
    loop = await _loop_one_tick(stack)
    assert loop["stop_reason"] == "max_ticks"
    assert len(stack.runs()) == 1
    assert (stack.ws / "src" / "pkg" / "new.py").exists()


async def test_a_delegate_that_stashes_the_users_edits_is_rolled_back_with_index_and_tree_as_before(stack):
    git(stack.ws, "add", "src/app.py")                       # staged …
    (stack.ws / "src" / "app.py").write_text(USER_APP + "# and more, unstaged\n")   # … and edited again
    staged = git(stack.ws, "diff", "--cached")
    await stack.rolled_back("stash")
    assert git(stack.ws, "diff", "--cached") == staged


async def test_an_agent_that_reports_absolute_paths_in_backticks_is_accepted(stack):
    data = (await stack.delegate("absolute")).data
    assert data["accepted"] and data["files"] == ["src/app.py"], data


async def test_an_agent_that_leaves_a_background_process_running_is_judged_when_it_exits(stack):
    models = stack.paths.home / "models.yaml"
    models.write_text(models.read_text().replace("timeout_s: 30", "timeout_s: 10"))
    await stack.restart()
    data = (await stack.delegate("background")).data
    assert data["accepted"] and data["files"] == ["src/app.py"], data


async def test_stopping_the_daemon_while_the_agent_works_rolls_back_what_it_wrote(stack):
    import trio
    before = stack.tree()

    async def stop(turn) -> None:
        stack.stop()

    try:
        await stack.while_the_agent_works(stop)
    except Exception:
        pass   # the turn ends with the daemon: the client may see it go
    with trio.fail_after(40):
        await stack.stopped.wait()
    assert stack.tree() == before


async def test_a_delegate_that_removes_a_whole_folder_gets_every_file_in_it_back(stack):
    (stack.ws / "src" / "draft.py").write_text("the user's untracked draft\n")
    await stack.rolled_back("rmtree")


async def test_two_sessions_on_one_workspace_by_different_paths_delegate_one_at_a_time(stack):
    import trio
    from orchestrator.client import open_client
    assert stack.consent("--yes").returncode == 0
    link = stack.root / "link"
    link.symlink_to(stack.ws)
    stack.mode("exclusive")
    stack.fake.script(delegate_call("T1", "d1"), delegate_call("T2", "d2"), Answer(text=("done",)),
                      Answer(text=("done",)))

    async def one(where, task_status=trio.TASK_STATUS_IGNORED):
        async with open_client(stack.daemon.paths.endpoint) as client:
            session = (await client.open_session(workspace=str(where))).session_id
            async with client.turn(session, "implement") as turn:
                task_status.started()
                async for _ in turn:
                    pass

    async with trio.open_nursery() as nursery:
        await nursery.start(one, stack.ws)
        await nursery.start(one, link)
    assert not (stack.control / "overlap").exists()
    assert (stack.ws / "src" / "app.py").read_text() == USER_APP + "# feature\n" * 2


async def test_an_open_breaker_names_the_command_that_closes_it(stack):
    first = await stack.delegate("crash")
    reset = f"orchestrator delegate reset --session {first.session_id}"
    assert reset in first.data["breaker"]
    again = await stack.delegate(None, first.session_id, call=delegate_call(id_="d2"), then=(Answer(text=("myself",)),))
    assert reset in again.result.content
