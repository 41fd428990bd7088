from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.tools import ToolContext, ToolError, dispatch
from actors.tools._files import READ_CAP_BYTES
from actors.tools._paths import confine


async def call(ctx, tool, /, **arguments):
    return await dispatch(ctx, tool, arguments)


# --- happy paths ---------------------------------------------------------------------------

async def test_read_file_returns_the_text(ctx, workspace):
    (workspace / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    outcome = await call(ctx, "read_file", path="notes.txt")
    assert not outcome.is_error and outcome.content == "alpha\nbeta\ngamma\n"


async def test_read_file_line_range_is_one_based_and_inclusive(ctx, workspace):
    (workspace / "notes.txt").write_text("alpha\nbeta\ngamma\ndelta\n")
    assert (await call(ctx, "read_file", path="notes.txt", start_line=2, end_line=3)).content == "beta\ngamma\n"
    assert (await call(ctx, "read_file", path="notes.txt", start_line=4)).content == "delta\n"
    past_end = await call(ctx, "read_file", path="notes.txt", start_line=9)
    assert past_end.is_error and "past the end" in past_end.content


async def test_read_file_missing_and_directory_are_errors(ctx, workspace):
    (workspace / "d").mkdir()
    assert "file not found: nope.txt" in (await call(ctx, "read_file", path="nope.txt")).content
    assert "is a directory" in (await call(ctx, "read_file", path="d")).content


async def test_read_file_caps_large_files_and_says_where_to_continue(ctx, workspace):
    line = "x" * 99 + "\n"
    (workspace / "big.txt").write_text(line * (READ_CAP_BYTES // 100 + 500))
    outcome = await call(ctx, "read_file", path="big.txt")
    assert not outcome.is_error
    assert len(outcome.content) < READ_CAP_BYTES + 200
    assert "[truncated: showed lines 1-2621" in outcome.content
    rest = await call(ctx, "read_file", path="big.txt", start_line=2622)
    assert rest.content == line * (READ_CAP_BYTES // 100 + 500 - 2621)


async def test_read_file_refuses_to_dump_binary(ctx, workspace):
    (workspace / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    outcome = await call(ctx, "read_file", path="img.png")
    assert outcome.is_error and "binary file" in outcome.content
    assert "IHDR" not in outcome.content


async def test_list_files_lists_one_level_sorted_with_dirs_marked(ctx, workspace):
    (workspace / "src").mkdir()
    (workspace / "src" / "deep.py").write_text("")
    (workspace / "b.txt").write_text("")
    (workspace / "a.py").write_text("")
    assert (await call(ctx, "list_files")).content == "a.py\nb.txt\nsrc/"
    assert (await call(ctx, "list_files", path="src")).content == "src/deep.py"


async def test_list_files_recursive_with_pattern(ctx, workspace):
    (workspace / "src" / "pkg").mkdir(parents=True)
    (workspace / "src" / "pkg" / "mod.py").write_text("")
    (workspace / "src" / "readme.md").write_text("")
    (workspace / "top.py").write_text("")
    outcome = await call(ctx, "list_files", pattern="*.py", recursive=True)
    assert outcome.content == "top.py\nsrc/pkg/mod.py"  # shallow entries first, so a cap keeps them
    none = await call(ctx, "list_files", pattern="*.rs", recursive=True)
    assert not none.is_error and "no entries" in none.content


async def test_list_files_caps_entries(ctx, workspace):
    for i in range(1005):
        (workspace / f"f{i:04}").write_text("")
    lines = (await call(ctx, "list_files")).content.splitlines()
    assert len(lines) == 1001 and lines[-1].startswith("[listing truncated at 1000 entries")


async def test_write_file_creates_parent_directories(ctx, workspace):
    outcome = await call(ctx, "write_file", path="new/dir/hello.txt", content="héllo\n")
    assert not outcome.is_error and "new/dir/hello.txt" in outcome.content and "new file" in outcome.content
    assert (workspace / "new" / "dir" / "hello.txt").read_text(encoding="utf-8") == "héllo\n"
    again = await call(ctx, "write_file", path="new/dir/hello.txt", content="bye\n")
    assert "replaced" in again.content and (workspace / "new/dir/hello.txt").read_text() == "bye\n"


async def test_edit_file_replaces_a_unique_string(ctx, workspace):
    (workspace / "app.py").write_text("x = 1\ny = 2\n")
    outcome = await call(ctx, "edit_file", path="app.py", old_string="y = 2", new_string="y = 3")
    assert not outcome.is_error and "replaced 1 occurrence" in outcome.content
    assert (workspace / "app.py").read_text() == "x = 1\ny = 3\n"


async def test_edit_file_old_string_not_found(ctx, workspace):
    (workspace / "app.py").write_text("x = 1\n")
    outcome = await call(ctx, "edit_file", path="app.py", old_string="z = 1", new_string="z = 2")
    assert outcome.is_error and "old_string not found in app.py" in outcome.content
    assert (workspace / "app.py").read_text() == "x = 1\n"


async def test_edit_file_ambiguous_old_string_needs_replace_all(ctx, workspace):
    (workspace / "app.py").write_text("a = 0\na = 0\n")
    outcome = await call(ctx, "edit_file", path="app.py", old_string="a = 0", new_string="a = 1")
    assert outcome.is_error and "occurs 2 times" in outcome.content
    assert (workspace / "app.py").read_text() == "a = 0\na = 0\n"
    outcome = await call(ctx, "edit_file", path="app.py", old_string="a = 0", new_string="a = 1", replace_all=True)
    assert not outcome.is_error and (workspace / "app.py").read_text() == "a = 1\na = 1\n"


# --- confinement ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["../outside/secret.txt", "sub/../../outside/secret.txt"])
async def test_dotdot_escapes_are_refused(ctx, workspace, outside, path):
    (workspace / "sub").mkdir()
    outcome = await call(ctx, "read_file", path=path)
    assert outcome.is_error and outcome.content == f"path escapes the workspace: {path}"


async def test_dotdot_that_stays_inside_is_fine(ctx, workspace):
    (workspace / "sub").mkdir()
    (workspace / "a.txt").write_text("ok\n")
    assert (await call(ctx, "read_file", path="sub/../a.txt")).content == "ok\n"


async def test_absolute_paths_are_refused_even_inside_the_workspace(ctx, workspace, outside):
    (workspace / "a.txt").write_text("ok\n")
    for path in (str(outside / "secret.txt"), str(workspace / "a.txt")):
        outcome = await call(ctx, "read_file", path=path)
        assert outcome.is_error and outcome.content.startswith(f"path escapes the workspace: {path}")


async def test_read_through_symlink_escape_is_refused(ctx, workspace, outside):
    (workspace / "linkdir").symlink_to(outside)
    (workspace / "linkfile").symlink_to(outside / "secret.txt")
    for path in ("linkdir/secret.txt", "linkfile"):
        outcome = await call(ctx, "read_file", path=path)
        assert outcome.is_error and outcome.content == f"path escapes the workspace: {path}"
    listing = await call(ctx, "list_files", path="linkdir")
    assert listing.is_error and "escapes" in listing.content


async def test_symlink_within_the_workspace_is_followed(ctx, workspace):
    (workspace / "real.txt").write_text("real\n")
    (workspace / "alias.txt").symlink_to("real.txt")
    assert (await call(ctx, "read_file", path="alias.txt")).content == "real\n"


async def test_write_through_symlinked_parent_is_refused(ctx, workspace, outside):
    (workspace / "linkdir").symlink_to(outside)
    outcome = await call(ctx, "write_file", path="linkdir/new/planted.txt", content="x")
    assert outcome.is_error and "path escapes the workspace" in outcome.content
    assert not (outside / "new").exists()


async def test_write_through_dangling_symlink_is_refused(ctx, workspace, outside):
    (workspace / "trap.txt").symlink_to(outside / "planted.txt")
    outcome = await call(ctx, "write_file", path="trap.txt", content="x")
    assert outcome.is_error and "path escapes the workspace" in outcome.content
    assert not (outside / "planted.txt").exists()


async def test_edit_through_symlink_escape_is_refused(ctx, workspace, outside):
    (workspace / "linkfile").symlink_to(outside / "secret.txt")
    outcome = await call(ctx, "edit_file", path="linkfile", old_string="top", new_string="no")
    assert outcome.is_error and "path escapes the workspace" in outcome.content
    assert (outside / "secret.txt").read_text() == "top secret\n"


async def test_workers_cannot_write_memory_or_skills_through_file_tools(workspace):
    worker = ToolContext(workspace=workspace, is_worker=True)
    (workspace / ".orchestrator").mkdir()
    (workspace / ".orchestrator" / "MEMORY.md").write_text("- fact\n")
    for path in (".orchestrator/MEMORY.md", ".orchestrator/skills/new.md", "skills/x.md"):
        outcome = await call(worker, "write_file", path=path, content="x")
        assert outcome.is_error and "read-only against memory" in outcome.content
    edit = await call(worker, "edit_file", path=".orchestrator/MEMORY.md", old_string="fact", new_string="lie")
    assert edit.is_error and (workspace / ".orchestrator" / "MEMORY.md").read_text() == "- fact\n"
    assert not (await call(worker, "write_file", path="out.txt", content="task output")).is_error


segments = st.lists(st.sampled_from(["..", ".", "a", "b", "up", "loop", "x.txt"]), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def property_workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("prop") / "ws"
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "up").symlink_to("..")  # points at the parent, outside
    (ws / "a" / "loop").symlink_to("../a")
    return ws


@settings(max_examples=200, deadline=None)
@given(parts=segments)
def test_confine_never_resolves_outside_the_workspace(property_workspace, parts):
    ctx = ToolContext(workspace=property_workspace)
    try:
        target = confine(ctx, "/".join(parts))
    except ToolError as exc:
        assert "escapes the workspace" in str(exc) or "cannot resolve" in str(exc)
    else:
        assert target.is_relative_to(property_workspace.resolve())
