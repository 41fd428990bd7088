"""Loading YAML we did not write ourselves, with bounds: every config file goes through here.

YAML anchors and aliases are legitimate (``capabilities: *caps``), but a few lines of nested
aliases ("billion laughs") describe a document of 10⁹ nodes. ruamel composes such a file as a
small graph of shared nodes; whatever walks it afterwards (validation, ``plain()``, msgpack) walks
the *expanded* tree and stalls the daemon. So after composing, the expanded size is computed on
the graph (linear time, memoized per node) and a file whose aliases expand beyond
``MAX_EXPANDED_NODES`` — or that refers to itself — is refused with the alias's line and key.

Files are also capped in size (``MAX_CONFIG_BYTES``) before parsing; readers should read at most
one byte more than the cap (:func:`read_capped_text`) so an oversized file costs nothing.
"""
from __future__ import annotations

import os
import stat
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

MAX_CONFIG_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 200


class YAMLLimitError(ValueError):
    """A document over one of our bounds; ``line`` is 1-based, ``key`` the nearest key (or "")."""

    def __init__(self, line: int, key: str, message: str):
        super().__init__(f"{line}: {key + ': ' if key else ''}{message}")
        self.line = line
        self.key = key
        self.message = message


class _CountingComposer(Composer):
    """Remembers where each alias is used, so an expansion over the cap can be pointed at."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.alias_uses: list[tuple[int, str, Node]] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.parser.check_event(AliasEvent):
            return super().compose_node(parent, index)
        line = self.parser.peek_event().start_mark.line + 1
        node = super().compose_node(parent, index)
        # For a mapping value ruamel passes the key node as ``index``; for a list item, the position.
        key = str(index.value) if isinstance(getattr(index, "value", None), str) else ""
        self.alias_uses.append((line, key, node))
        return node

    def get_single_node(self) -> Any:
        self.alias_uses = []
        root = super().get_single_node()
        if root is not None and self.alias_uses:
            _check_expansion(root, self.alias_uses)
        return root


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _expanded_sizes(root: Node) -> dict[int, int]:
    """Size of every node's subtree with aliases expanded, by ``id(node)``; iterative (deep files),
    memoized (shared nodes are sized once), and a node reached again while open is a cycle."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        nid = id(node)
        if children_done:
            open_nodes.discard(nid)
            total = 1
            for child in _children(node):
                total += sizes[id(child)]
            sizes[nid] = min(total, MAX_EXPANDED_NODES + 1)  # capped: the numbers stay small
            continue
        if nid in sizes:
            continue
        if nid in open_nodes:
            raise _Cycle(node)
        open_nodes.add(nid)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise _Cycle(child)
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes


class _Cycle(Exception):
    def __init__(self, node: Node):
        self.node = node


def _check_expansion(root: Node, uses: list[tuple[int, str, Node]]) -> None:
    try:
        sizes = _expanded_sizes(root)
    except _Cycle as cycle:
        line, key = next(((ln, k) for ln, k, n in uses if n is cycle.node), (uses[0][0], uses[0][1]))
        raise YAMLLimitError(line, key, "alias refers to a node that contains it "
                                        "(recursive aliases are not supported)") from None
    if sizes[id(root)] <= MAX_EXPANDED_NODES:
        return
    line, key, _ = max(uses, key=lambda use: sizes[id(use[2])])
    raise YAMLLimitError(
        line, key,
        f"aliases expand the document beyond {MAX_EXPANDED_NODES} nodes; write the values out or use fewer aliases",
    )


def yaml_loader(typ: str = "rt") -> YAML:
    """A ruamel loader with the alias check; ``typ`` "rt" keeps line positions, "safe" gives plain data."""
    yaml = YAML(typ=typ, pure=True)
    yaml.Composer = _CountingComposer
    yaml.max_depth = MAX_DEPTH
    return yaml


def load_yaml(text: str, *, typ: str = "rt", max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """Parse one document. Raises :class:`YAMLLimitError` over a bound, ruamel's YAMLError on bad syntax."""
    if len(text) > max_bytes:
        raise YAMLLimitError(1, "", f"file is larger than the {_size(max_bytes)} limit for config files")
    try:
        return yaml_loader(typ).load(text)
    except MaxDepthExceededError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        raise YAMLLimitError(line, "", f"the document is nested more than {MAX_DEPTH} levels deep") from None


def read_capped_text(path: str | os.PathLike[str], max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A config file's text, at most ``max_bytes + 1`` characters (so the caller sees it is too big).

    Only regular files are opened (a FIFO named models.yaml would block the reader forever);
    FileNotFoundError and other OSErrors propagate.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{os.fspath(path)} is not a regular file")
        os.set_blocking(fd, True)
        with open(fd, encoding="utf-8", closefd=False) as fh:
            return fh.read(max_bytes + 1)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n // 1024} KiB"
