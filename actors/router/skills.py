"""The skill-description index behind ``skills_matching_message_includes`` (spec §5.3).

Built from the YAML frontmatter of every ``*.md`` file (recursively) under

1. ``<workspace>/.orchestrator/skills/``  (project-private skills; wins on a name clash)
2. ``<workspace>/skills/``

Only the frontmatter is read — the ``---`` block at the top of the file, ``name`` and
``description`` — never skill bodies. A file without a description is skipped; without a name it
is named after its file stem, or after its folder when the file is ``SKILL.md``.

Matching (deterministic, no model): both texts are lowercased and split into words of letters and
digits; stopwords and one-character words are dropped; a light suffix stemmer maps "tests",
"testing" and "tested" to "test" and "queries" to "query". A skill's *content words* are those of
its description plus its name ("system_design" → system, design). A skill matches a message when they share

* at least ``MIN_SHARED`` (2) content words, or
* at least ``MIN_FRACTION`` (half) of the skill's content words.

Building reads files: the router builds an index only when a rule uses the predicate, in a
worker thread, and :class:`SkillCache` rebuilds it only when a skill file or folder changed.
"""
from __future__ import annotations

import os
import re
import stat
import threading
from collections import OrderedDict
from pathlib import Path
from collections.abc import Iterable

from attrs import frozen

MIN_SHARED = 2
MIN_FRACTION = 0.5
MAX_FILES = 500                 # per session start: a huge tree must not stall the first turn
MAX_FRONTMATTER_BYTES = 16_384
SKILL_DIRS = (".orchestrator/skills", "skills")

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset("""
a an the and or but if then else when while of to in on at by for with from into onto over under
about as is are was were be been being do does did done have has had having it its this that these
those there here i me my we our you your he she they them their what which who whom whose how why
can could should would will shall may might must not no yes so than too very just also only any
all some each every more most other such own same via use used using make makes made get gets got
please help me us let lets want need like
""".split())
_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> frozenset[str]:
    return frozenset(
        _stem(w) for w in _WORD.findall(text.lower().replace("_", " ")) if len(w) > 1 and w not in STOPWORDS
    )


@frozen
class Skill:
    name: str
    description: str
    path: str
    words: frozenset[str]


def _frontmatter(path: Path) -> dict | None:
    try:
        # Regular files only, checked without blocking: a FIFO named x.md must not hang the build.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            os.set_blocking(fd, True)
            head = fh.read(MAX_FRONTMATTER_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    if not head.startswith("---"):
        return None
    end = head.find("\n---", 3)
    if end < 0:
        return None
    from actors.config.yamlload import load_yaml

    try:
        data = load_yaml(head[3:end], typ="safe")
    except Exception:  # noqa: BLE001 — one bad skill file must not break the index
        return None
    return data if isinstance(data, dict) else None


def _skill_from(path: Path) -> Skill | None:
    meta = _frontmatter(path)
    if not meta:
        return None
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        return None
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip():
        name = path.parent.name if path.name.lower() == "skill.md" else path.stem
    name = name.strip()
    return Skill(name=name, description=description.strip(), path=str(path),
                 words=content_words(description) | content_words(name))


class SkillIndex:
    def __init__(self, skills: Iterable[Skill] = ()):
        self.skills: tuple[Skill, ...] = tuple(skills)

    @classmethod
    def build(cls, workspace: str | None) -> SkillIndex:
        if not workspace:
            return cls()
        found: dict[str, Skill] = {}
        budget = MAX_FILES
        for sub in SKILL_DIRS:
            root = Path(workspace, sub)
            if not root.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()        # deterministic walk order
                for filename in sorted(filenames):
                    if not filename.lower().endswith(".md") or budget <= 0:
                        continue
                    budget -= 1
                    skill = _skill_from(Path(dirpath, filename))
                    if skill is not None and skill.name not in found:
                        found[skill.name] = skill
        return cls(found.values())

    def match(self, message: str) -> frozenset[str]:
        """Names of the skills whose description matches ``message`` (see the module docstring)."""
        if not self.skills or not message:
            return frozenset()
        words = content_words(message)
        out = []
        for skill in self.skills:
            if not skill.words:
                continue
            shared = len(skill.words & words)
            if shared >= MIN_SHARED or shared >= MIN_FRACTION * len(skill.words):
                if shared:
                    out.append(skill.name)
        return frozenset(out)


def _signature(workspace: str) -> tuple:
    """What the index depends on: every skill folder's and ``*.md`` file's (path, mtime_ns, size)."""
    parts: list[tuple] = []
    for sub in SKILL_DIRS:
        root = Path(workspace, sub)
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            try:
                st = os.stat(dirpath)
                parts.append((dirpath, st.st_mtime_ns))
            except OSError:
                continue
            for filename in sorted(filenames):
                if filename.lower().endswith(".md"):
                    try:
                        st = os.stat(os.path.join(dirpath, filename))
                    except OSError:
                        continue
                    parts.append((dirpath, filename, st.st_mtime_ns, st.st_size))
            if len(parts) > 2 * MAX_FILES:
                break
    return tuple(parts)


class SkillCache:
    """One index per workspace, rebuilt only when its skill files change. Blocking: call from a thread."""

    def __init__(self, max_workspaces: int = 256):
        self._entries: OrderedDict[str, tuple[tuple, SkillIndex]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_workspaces
        self.builds = 0

    def get(self, workspace: str) -> SkillIndex:
        signature = _signature(workspace)
        with self._lock:
            hit = self._entries.get(workspace)
            if hit is not None and hit[0] == signature:
                self._entries.move_to_end(workspace)
                return hit[1]
        index = SkillIndex.build(workspace)
        with self._lock:
            self.builds += 1
            self._entries[workspace] = (signature, index)
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return index
