from actors.tools import ToolContext, dispatch


async def call(ctx, tool, /, **arguments):
    return await dispatch(ctx, tool, arguments)


def memory_text(workspace):
    return (workspace / ".orchestrator" / "MEMORY.md").read_text()


async def test_memory_add_appends_bullets_to_memory_md(ctx, workspace):
    first = await call(ctx, "memory_add", text="Tests run with `pytest -q`.")
    assert not first.is_error and ".orchestrator/MEMORY.md" in first.content
    await call(ctx, "memory_add", text="Deploys go through\nthe staging host first.")
    assert memory_text(workspace) == (
        "# Memory\n\n- Tests run with `pytest -q`.\n- Deploys go through\n  the staging host first.\n"
    )


async def test_memory_add_keeps_a_hand_written_file_intact(ctx, workspace):
    (workspace / ".orchestrator").mkdir()
    (workspace / ".orchestrator" / "MEMORY.md").write_text("# Notes\n- old fact")
    await call(ctx, "memory_add", text="new fact")
    assert memory_text(workspace) == "# Notes\n- old fact\n- new fact\n"


async def test_memory_add_rejects_blank_text(ctx, workspace):
    outcome = await call(ctx, "memory_add", text="   \n")
    assert outcome.is_error and not (workspace / ".orchestrator").exists()


async def test_memory_replace_rewrites_one_occurrence(ctx, workspace):
    await call(ctx, "memory_add", text="API lives on port 8080")
    outcome = await call(ctx, "memory_replace", old="port 8080", new="port 9090")
    assert not outcome.is_error
    assert "- API lives on port 9090\n" in memory_text(workspace)


async def test_memory_replace_not_found_ambiguous_and_missing_file(ctx, workspace):
    missing = await call(ctx, "memory_replace", old="a", new="b")
    assert missing.is_error and "use memory_add first" in missing.content
    await call(ctx, "memory_add", text="same")
    await call(ctx, "memory_add", text="same")
    ambiguous = await call(ctx, "memory_replace", old="same", new="other")
    assert ambiguous.is_error and "occurs 2 times" in ambiguous.content
    absent = await call(ctx, "memory_replace", old="nothing like it", new="x")
    assert absent.is_error and "not found" in absent.content


async def test_memory_file_symlinked_out_of_the_workspace_is_refused(ctx, workspace, outside):
    (workspace / ".orchestrator").symlink_to(outside)
    outcome = await call(ctx, "memory_add", text="x")
    assert outcome.is_error and "path escapes the workspace" in outcome.content
    assert not (outside / "MEMORY.md").exists()


def write_skill(workspace, rel, text):
    path = workspace / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def test_load_skill_returns_the_body_without_frontmatter(ctx, workspace):
    write_skill(workspace, ".orchestrator/skills/release.md",
                "---\nname: release\ndescription: Cut a release\n---\n# Release\n\n1. Tag it.\n")
    outcome = await call(ctx, "load_skill", name="release")
    assert not outcome.is_error and outcome.content == "# Release\n\n1. Tag it."
    assert (await call(ctx, "load_skill", name="release.md")).content == outcome.content


async def test_load_skill_falls_back_to_workspace_skills_dir(ctx, workspace):
    write_skill(workspace, "skills/lint.md", "Run ruff.\n")
    write_skill(workspace, "skills/release.md", "shadowed\n")
    write_skill(workspace, ".orchestrator/skills/release.md", "preferred\n")
    assert (await call(ctx, "load_skill", name="lint")).content == "Run ruff."
    assert (await call(ctx, "load_skill", name="release")).content == "preferred"


async def test_unknown_skill_lists_the_available_ones(ctx, workspace):
    write_skill(workspace, ".orchestrator/skills/release.md", "---\ndescription: Cut a release\n---\nbody\n")
    write_skill(workspace, "skills/lint.md", "Run ruff.\n")
    outcome = await call(ctx, "load_skill", name="deploy")
    assert outcome.is_error
    assert outcome.content == "unknown skill: deploy. Available skills:\n- lint\n- release: Cut a release"


async def test_skill_names_cannot_walk_out(ctx, workspace, outside):
    (outside / "evil.md").write_text("pwned")
    outcome = await call(ctx, "load_skill", name="../../outside/evil")
    assert outcome.is_error and "unknown skill" in outcome.content and "pwned" not in outcome.content
    empty = await call(ctx, "load_skill", name="anything")
    assert "No skills are available" in empty.content


async def test_workers_can_load_skills(workspace):
    write_skill(workspace, "skills/lint.md", "Run ruff.\n")
    worker = ToolContext(workspace=workspace, is_worker=True)
    assert (await call(worker, "load_skill", name="lint")).content == "Run ruff."
