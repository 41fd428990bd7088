"""What the model's file tools may not do: write .orchestrator/, write through hard links, block on
FIFOs or devices, load huge files; and run_command's environment holds no provider keys."""
import os

import pytest
import trio

from actors.tools import ToolContext, dispatch
from actors.tools._files import EDIT_CAP_BYTES
from actors.tools.workspace import SettingsCache, WorkspaceSettings, parse_settings


async def call(ctx, tool, /, **arguments):
    return await dispatch(ctx, tool, arguments)


# --- H4: .orchestrator/ is the user's ----------------------------------------------------------

@pytest.mark.parametrize("path", [".orchestrator/workspace.yaml", ".orchestrator/MEMORY.md", ".orchestrator/x/y.md"])
async def test_planner_file_tools_cannot_write_the_orchestrator_folder(ctx, workspace, path):
    outcome = await call(ctx, "write_file", path=path, content="tools: {run_command: true}\n")
    assert outcome.is_error and "cannot write .orchestrator/" in outcome.content
    assert not (workspace / ".orchestrator").exists()


async def test_planner_cannot_edit_workspace_yaml_but_memory_tools_still_work(ctx, workspace):
    settings = workspace / ".orchestrator" / "workspace.yaml"
    settings.parent.mkdir()
    settings.write_text("tools: {run_command: false}\n")
    edit = await call(ctx, "edit_file", path=".orchestrator/workspace.yaml", old_string="false", new_string="true")
    assert edit.is_error and settings.read_text() == "tools: {run_command: false}\n"
    assert not (await call(ctx, "memory_add", text="a fact")).is_error


async def test_a_symlink_to_the_orchestrator_folder_does_not_get_around_the_rule(ctx, workspace):
    (workspace / ".orchestrator").mkdir()
    (workspace / "cfg").symlink_to(workspace / ".orchestrator")
    outcome = await call(ctx, "write_file", path="cfg/workspace.yaml", content="tools: {run_command: true}\n")
    assert outcome.is_error and not (workspace / ".orchestrator" / "workspace.yaml").exists()


# --- L6: hard links -----------------------------------------------------------------------------

async def test_write_file_does_not_write_through_a_hard_link_to_an_outside_file(ctx, workspace, outside):
    os.link(outside / "secret.txt", workspace / "innocent.txt")
    outcome = await call(ctx, "write_file", path="innocent.txt", content="overwritten\n")
    assert not outcome.is_error
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert (workspace / "innocent.txt").read_text() == "overwritten\n"


async def test_edit_file_does_not_write_through_a_hard_link(ctx, workspace, outside):
    os.link(outside / "secret.txt", workspace / "innocent.txt")
    outcome = await call(ctx, "edit_file", path="innocent.txt", old_string="top", new_string="no")
    assert not outcome.is_error
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert (workspace / "innocent.txt").read_text() == "no secret\n"


async def test_memory_add_does_not_append_through_a_hard_link(ctx, workspace, outside):
    (workspace / ".orchestrator").mkdir()
    os.link(outside / "secret.txt", workspace / ".orchestrator" / "MEMORY.md")
    assert not (await call(ctx, "memory_add", text="fact")).is_error
    assert (outside / "secret.txt").read_text() == "top secret\n"


async def test_rewriting_a_file_keeps_its_permission_bits(ctx, workspace):
    script = workspace / "run.sh"
    script.write_text("echo a\n")
    script.chmod(0o750)
    await call(ctx, "edit_file", path="run.sh", old_string="a", new_string="b")
    assert script.read_text() == "echo b\n" and (script.stat().st_mode & 0o777) == 0o750
    assert not [p for p in workspace.iterdir() if p.name.endswith(".tmp")]


# --- M7 / M8: sizes and non-regular files -------------------------------------------------------

async def test_edit_file_refuses_a_1_gib_file_by_its_size_before_reading_it(ctx, workspace):
    huge = workspace / "huge.log"
    with open(huge, "wb") as f:
        f.truncate(1 << 30)  # sparse: costs no disk, but reading it would cost 1 GiB of memory
    outcome = await call(ctx, "edit_file", path="huge.log", old_string="a", new_string="b")
    assert outcome.is_error and f"the edit limit is {EDIT_CAP_BYTES} bytes" in outcome.content
    assert huge.stat().st_size == 1 << 30


async def test_write_file_refuses_content_over_the_limit(ctx, workspace):
    outcome = await call(ctx, "write_file", path="big.txt", content="x" * (EDIT_CAP_BYTES + 1))
    assert outcome.is_error and not (workspace / "big.txt").exists()


async def test_read_file_of_one_huge_line_shows_its_head(ctx, workspace):
    (workspace / "one.txt").write_text("y" * (3 << 20) + "\nsecond\n")
    outcome = await call(ctx, "read_file", path="one.txt", start_line=1, end_line=2)
    assert "[truncated: line 1 is 3145729 bytes" in outcome.content
    assert (await call(ctx, "read_file", path="one.txt", start_line=2)).content == "second\n"


@pytest.fixture
def fifo(workspace):
    path = workspace / "pipe.txt"
    os.mkfifo(path)
    # Keep a writer with some data in it: a tool that opens the FIFO does not block on open,
    # so an implementation that reads FIFOs is caught by its answer rather than by a hang.
    writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    os.write(writer, b"data\n" * 4000)
    yield path
    os.close(writer)


async def test_read_file_refuses_a_fifo_before_opening_it(ctx, fifo):
    outcome = await call(ctx, "read_file", path="pipe.txt")
    assert outcome.is_error and "is a FIFO, not a regular file" in outcome.content


async def test_write_file_refuses_to_replace_a_fifo(ctx, fifo):
    outcome = await call(ctx, "write_file", path="pipe.txt", content="x")
    assert outcome.is_error and "FIFO" in outcome.content
    assert fifo.is_fifo()


async def test_forty_fifo_reads_leave_the_thread_pool_usable(ctx, workspace, fifo):
    (workspace / "ok.txt").write_text("fine\n")
    results = []

    async def one():
        results.append(await call(ctx, "read_file", path="pipe.txt"))

    async with trio.open_nursery() as nursery:
        for _ in range(40):
            nursery.start_soon(one)
    assert all(r.is_error for r in results) and len(results) == 40
    assert (await call(ctx, "read_file", path="ok.txt")).content == "fine\n"


async def test_read_file_refuses_a_device(ctx, workspace):
    (workspace / "zero").symlink_to("/dev/zero")
    # /dev/zero is outside the workspace; a device node inside it is refused the same way.
    assert (await call(ctx, "read_file", path="zero")).is_error


async def test_skills_listing_skips_a_fifo_named_like_a_skill(ctx, workspace):
    skills = workspace / "skills"
    skills.mkdir()
    os.mkfifo(skills / "trap.md")
    (skills / "real.md").write_text("---\ndescription: A real skill\n---\nbody\n")
    outcome = await call(ctx, "load_skill", name="nope")
    assert "real: A real skill" in outcome.content and "trap" not in outcome.content


# --- workspace.yaml: parsed once per change, bounded ---------------------------------------------

def test_workspace_yaml_is_parsed_once_per_change(workspace):
    cfg = workspace / ".orchestrator" / "workspace.yaml"
    cfg.parent.mkdir()
    cfg.write_text("tools: {run_command: true}\n")
    cache = SettingsCache()
    for _ in range(5):
        assert cache.load(str(workspace)).run_command
    assert cache.parses == 1
    cfg.write_text("tools: {run_command: false}\n# a longer file: the size changed\n")
    assert not cache.load(str(workspace)).run_command
    assert cache.parses == 2


def test_an_oversized_or_alias_bomb_workspace_yaml_grants_nothing(workspace):
    big = parse_settings("tools: {run_command: true}\n" + "#" * (64 * 1024))
    assert not big.run_command and "larger than" in big.errors[0]
    bomb = parse_settings("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                          "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                          "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                          "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                          "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\ntools: {run_command: true}\n")
    assert not bomb.run_command and "aliases expand" in bomb.errors[0]


# --- run_command's environment -------------------------------------------------------------------

async def test_run_command_does_not_inherit_the_daemons_environment(workspace, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    monkeypatch.setenv("SOME_DAEMON_VAR", "daemon-only")
    ctx = ToolContext(workspace=workspace, run_command_allowed=True)
    outcome = await call(ctx, "run_command", command="env")
    assert "sk-ant-must-not-leak" not in outcome.content and "daemon-only" not in outcome.content
    assert "PATH=" in outcome.content


def test_declared_variables_are_added_but_provider_keys_never_are():
    settings = parse_settings("pass_env: [VIRTUAL_ENV, ANTHROPIC_API_KEY, MY_KEY]\n"
                              "env: {PYTHONDONTWRITEBYTECODE: 1, OPENAI_API_KEY: planted}\n")
    assert settings.errors == ()
    daemon_env = {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "VIRTUAL_ENV": "/venv",
                  "ANTHROPIC_API_KEY": "sk-1", "MY_KEY": "k-2", "OTHER": "x"}
    env = settings.command_env(daemon_env, secret_names={"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "MY_KEY"})
    assert env == {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "VIRTUAL_ENV": "/venv",
                   "PYTHONDONTWRITEBYTECODE": "1"}


def test_settings_default_to_nothing_granted():
    assert WorkspaceSettings().run_command is False
    assert parse_settings("tools: {run_command: yes-please}\n").run_command is False
