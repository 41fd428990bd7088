"""Hypercorn's trio worker serving the gateway app inside the daemon's own nursery."""
from __future__ import annotations

import logging

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .app import GatewayApp
from .config import HttpSettings


KEEP_ALIVE_S = 75.0                  # SDK clients keep their connections open between requests
KEEP_ALIVE_MAX_REQUESTS = 1_000_000


def hypercorn_config(http: HttpSettings, graceful_s: float) -> Config:
    config = Config()
    config.bind = [http.listen]
    config.accesslog = None
    config.errorlog = logging.getLogger("orchestrator.gateway")
    config.graceful_timeout = graceful_s
    config.keep_alive_timeout = KEEP_ALIVE_S
    # hypercorn closes a connection after 1000 requests by default: an agent's client would pay a new
    # TCP connection (and a request answered with "connection: close") every 1000 turns for nothing
    config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
    return config


async def serve_gateway(app: GatewayApp, http: HttpSettings, stop: trio.Event, *, graceful_s: float = 5.0,
                        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until ``stop`` is set; ``task_status`` gets the bound URLs (port 0 picks a free port)."""
    await serve(app, hypercorn_config(http, graceful_s), shutdown_trigger=stop.wait,  # type: ignore[arg-type]
                task_status=task_status)
