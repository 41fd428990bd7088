"""Client-side hints about a model the user just picked (chat's /model and `model set`)."""
from __future__ import annotations

import sys

from protocol.messages import ModelState


async def warn_if_not_configured(client, state: ModelState) -> None:
    """A sticky model is accepted for a model the daemon cannot use (its key is not set): say so
    now, not at the next turn, which would fall through past it."""
    model = state.pending_model or state.active_model
    if model is None:
        return
    why = (await client.rules()).not_configured.get(model)
    if why:
        print(f"warning: {model} is not_configured ({why}); turns will fall through past it "
              "until it is (`orchestrator status` lists every such model)", file=sys.stderr)
