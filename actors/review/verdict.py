"""The reviewer's prompt and the strict format of its answer (sans-IO).

The answer format the prompt asks for::

    FINDINGS:
    - high | src/app.py:12 | the loop never ends when the list is empty
    - low | README.md | the new flag is not documented
    VERDICT: NEEDS_WORK

- The verdict is the last line of the form ``VERDICT: SHIP|NEEDS_WORK|MAJOR_RETHINK`` (markdown
  emphasis or backticks around it are tolerated; case of the word ``VERDICT`` too, not of the
  value). No such line: the answer is unparseable — an error, never a guessed verdict.
- Findings are the ``- `` lines after ``FINDINGS:`` (``FINDINGS: none`` or no lines: none). Each is
  ``severity | location | text``; a line that does not split that way is kept whole as its text,
  with severity and location null, so nothing a reviewer said is lost.
"""
from __future__ import annotations

import re
from typing import Any

from attrs import frozen

VERDICTS = ("SHIP", "NEEDS_WORK", "MAJOR_RETHINK")
SEVERITIES = ("high", "medium", "low")

_VERDICT = re.compile(r"^[\s*_`>#]*verdict[\s*_`]*:[\s*_`]*([A-Za-z_]+)[\s*_`.]*$", re.IGNORECASE)
_FINDINGS = re.compile(r"^[\s*_`#]*findings[\s*_`]*:[\s*_`]*(.*?)[\s*_`]*$", re.IGNORECASE)
_LOCATION = re.compile(r"^(?P<file>.+?)(?::(?P<line>\d+))?$")

REVIEW_PROMPT = """\
You are a code reviewer. Another model wrote the change below; review it for correctness, \
security, error handling, tests and clarity. Judge only what the diff shows and what it implies.

Answer in exactly this format and nothing after it:

FINDINGS:
- <high|medium|low> | <file>[:<line>] | <what is wrong and what to do instead>
VERDICT: <SHIP|NEEDS_WORK|MAJOR_RETHINK>

Write "FINDINGS: none" when there is nothing to report. SHIP: ready as it is. NEEDS_WORK: fixable \
problems, fix the findings. MAJOR_RETHINK: the approach itself is wrong.
"""


@frozen
class Finding:
    text: str
    severity: str | None = None
    file: str | None = None
    line: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "file": self.file, "line": self.line, "text": self.text}


@frozen
class Review:
    verdict: str
    findings: tuple[Finding, ...] = ()


class UnparseableReview(ValueError):
    """The reviewer's answer does not follow the format."""


def review_prompt(diff: str, *, base: str, workspace: str, untracked: int = 0) -> str:
    extra = f", {untracked} untracked file(s) shown as new" if untracked else ""
    # A fence longer than any backtick run inside the diff, so a diff of markdown cannot close it.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", diff)), default=0))
    return (f"{REVIEW_PROMPT}\nThe change: `git diff {base}` in {workspace}{extra}.\n\n"
            f"{fence}diff\n{diff}\n{fence}\n")


def parse_review(answer: str) -> Review:
    lines = answer.splitlines()
    verdict_at, verdict = -1, None
    for i, line in enumerate(lines):
        m = _VERDICT.match(line)
        if m is not None:
            verdict_at, verdict = i, m.group(1).strip("_")
    if verdict is None:
        raise UnparseableReview(f"no 'VERDICT: {'|'.join(VERDICTS)}' line in the reviewer's answer")
    if verdict not in VERDICTS:
        raise UnparseableReview(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    return Review(verdict, tuple(_findings(lines[:verdict_at] + lines[verdict_at + 1:])))


def _findings(lines: list[str]) -> list[Finding]:
    start = None
    for i, line in enumerate(lines):
        m = _FINDINGS.match(line)
        if m is not None:
            start = i
            if m.group(1).strip().lower() in ("none", "none."):
                return []
    if start is None:
        return []
    found = []
    for line in lines[start + 1:]:
        stripped = line.strip()
        if stripped.startswith(("- ", "* ")):
            found.append(_finding(stripped[2:].strip()))
        elif stripped and found:
            break   # the list ended
    return found


def _finding(text: str) -> Finding:
    parts = [p.strip() for p in text.split("|", 2)]
    if len(parts) != 3 or parts[0].lower() not in SEVERITIES or not parts[2]:
        return Finding(text)
    loc = _LOCATION.match(parts[1])
    file = loc.group("file").strip() if loc and parts[1] not in ("", "-") else None
    line = int(loc.group("line")) if loc and loc.group("line") and file else None
    return Finding(parts[2], parts[0].lower(), file, line)
