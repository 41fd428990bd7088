"""Prompt templates and what is read back from an answer (DESIGN §4.9).

A prompt may use ``{input}`` and ``{steps.NAME}`` (an earlier step's output); without ``{input}``
the workflow's input is appended. Nothing else in braces is special, so code and JSON in a prompt
pass through untouched. A step's confidence is the last ``Confidence: N`` line of its output —
none means no gate for that step; it is never invented.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

_REF = re.compile(r"\{steps\.([A-Za-z0-9_][A-Za-z0-9_.-]*?)\}")
_CONFIDENCE = re.compile(r"^\W*confidence\W*:?\s*\**\s*(\d{1,3})\s*(?:%|/\s*100)?\**\s*\.?\s*$", re.IGNORECASE)
_CONCERNS_HEAD = re.compile(r"^\W*(?:unresolved\s+)?concerns\W*:?\W*$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.*\S)\s*$")


def step_references(prompt: str) -> list[str]:
    """The step names a prompt refers to, in order, without repeats."""
    return list(dict.fromkeys(_REF.findall(prompt)))


def render(prompt: str, task: str, outputs: Mapping[str, str]) -> str:
    """The prompt with ``{input}`` and ``{steps.NAME}`` filled in. A skipped step's output is
    empty. Without ``{input}`` the task is appended after a blank line."""
    text = _REF.sub(lambda m: outputs.get(m.group(1), ""), prompt)
    if "{input}" in prompt:
        return text.replace("{input}", task)
    return f"{text.rstrip()}\n\n{task}"


def confidence(output: str) -> int | None:
    """The last ``Confidence: N`` line (0-100), or None."""
    for line in reversed(output.splitlines()):
        m = _CONFIDENCE.match(line)
        if m and 0 <= int(m.group(1)) <= 100:
            return int(m.group(1))
    return None


def concerns(output: str) -> list[str]:
    """The bullets under the last ``Concerns:`` (or ``Unresolved concerns:``) heading; ``none``
    and ``n/a`` bullets do not count."""
    lines = output.splitlines()
    start = None
    for i, line in enumerate(lines):
        if _CONCERNS_HEAD.match(line):
            start = i + 1
    if start is None:
        return []
    found: list[str] = []
    for line in lines[start:]:
        m = _BULLET.match(line)
        if m is None:
            if line.strip():
                break
            continue
        item = m.group(1).strip()
        if item.lower().rstrip(".") not in ("none", "n/a", "no unresolved concerns"):
            found.append(item)
    return found
