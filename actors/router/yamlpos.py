"""Line numbers, key paths and error collection shared by the config parsers.

The parsers accept both ruamel round-trip containers (which carry ``.lc`` positions) and plain
dicts/lists (tests, property tests); without positions an error falls back to its parent's line.
"""
from __future__ import annotations

import re
from typing import Any

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def key_line(mapping: Any, key: Any, default: int) -> int:
    """1-based line of ``key`` inside a round-trip mapping, else ``default``."""
    lc = getattr(mapping, "lc", None)
    if lc is not None:
        try:
            return lc.key(key)[0] + 1
        except Exception:  # noqa: BLE001 — positions are best-effort decoration
            pass
    return default


def item_line(seq: Any, index: int, default: int) -> int:
    lc = getattr(seq, "lc", None)
    if lc is not None:
        try:
            return lc.item(index)[0] + 1
        except Exception:  # noqa: BLE001
            pass
    return default


def join(path: str, key: Any) -> str:
    """``rules`` + 2 → ``rules[2]``; ``rules[2]`` + ``use`` → ``rules[2].use``; odd keys are quoted."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    text = str(key)
    if _IDENT.match(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{text!r}]"


def plain(value: Any) -> Any:
    """Strip ruamel's scalar/container subclasses so the value is msgpack- and JSON-friendly."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def describe(value: Any) -> str:
    """The offending value for an error message: scalars as written, containers by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(plain(value))
    if isinstance(value, str):
        text = str(value)
        return repr(text if len(text) <= 40 else text[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


class Problems:
    """Collects ``file:line: path: message`` strings so one pass reports every error."""

    def __init__(self, filename: str):
        self.filename = filename
        self.items: list[tuple[int, str]] = []

    def add(self, line: int, path: str, message: str) -> None:
        where = f"{self.filename}:{line}"
        self.items.append((line, f"{where}: {path}: {message}" if path else f"{where}: {message}"))

    def __bool__(self) -> bool:
        return bool(self.items)

    def sorted(self) -> list[str]:
        # Stable sort by line keeps same-line errors in discovery order.
        return [text for _, text in sorted(self.items, key=lambda item: item[0])]


def parse_yaml(text: str, problems: Problems) -> tuple[Any, bool]:
    """Round-trip load (keeps positions); a syntax error or a file over our bounds (size, alias
    expansion: see ``actors.config.yamlload``) becomes one error with its line."""
    from ruamel.yaml.error import MarkedYAMLError

    from actors.config.yamlload import YAMLLimitError, load_yaml

    try:
        return load_yaml(text), True
    except YAMLLimitError as exc:
        problems.add(exc.line, exc.key, exc.message)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        problems.add(line, "", f"YAML syntax error: {problem}")
    except RecursionError:
        problems.add(1, "", "YAML syntax error: document is nested too deeply")
    except Exception as exc:  # noqa: BLE001 — ruamel raises assorted types on hostile input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problems.add(1, "", f"YAML syntax error: {first}")
    return None, False
