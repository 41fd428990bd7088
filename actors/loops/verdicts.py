"""Machine verdicts (DESIGN §4.10): ``PILOT_VERDICT=VALUE[ ITEM]`` / ``LAND_VERDICT=VALUE[ ITEM]``
among the last lines of a tick's output.

Only the tail counts, so a verdict quoted earlier in the answer (the model explaining the protocol,
an old log pasted back) never decides a tick. The last verdict line of each kind wins. A verdict
line whose value is not in the vocabulary is *malformed*: the driver treats it as no verdict at all
(no progress, a strike), never as success.
"""
from __future__ import annotations

import re

from attrs import frozen

PILOT_VALUES = frozenset({"ADVANCED", "NO_WORK", "DEFERRED_TO_LAND", "BLOCKED", "NEEDS_HUMAN"})
# Land reports what it did with the work pilot handed over, or the same "nothing to do / stuck" words.
LAND_VALUES = frozenset({"LANDED", "MERGED", "ADVANCED", "NO_WORK", "BLOCKED", "NEEDS_HUMAN"})
VALUES = {"PILOT_VERDICT": PILOT_VALUES, "LAND_VERDICT": LAND_VALUES}
TAIL_LINES = 12          # "the last lines": how far up from the end a verdict may stand
MAX_ITEM_CHARS = 200

_LINE = re.compile(r"^(PILOT_VERDICT|LAND_VERDICT)\s*=\s*(\S*)(?:\s+(.*))?$")


@frozen
class Verdict:
    value: str
    item: str | None = None

    def __str__(self) -> str:
        return self.value if self.item is None else f"{self.value} {self.item}"


@frozen
class Verdicts:
    """What a tick's output said. ``pilot``/``land`` None: no (valid) verdict of that kind;
    ``malformed`` names the kinds whose last verdict line had a value outside the vocabulary."""

    pilot: Verdict | None = None
    land: Verdict | None = None
    malformed: tuple[str, ...] = ()


def _clean(line: str) -> str:
    # Models like to wrap the line in markdown: `PILOT_VERDICT=ADVANCED`, **…**, "- …".
    line = line.strip().strip("`*_ ").strip()
    if line.startswith(("- ", "> ")):
        line = line[2:].strip("`*_ ").strip()
    return line


def parse_verdicts(text: str, *, tail: int = TAIL_LINES) -> Verdicts:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()][-tail:]
    found: dict[str, Verdict | None] = {}
    for raw in lines:
        m = _LINE.match(_clean(raw))
        if m is None:
            continue
        kind, value, item = m.group(1), m.group(2).strip("`*_.,;:").upper(), m.group(3)
        item = item.strip().strip("`*_ ").strip() if item else None
        if value in VALUES[kind]:
            found[kind] = Verdict(value, (item or None) and item[:MAX_ITEM_CHARS])
        else:
            found[kind] = None       # the last line of a kind decides, even when it is malformed
    malformed = tuple(k for k in ("PILOT_VERDICT", "LAND_VERDICT") if k in found and found[k] is None)
    return Verdicts(found.get("PILOT_VERDICT"), found.get("LAND_VERDICT"), malformed)


def verdict_line(kind: str, verdict: Verdict) -> str:
    return f"{kind}={verdict}"
