"""Issue 11: what crosses the client socket. Every test drives the daemon from outside, with a raw
ZeroMQ client speaking our codec (``rawclient``), the way the adversarial probe did."""
from __future__ import annotations

import json
import math
import os
import signal
import socket
from decimal import Decimal

import msgpack
import pytest
import trio
import zmq

import actors.runtime.node as node_module
from orchestrator.client import DaemonUnreachable, open_client
from orchestrator.daemon import Daemon
from orchestrator.paths import Paths
from orchestrator.settings import DaemonSettings
from protocol import events as ev
from protocol.canonical import Message, Role, TextBlock, ToolDefinition, Usage
from protocol.codec import Envelope, decode, encode
from protocol.messages import (
    Ack,
    CancelTurn,
    CostAmount,
    EventNotice,
    Failure,
    GetCostToday,
    GetHistory,
    GetStatus,
    GetTrace,
    ListSessions,
    OpenSession,
    Ping,
    Pong,
    RecordUsage,
    SessionInfo,
    SessionListing,
    SetModel,
    StartTurn,
    SubmitToolResult,
    TurnAccepted,
    TurnOutcome,
)
from tests.fakes import Answer, ToolCall, open_fake_openai
from tests.stack import one_model_yaml, start_daemon, write_home

from .rawclient import open_raw_client

REPLY_S = 5  # a reply that does not come within this is a reply that never comes


# --- hand-packed frames: msgpack's own packer refuses nesting beyond 511 levels -----------------------

class Deep:
    def __init__(self, depth: int):
        self.depth = depth


def _pack(obj) -> bytes:
    if isinstance(obj, Deep):
        return b"\x81\xa1k" * obj.depth + b"\xc0"  # {"k": {"k": … None}}
    if isinstance(obj, dict):
        head = bytes([0x80 | len(obj)]) if len(obj) < 16 else b"\xde" + len(obj).to_bytes(2, "big")
        return head + b"".join(_pack(k) + _pack(v) for k, v in obj.items())
    if isinstance(obj, list):
        head = bytes([0x90 | len(obj)]) if len(obj) < 16 else b"\xdc" + len(obj).to_bytes(2, "big")
        return head + b"".join(_pack(v) for v in obj)
    return msgpack.packb(obj, use_bin_type=True)


def frame(tag: str, body: dict, recipient: str, msg_id: str = "m1", sender: str = "mallory/client") -> bytes:
    return _pack([1, 0, tag, msg_id, None, sender, recipient, body])


async def restarts(daemon) -> dict:
    status = await daemon.status()
    return {name: a["restarts"] for name, a in status.actors.items()}


# --- M4: internal messages from a client ------------------------------------------------------------------

@pytest.mark.chunk_delay(0.05)
async def test_a_client_cannot_forge_another_sessions_turn_outcome(daemon, client):
    info = await client.open_session()
    async with client.turn(info.session_id, "hello there") as turn:
        async with open_raw_client(daemon.paths.endpoint) as mallory:
            forged = TurnOutcome(info.session_id, turn.turn_id, "completed",
                                 (Message(Role.ASSISTANT, (TextBlock("FORGED ANSWER"),)),))
            reply = await mallory.ask(forged, "session", timeout=REPLY_S)
        events = [e async for e in turn]
    assert isinstance(reply, Failure) and reply.code == "forbidden_message"
    assert isinstance(events[-1], ev.TurnCompleted)
    history = await daemon.system.request("session", GetHistory(info.session_id))
    assert "FORGED" not in json.dumps([m.text for m in history.messages])


async def test_usage_records_from_a_client_are_refused_and_the_cost_actor_never_restarts(daemon, client):
    """H1: a NaN or text cost, a 2**64 token count and a 1,000-deep price map used to crash the cost
    actor (six such frames stopped the daemon) or silently disable the daily budget."""
    usage = {"input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
             "reasoning_tokens": 0, "cost_usd": "0.01"}
    hostile = [
        {**usage, "cost_usd": "NaN"}, {**usage, "cost_usd": "abc"}, {**usage, "input_tokens": 2**64 - 1},
        usage, usage, usage,
    ]
    async with open_raw_client(daemon.paths.endpoint) as mallory:
        for i, u in enumerate(hostile):
            body = {"session_id": "s_victim", "turn_id": "t_x", "model": "demo:steady", "role": "planner", "usage": u,
                    "price": Deep(1000) if i >= 3 else {}, "at": 0.0}
            await mallory.send_raw(frame("usage.record", body, "cost", msg_id=f"u{i}"))
            reply = await mallory.reply_to(f"u{i}", REPLY_S)
            assert isinstance(reply.body, Failure) and reply.body.code == "forbidden_message", reply.body
    assert (await restarts(daemon))["cost"] == 0
    report = await client.cost()
    assert Decimal(report.total_usd).is_finite() and report.by_model == ()


async def test_the_cost_actor_keeps_hostile_numbers_out_of_the_ledger(daemon, client):
    """The cost actor's own guard: even a usage record from inside (a provider's garbage numbers)
    never crashes it, never writes NaN, and today's total stays a number the budget rule can read."""
    deep: dict = {}
    for _ in range(100):
        deep = {"k": deep}
    for usage, price in [(Usage(cost_usd="NaN"), {}), (Usage(cost_usd="abc"), {}),
                         (Usage(input_tokens=2**64 - 1, cost_usd="0.5"), {}), (Usage(cost_usd="-Infinity"), deep),
                         (Usage(output_tokens=3, cost_usd="0.25"), {})]:
        await daemon.system.tell("cost", RecordUsage("s_x", "t_x", "demo:steady", "planner", usage, None, price,
                                                     math.nan))
    today = await daemon.system.request("cost", GetCostToday())
    assert isinstance(today, CostAmount) and Decimal(today.usd) == Decimal("0.75")
    report = await client.cost()
    assert report.total_usd == "0.75" and report.unknown_cost_calls == 3
    assert (await restarts(daemon))["cost"] == 0


@pytest.mark.chunk_delay(0.05)
async def test_a_progress_message_with_a_1000_deep_dict_is_refused_and_the_turn_streams_on(daemon, client):
    info = await client.open_session()
    async with client.turn(info.session_id, "hello there") as turn:
        async with open_raw_client(daemon.paths.endpoint) as mallory:
            event = {"type": "tool.called", "turn_id": turn.turn_id, "tool_use_id": "tu", "name": "x",
                     "input": Deep(1000), "client_tool": False}
            await mallory.send_raw(frame("turn.progress", {"session_id": info.session_id, "turn_id": turn.turn_id,
                                                           "event": event}, "session"))
            reply = await mallory.reply_to("m1", REPLY_S)
        events = [e async for e in turn]
    assert isinstance(reply.body, Failure) and reply.body.code in ("forbidden_message", "malformed_frame")
    assert isinstance(events[-1], ev.TurnCompleted)
    assert set((await restarts(daemon)).values()) == {0}


async def test_a_client_cannot_claim_the_loopback_identity(daemon):
    """Old: frames from a DEALER named ``<node>~loop`` were the daemon's own traffic."""
    ident = f"{daemon.system.node_id}~loop".encode()
    async with open_raw_client(daemon.paths.endpoint, identity=ident) as mallory:
        reply = (await mallory.reply_to(await mallory.send(
            RecordUsage("s", "t", "m", "planner", Usage(cost_usd="NaN")), "cost",
            sender=daemon.system.address("planner")), REPLY_S)).body
    assert isinstance(reply, Failure) and reply.code == "forbidden_message"


async def test_a_client_may_address_only_the_actor_that_serves_its_command(daemon):
    """A client tool result straight to the planner would skip the session's checks."""
    async with open_raw_client(daemon.paths.endpoint) as mallory:
        direct = await mallory.ask(SubmitToolResult("s", "t", "tu", "x"), "planner")
        elsewhere = await mallory.ask(GetStatus(), f"{daemon.system.node_id}x/control")
        as_reply = await mallory.ask(Ping(), "control", correlation_id="someone-elses-request")
    assert all(isinstance(r, Failure) and r.code == "forbidden_message" for r in (direct, elsewhere, as_reply))


async def test_a_spoofed_actor_sender_gets_the_error_itself_and_starts_no_ping_pong(daemon):
    """H3 at the edge: the error for a command an actor does not serve used to go to the actor named
    in ``sender`` — which answered it with an error of its own, forever, at 100 % CPU."""
    async with open_raw_client(daemon.paths.endpoint) as mallory:
        reply = await mallory.ask(Ping(b"x"), "session", sender=daemon.system.address("cost"), timeout=REPLY_S)
        status = await mallory.ask(GetStatus(), "control")
    assert isinstance(reply, Failure) and reply.code == "unsupported_message"
    assert {name: a["restarts"] for name, a in status.actors.items() if a["restarts"]} == {}


# --- H1: bounds on client commands ----------------------------------------------------------------------

async def test_client_commands_out_of_bounds_are_refused_before_any_actor_sees_them(daemon, client):
    deep: dict = {}
    for _ in range(40):
        deep = {"k": deep}
    info = await client.open_session()
    async with open_raw_client(daemon.paths.endpoint) as mallory:
        replies = [
            await mallory.ask(OpenSession("s" * 10_000), "session"),
            await mallory.ask(StartTurn(info.session_id, "hi", tools=(ToolDefinition("t", input_schema=deep),)),
                              "session"),
            await mallory.ask(GetTrace("t" * 5_000), "control"),
            await mallory.ask(SetModel(info.session_id, "m" * 1_000), "session"),
        ]
    assert [getattr(r, "code", r) for r in replies] == ["invalid_message"] * 4
    listing = await client.request("session", ListSessions())
    assert all(len(s.session_id) < 100 for s in listing.sessions)
    assert (await client.status()).turns_running == 0


# --- L5: replies follow the transport, not the frame ----------------------------------------------------

@pytest.mark.chunk_delay(0.02)
async def test_declaring_another_clients_node_id_steals_none_of_its_replies(daemon, client):
    info = await client.open_session()
    async with client.turn(info.session_id, "hello there") as turn:
        async with open_raw_client(daemon.paths.endpoint) as mallory:
            pong = await mallory.ask(Ping(b"mine"), "control", sender=client.address)
            with trio.fail_after(30):
                events = [e async for e in turn]
            stolen = list(mallory.inbox)
    assert pong == Pong(b"mine")
    assert isinstance(events[-1], ev.TurnCompleted) and any(isinstance(e, ev.TextDelta) for e in events)
    assert stolen == []


# --- L1: frame size capped before it is read ------------------------------------------------------------

async def test_a_frame_far_over_the_cap_is_cut_off_by_the_transport_without_being_read(daemon, client):
    """L1: a 1 GiB frame used to be read whole (2.1 GB RSS) before the decoder refused it."""
    async with open_raw_client(daemon.paths.endpoint) as mallory:
        await mallory.send_raw(b"\x00" * (64 * 1024 * 1024))
        ping = await mallory.send(Ping(b"after"), "control")
        replies = []
        with trio.move_on_after(REPLY_S):  # the Ping may be lost with the connection ZeroMQ dropped
            while not any(r.correlation_id == ping for r in replies):
                replies.append(await mallory.next())
        with trio.fail_after(30):
            status = await client.status()  # the daemon serves others meanwhile
    assert [r.body.code for r in replies if isinstance(r.body, Failure)] == []
    assert status.accepting_turns
    assert daemon.node.bad_frames == 0  # never decoded: ZeroMQ dropped the connection first


# --- M2: endpoints ----------------------------------------------------------------------------------------

async def test_over_tcp_a_session_belongs_to_the_connection_that_opened_it(short_tmp, home, nursery, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_ALLOW_TCP", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    paths = Paths(home, short_tmp / "state", f"tcp://127.0.0.1:{port}")
    daemon = Daemon(paths, DaemonSettings(shutdown_grace_s=1.0), demo_chunk_delay=0.05)
    await nursery.start(daemon.run)
    try:
        async with open_client(paths.endpoint) as alice, open_raw_client(paths.endpoint) as mallory:
            info = await alice.open_session()
            async with alice.turn(info.session_id, "hello there") as turn:
                cancel = await mallory.ask(CancelTurn(info.session_id), "session")
                history = await mallory.ask(GetHistory(info.session_id), "session")
                hijack = await mallory.ask(StartTurn(info.session_id, "mine now"), "session")
                listing = await mallory.ask(ListSessions(), "session")
                events = [e async for e in turn]
        assert [getattr(r, "code", None) for r in (cancel, history, hijack)] == ["forbidden_session"] * 3
        assert isinstance(listing, SessionListing) and listing.sessions == ()
        assert isinstance(events[-1], ev.TurnCompleted)
    finally:
        daemon.request_stop("test over")


# --- M4 with a second OS user: ownership by the peer's uid over ipc ---------------------------------------

def _as_other_user(endpoint: str, requests: list[tuple[str, bytes]], uid: int = 65534) -> list:
    """Fork, drop to ``uid`` and send each (recipient-irrelevant) frame; return the decoded replies."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no trio, a fresh context, plain blocking calls, then _exit
        try:
            signal.alarm(30)  # never leave the parent waiting on the pipe
            os.close(read_fd)
            os.setgid(uid)
            os.setuid(uid)
            ctx = zmq.Context()
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, REPLY_S * 1000)
            sock.connect(endpoint)
            out: list[str | None] = []
            for _, payload in requests:
                sock.send(payload)
                try:
                    out.append(sock.recv().hex())
                except zmq.Again:
                    out.append(None)
            os.write(write_fd, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 1 << 20):
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return [decode(bytes.fromhex(h)).body if h else None for h in json.loads(data or b"[]")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
@pytest.mark.chunk_delay(0.05)
async def test_another_user_can_neither_list_read_cancel_nor_join_sessions(daemon, client, short_tmp):
    sock_path = daemon.paths.endpoint[len("ipc://"):]
    os.chmod(short_tmp, 0o755)   # only so that the second user can reach the socket at all
    os.chmod(sock_path, 0o777)
    info = await client.open_session()
    async with client.turn(info.session_id, "hello there") as turn:
        def env(body, recipient, n):
            return encode(Envelope(body, recipient, "mallory/client", f"o{n}"))
        requests = [("session", env(ListSessions(include_workers=True), "session", 1)),
                    ("session", env(GetHistory(info.session_id), "session", 2)),
                    ("session", env(CancelTurn(info.session_id), "session", 3)),
                    ("session", env(StartTurn(info.session_id, "me too"), "session", 4)),
                    ("session", env(OpenSession(), "session", 5)),
                    ("control", env(Ping(b"hi"), "control", 6))]
        replies = await trio.to_thread.run_sync(_as_other_user, daemon.paths.endpoint, requests)
        events = [e async for e in turn]
    listing, history, cancel, join, own, pong = replies
    assert isinstance(listing, SessionListing) and listing.sessions == ()
    assert [getattr(r, "code", r) for r in (history, cancel, join)] == ["forbidden_session"] * 3
    assert isinstance(own, SessionInfo) and pong == Pong(b"hi")
    assert isinstance(events[-1], ev.TurnCompleted)
    mine = await client.request("session", ListSessions())
    assert info.session_id in {s.session_id for s in mine.sessions}
    assert own.session_id not in {s.session_id for s in mine.sessions}


# --- L7: the connect check --------------------------------------------------------------------------------

async def test_a_daemon_that_answers_the_first_ping_late_is_still_reached(short_tmp, nursery):
    """3 of 200 concurrent `ask` exited 3 from a healthy daemon: the first Ping had a fixed 2 s."""
    endpoint = f"ipc://{short_tmp}/busy.sock"

    async def busy_daemon(task_status=trio.TASK_STATUS_IGNORED):
        from protocol.transport import open_zmq_socket
        async with open_zmq_socket(zmq.Context.instance(), zmq.ROUTER, bind=endpoint) as router:
            task_status.started()
            rid, payload = await router.receive()
            request = decode(payload)
            await trio.sleep(3)  # busy: hundreds of clients connect at once
            await router.send([rid, encode(Envelope(Pong(), request.sender, "x/control",
                                                    correlation_id=request.msg_id))])
            await trio.sleep_forever()

    await nursery.start(busy_daemon)
    with trio.fail_after(20):
        async with open_client(endpoint) as client:
            assert client.endpoint == endpoint


async def test_a_socket_file_nobody_listens_on_is_reported_at_once(short_tmp):
    path = short_tmp / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, like after kill -9
    with trio.fail_after(5), pytest.raises(DaemonUnreachable, match="nobody is listening"):
        async with open_client(f"ipc://{path}"):
            pass


# --- client tool results: exactly one per call ------------------------------------------------------------



@pytest.fixture
async def fake_stack(nursery, short_tmp, wire_mode, monkeypatch, request):
    hwm = getattr(request, "param", None)
    if hwm is not None:
        monkeypatch.setattr(node_module, "PEER_HWM", hwm)
    async with open_fake_openai(api_key=None) as oai:
        home = write_home(short_tmp, one_model_yaml(oai.base_url), "local:llama")
        daemon, _ = await start_daemon(nursery, short_tmp, home, wire_mode=wire_mode)
        yield daemon, oai
        daemon.request_stop("test over")


async def _events_until(mallory, predicate, timeout=30):
    with trio.fail_after(timeout):
        while True:
            env = mallory.inbox.pop(0) if mallory.inbox else await mallory.next()
            if isinstance(env.body, EventNotice) and predicate(env.body.event):
                return env.body.event


async def test_three_identical_results_for_one_client_tool_call_get_one_ack_and_two_errors(fake_stack):
    daemon, oai = fake_stack
    oai.script(Answer(text=(), tool_calls=(ToolCall("ask_user", {"q": "?"}, id="call_1"),)), Answer(text=("done",)))
    async with open_raw_client(daemon.paths.endpoint) as mallory:
        info = await mallory.ask(OpenSession(), "session")
        accepted = await mallory.ask(StartTurn(info.session_id, "use the tool", tools=(ToolDefinition("ask_user"),)),
                                     "session")
        assert isinstance(accepted, TurnAccepted)
        call = await _events_until(mallory, lambda e: isinstance(e, ev.ToolCalled) and e.client_tool)
        replies = [await mallory.ask(SubmitToolResult(info.session_id, accepted.turn_id, call.tool_use_id, "yes"),
                                     "session") for _ in range(3)]
        terminal = await _events_until(mallory, lambda e: isinstance(e, ev.TERMINAL_EVENT_TYPES))
    assert isinstance(replies[0], Ack)
    assert all(isinstance(r, Failure) and r.code in ("duplicate_tool_result", "no_such_tool_call", "no_such_turn")
               for r in replies[1:]), replies
    assert isinstance(terminal, ev.TurnCompleted)
    assert set((await restarts(daemon)).values()) == {0}


# --- M6: a client that stops reading ----------------------------------------------------------------------

CHUNKS = 20_000


@pytest.mark.parametrize("fake_stack", [20], indirect=True)
async def test_a_client_that_stops_reading_gets_stream_overflow_then_the_terminal_event(fake_stack):
    """ZeroMQ used to drop everything past the high-water mark, the terminal event included."""
    daemon, oai = fake_stack
    oai.script(Answer(text=tuple("x " for _ in range(CHUNKS))))
    async with open_raw_client(daemon.paths.endpoint, options={zmq.RCVHWM: 5}, receive_buffer=1) as mallory:
        info = await mallory.ask(OpenSession(), "session")
        accepted = await mallory.ask(StartTurn(info.session_id, "a long answer"), "session")
        assert isinstance(accepted, TurnAccepted)
        with trio.fail_after(60):  # the whole answer streams while this client reads nothing
            while daemon.session.running_turns() or not daemon.node.streams.dropped:
                await trio.sleep(0.05)
        deltas, overflow, terminal = 0, [], None
        after: list[Envelope] = []
        with trio.fail_after(60):
            while terminal is None:
                env = await mallory.next()
                event = env.body.event if isinstance(env.body, EventNotice) else None
                if isinstance(event, ev.TextDelta):
                    assert not overflow, "no delta after stream.overflow"
                    deltas += 1
                elif isinstance(event, ev.StreamOverflow):
                    overflow.append(event)
                elif isinstance(event, ev.TERMINAL_EVENT_TYPES):
                    terminal = event
        with trio.move_on_after(0.5):
            after.append(await mallory.next())
    assert isinstance(terminal, ev.TurnCompleted)
    # Deltas are coalesced per network read (issue 16): each event carries one chunk or more.
    assert len(overflow) == 1 and 0 < overflow[0].missed_events <= CHUNKS - deltas
    assert "read too slowly" in overflow[0].message
    assert after == []
    assert daemon.node.router.parked == 0


def test_the_cli_prints_stream_overflow_as_one_clear_line(capsys):
    import io

    from orchestrator.streaming import _print_event
    from protocol.codec import event_to_json_obj

    notice = ev.StreamOverflow("s_1", "t_1", 1234, "this client read too slowly: 1234 events of turn t_1 were not "
                                                   "delivered; the full answer is in the session's history")
    _print_event(notice, io.StringIO())
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"orchestrator: {notice.message} [stream.overflow]"]
    assert event_to_json_obj(notice)["type"] == "stream.overflow" and event_to_json_obj(notice)["missed_events"] == 1234
