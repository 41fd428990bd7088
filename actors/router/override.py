"""Per-message ``@model`` overrides (spec §9.1).

Grammar: the message's first character is ``@``, followed by an alias or a ``provider:model`` id,
then at least one whitespace character, then a non-empty body. Anything else is not an override:
``Email me @haiku`` (not at the start), ``@haiku,`` (no whitespace after the token). A leading
``\\@`` is an escape: the backslash is stripped and no override applies. A token that looks like
an override but names no registered model is an error, and so is a bare ``@haiku`` with no body:
in both cases the turn must not start.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from attrs import frozen

_TOKEN = re.compile(r"@([A-Za-z0-9][A-Za-z0-9_.:/-]*)(?:(\s+)(.*))?\Z", re.DOTALL)


@frozen
class Override:
    body: str                       # the message text to route on and send
    model: str | None = None        # resolved model id when an override applies
    token: str | None = None        # "@haiku" as typed
    error: str | None = None        # inline error: the turn does not start
    escaped: bool = False           # the message started with "\@"


def model_refs(registry) -> dict[str, str]:
    """Every model id and alias of a ``ModelRegistry``, mapped to its model id."""
    refs = {m: m for m in registry.models}
    refs.update(registry.alias_table())
    return refs


def parse_override(text: str, refs) -> Override:
    """Split an ``@model`` prefix off ``text``. ``refs`` is a ``ModelRegistry`` or a mapping of every
    alias and id to a model id (``RoutingEngine.refs`` — prebuilt, so cheaper per turn)."""
    if not isinstance(refs, Mapping):
        refs = model_refs(refs)
    if text.startswith("\\@"):
        return Override(body=text[1:], escaped=True)
    if not text.startswith("@"):
        return Override(body=text)
    m = _TOKEN.match(text)
    if m is None:
        return Override(body=text)       # "@" followed by punctuation etc.: ordinary text
    name, space, body = m.group(1), m.group(2), m.group(3)
    token = "@" + name
    model = refs.get(name)
    if model is None:
        known = sorted(k for k in refs if ":" not in k)
        hint = f" Known aliases: {', '.join(known)}." if known else ""
        return Override(
            body=text, token=token,
            error=f'Unknown model "{token}".{hint} Start the message with \\@ to send a literal "@".',
        )
    if space is None or not body.strip():
        return Override(body="", token=token, model=model,
                        error=f'Nothing to send after "{token}": type a message after the model name.')
    return Override(body=body, model=model, token=token)
