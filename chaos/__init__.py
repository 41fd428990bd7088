"""Chaos and soak scenarios against a real ``orchestrator serve`` process (docs/reliability.md).

Each scenario is a script with a reduced default size (what ``tests/chaos`` runs in CI) and a
``--full`` flag for the documented full size:

    python -m chaos.provider_faults [--full]   # injected provider faults through the fake providers
    python -m chaos.kill9 [--full]             # kill -9 of the daemon mid-turn, restart on the same state
    python -m chaos.fuzz_frames [--full]       # mutated frames against the decoder and the live socket
    python -m chaos.soak [--full]              # concurrent sessions for minutes: RSS growth, lost turns

Every request loop is bounded in count and time and talks only to 127.0.0.1 and the daemon's ipc
socket (the DNS-failure provider names an ``.invalid`` host, which never resolves).
"""
