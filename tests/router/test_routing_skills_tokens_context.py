"""Skill index matching, offline token estimates, and TurnContext construction."""
from datetime import datetime, UTC
from decimal import Decimal

from actors.router.context import TurnContext, build_turn_context, extract_file_extensions
from actors.router.skills import SkillIndex, content_words
from actors.planner.tokens import IMAGE_TOKENS, estimate_input_tokens, estimate_text_tokens
from protocol.canonical import ImageBlock, Message, Role, TextBlock, ToolDefinition, ToolResultBlock, ToolUseBlock


def write_skill(root, rel, front):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front}\n---\n# Body\nnever read: architecture architecture\n")


def test_skill_index_reads_frontmatter_from_both_dirs_and_matches_by_overlap(tmp_path):
    write_skill(tmp_path, ".orchestrator/skills/system_design/SKILL.md",
                "description: Review system design and service architecture trade-offs")
    write_skill(tmp_path, "skills/sql.md", "name: sql\ndescription: Write and optimise SQL queries for Postgres")
    write_skill(tmp_path, "skills/dup.md", "name: system_design\ndescription: shadowed by the private one")
    write_skill(tmp_path, "skills/nodesc.md", "name: nodesc")
    (tmp_path / "skills/broken.md").write_text("---\nname: [unclosed\n---\n")
    index = SkillIndex.build(str(tmp_path))
    assert sorted(s.name for s in index.skills) == ["sql", "system_design"]
    assert index.match("Let's discuss the architecture trade-offs") == {"system_design"}   # 2 shared words
    assert index.match("optimise this query") == {"sql"}          # optimise, query: 2 shared
    assert index.match("postgres sql") == {"sql"}
    assert index.match("what's the weather") == frozenset()
    assert index.match("") == frozenset()
    assert SkillIndex.build(None).match("anything") == frozenset()


def test_skill_match_fraction_threshold_for_short_descriptions():
    from actors.router.skills import Skill

    index = SkillIndex([Skill("fmt", "Formatting", "x", content_words("Formatting") | content_words("fmt"))])
    assert content_words("Formatting tests") == {"formatt", "test"}
    assert index.match("fix the formatting") == {"fmt"}          # 1 of 2 words = half


def test_token_estimates_are_offline_and_monotone():
    assert estimate_text_tokens("abcd") == 1 and estimate_text_tokens("abcde") == 2
    assert estimate_text_tokens("日本語") == 3                       # 9 UTF-8 bytes
    msgs = [Message(Role.USER, (TextBlock("x" * 400),))]
    base = estimate_input_tokens(None, (), msgs)
    assert base == 4 + 2 + 100
    with_image = estimate_input_tokens(None, (), [Message(Role.USER, (TextBlock("x" * 400), ImageBlock(data="AA")))])
    assert with_image == base + 2 + IMAGE_TOKENS
    tool = ToolDefinition("read_file", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}})
    assert estimate_input_tokens("be brief", (tool,), msgs) > base


def test_file_extensions_come_from_tool_inputs_and_results_only():
    history = [
        Message(Role.USER, (TextBlock("look at notes.txt"),)),
        Message(Role.ASSISTANT, (ToolUseBlock("t1", "read_file", {"path": "src/db/Schema.SQL"}),)),
        Message(Role.TOOL, (ToolResultBlock("t1", "listing: app/main.py, README.md and version 1.2"),)),
    ]
    assert extract_file_extensions(history) == {".sql", ".py", ".md"}


def test_build_turn_context_derives_flags():
    history = [Message(Role.ASSISTANT, (ToolUseBlock("t1", "read_file", {"path": "a.rs"}),))]
    user = Message(Role.USER, (TextBlock("hi"), ImageBlock(url="http://x")))
    c = build_turn_context(session_id="s", turn_id="t", message_text="hi", user_message=user, history=history,
                           system="sys", tools=(ToolDefinition("x"),), output_schema={"type": "object"},
                           cost_today_usd=Decimal("1"), now_local=datetime(2026, 1, 1, tzinfo=UTC))
    assert c.has_images and c.has_tool_calls_in_history and c.has_tool_definitions and c.has_system_prompt
    assert c.requires_structured_output and c.file_extensions == {".rs"} and c.estimated_input_tokens > IMAGE_TOKENS
    assert c.message_folded == "hi"
    assert TurnContext(message_text="ÄB").message_folded == "äb"
