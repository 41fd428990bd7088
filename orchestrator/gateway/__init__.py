"""The HTTP gateway (DESIGN §4.6): OpenAI- and Anthropic-compatible endpoints in the daemon's process.

``config`` (daemon.yaml ``http:`` and ``--http``), ``auth`` (API keys), ``errors`` (each API's
error body), ``canonical`` / ``openai_api`` / ``anthropic_api`` (sans-IO translation between the
HTTP APIs and the canonical messages), ``turns`` (the gateway actor that runs one turn per request
through the router and the planner), ``app`` (the ASGI app) and ``server`` (hypercorn on trio).
"""
