"""The FILES_CHANGED line as real agents print it (`claude -p`, `codex exec`): markdown around the
line and absolute paths inside the workspace are the same claim; a path outside it stays foreign."""
from actors.delegate.verify import parse_claimed


def test_a_files_changed_line_in_markdown_code_or_bold_is_still_the_claim():
    assert parse_claimed("done\n`FILES_CHANGED=src/a.py,src/b.py`\n") == frozenset({"src/a.py", "src/b.py"})
    assert parse_claimed("done\n**FILES_CHANGED=src/a.py**\n") == frozenset({"src/a.py"})
    assert parse_claimed("done\n- FILES_CHANGED=`src/a.py`, `src/b.py`\n") == frozenset({"src/a.py", "src/b.py"})


def test_absolute_paths_inside_the_workspace_are_made_relative_and_others_are_kept_as_given():
    out = "FILES_CHANGED=/home/me/app/src/a.py,src/b.py,/etc/passwd,/home/me/apple/x.py\n"
    assert parse_claimed(out, "/home/me/app") == frozenset({"src/a.py", "src/b.py", "/etc/passwd",
                                                             "/home/me/apple/x.py"})
    assert parse_claimed("FILES_CHANGED=/home/me/app/src/a.py\n") == frozenset({"/home/me/app/src/a.py"})


def test_a_delegate_that_changed_nothing_is_not_accepted_even_when_the_tests_pass():
    from actors.delegate.verify import CheckRun, Evidence, decide
    nothing = Evidence("h1", "h1", "refs/heads/main", "refs/heads/main", frozenset(), frozenset())
    verdict = decide(nothing, ("src/**",), CheckRun(True, "exit code: 0"))
    assert not verdict.accepted and not verdict.run_tests
    assert verdict.reasons == ("it changed no files: there is nothing to accept",)
