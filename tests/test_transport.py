"""trio <-> ZeroMQ transport: multiplexing, cancellation, closing, the edge-trigger pitfall, errors."""
from __future__ import annotations

import errno
import gc
import random
import subprocess
import sys
import time
import warnings
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import zmq

from protocol.transport import (
    ANY_TCP,
    EndpointError,
    TransportClosed,
    TransportError,
    ipc_endpoint,
    open_zmq_socket,
)
import trio.lowlevel

PEER = Path(__file__).with_name("transport_peer.py")


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    # linger 0: a test that failed half-way must not hang the suite here.
    context.destroy(linger=0)


@asynccontextmanager
async def echo_peer(endpoint: str):
    """A synchronous pyzmq ROUTER echo server in another process, connected to ``endpoint``."""
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, str(PEER), endpoint],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                check=False,
            )
        )
        try:
            yield process
        finally:
            with trio.move_on_after(10, shield=True):
                await process.stdin.aclose()  # EOF is the peer's signal to exit
                await process.wait()


@asynccontextmanager
async def dealer_router_pair(ctx, endpoint, **dealer_options):
    """Our DEALER connected to our ROUTER; yields (dealer, router, dealer's routing id)."""
    async with (
        open_zmq_socket(ctx, zmq.ROUTER, bind=endpoint) as router,
        open_zmq_socket(ctx, zmq.DEALER, connect=router.last_endpoint, identity=b"dealer", **dealer_options) as dealer,
    ):
        # Until the ROUTER has heard from the DEALER it cannot route to it.
        await dealer.send([b"hello"])
        with trio.fail_after(5):
            assert await router.receive() == [b"dealer", b"hello"]
        yield dealer, router, b"dealer"


# --------------------------------------------------------------- multiplexing


async def test_concurrent_requests_over_one_dealer_each_get_exactly_their_reply(ctx):
    tasks, per_task = 100, 1_000
    outstanding: dict[bytes, bytes] = {}
    inboxes = {}
    completed = 0

    async with (
        open_zmq_socket(ctx, zmq.DEALER, bind=ANY_TCP) as dealer,
        echo_peer(dealer.last_endpoint),
    ):

        async def dispatch():
            async for request_id, payload in dealer:
                task_id, seq = request_id.split(b":")
                # Exactly one request per task is in flight: anything else is
                # a lost, duplicated or misrouted reply.
                assert outstanding.pop(task_id) == seq, request_id
                inboxes[task_id].send_nowait((seq, payload))

        async def client(n: int):
            nonlocal completed
            task_id = b"%d" % n
            inbox_send, inbox = trio.open_memory_channel(1)
            inboxes[task_id] = inbox_send
            for i in range(per_task):
                seq = b"%d" % i
                payload = b"payload of %s/%s" % (task_id, seq)
                outstanding[task_id] = seq
                await dealer.send([task_id + b":" + seq, payload])
                assert await inbox.receive() == (seq, payload)
                completed += 1

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(dispatch)
                async with trio.open_nursery() as clients:
                    for n in range(tasks):
                        clients.start_soon(client, n)
                nursery.cancel_scope.cancel()

    assert completed == tasks * per_task
    assert outstanding == {}


async def test_heavy_interleaving_of_sends_and_receives_never_stalls(ctx, short_tmp):
    # Replies keep arriving while sends are in progress, so sends keep
    # consuming the FD edge that announced them: the classic hang.
    tasks, per_task = 20, 250
    async with dealer_router_pair(ctx, ipc_endpoint(short_tmp)) as (dealer, router, _):

        async def echo():
            async for frames in router:
                await router.send(frames)

        async def sender(n: int):
            for i in range(per_task):
                await dealer.send([b"%d:%d" % (n, i)])
                if random.random() < 0.3:
                    await trio.lowlevel.checkpoint()

        received = set()
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                for n in range(tasks):
                    nursery.start_soon(sender, n)
                while len(received) < tasks * per_task:
                    [body] = await dealer.receive()
                    assert body not in received
                    received.add(body)
                nursery.cancel_scope.cancel()


async def test_send_that_consumes_the_read_edge_still_wakes_the_reader(ctx, short_tmp):
    # Deterministic version of the pitfall: a reader is already blocked, the
    # reply lands and signals the FD, and a send clears that signal (ZMQ
    # processes pending commands on send) before the event loop polls. A
    # "recv, on EAGAIN wait_readable" design hangs here on the first round.
    endpoint = ipc_endpoint(short_tmp)
    router = ctx.socket(zmq.ROUTER)
    router.bind(endpoint)
    try:
        async with open_zmq_socket(ctx, zmq.DEALER, connect=endpoint) as dealer:
            for i in range(20):
                await dealer.send([b"ping %d" % i])
                with trio.fail_after(5):
                    while not router.poll(0):
                        await trio.sleep(0.001)
                identity, _ = router.recv_multipart()
                got = []

                async def reader(into: list = got):   # this iteration's list
                    into.append(await dealer.receive())

                with trio.fail_after(5):
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(reader)
                        await trio.sleep(0.005)  # reader is blocked in receive()
                        router.send_multipart([identity, b"pong %d" % i])
                        # Block the loop (deliberately) so the reply lands before
                        # anyone in trio can notice, then let a send eat the edge.
                        time.sleep(0.005)  # noqa: ASYNC251
                        await dealer.send([b"edge eater %d" % i])
                assert got == [[b"pong %d" % i]]
                assert router.poll(5000)
                assert router.recv_multipart()[1] == b"edge eater %d" % i
    finally:
        router.close(linger=0)


# --------------------------------------------------------------- cancellation


async def test_cancelled_receive_leaves_the_socket_usable_for_the_next_receiver(ctx, short_tmp):
    async with dealer_router_pair(ctx, ipc_endpoint(short_tmp)) as (dealer, router, dealer_id):
        async with trio.open_nursery() as nursery:
            cancelled = trio.CancelScope()

            async def doomed_receiver():
                with cancelled:
                    await dealer.receive()
                    pytest.fail("received although cancelled")

            nursery.start_soon(doomed_receiver)
            await trio.sleep(0.05)  # it is now blocked inside receive()
            cancelled.cancel()

        await router.send([dealer_id, b"after the cancel"])
        with trio.fail_after(5):
            assert await dealer.receive() == [b"after the cancel"]


async def test_receivers_cancelled_at_random_moments_lose_no_message(ctx, short_tmp):
    count = 2_000
    async with dealer_router_pair(ctx, ipc_endpoint(short_tmp)) as (dealer, router, dealer_id):
        received = []

        async def impatient_receiver():
            while len(received) < count:
                with trio.move_on_after(random.choice([0, 0.0001, 0.001])):
                    received.append(await dealer.receive())

        async def producer():
            for i in range(count):
                await router.send([dealer_id, b"%d" % i])
                if i % 50 == 0:
                    await trio.sleep(0.001)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer)
                for _ in range(4):
                    nursery.start_soon(impatient_receiver)

    assert sorted(int(body) for [body] in received) == list(range(count))


# ----------------------------------------------------------------- backpressure


async def test_send_waits_when_zmq_cannot_take_more(ctx):
    # A bound DEALER with no peer has nowhere to put messages.
    async with open_zmq_socket(ctx, zmq.DEALER, bind=ANY_TCP, send_buffer=2) as dealer:
        sent = 0
        with trio.move_on_after(0.2):
            for _ in range(100):
                await dealer.send([b"x"])
                sent += 1
        # The channel's two slots; the owner takes nothing while ZMQ says no POLLOUT.
        assert sent == 2


async def test_unread_messages_wait_in_order_until_someone_receives(ctx, short_tmp):
    count = 500
    endpoint = ipc_endpoint(short_tmp)
    async with dealer_router_pair(ctx, endpoint, receive_buffer=4) as (dealer, router, dealer_id):
        for i in range(count):
            await router.send([dealer_id, b"%d" % i])
        await trio.sleep(0.1)  # let the owner fill the inbound channel and stall
        with trio.fail_after(20):
            got = [int((await dealer.receive())[0]) for _ in range(count)]
    assert got == list(range(count))


# -------------------------------------------------------------------- closing


async def test_closing_fails_pending_receivers_and_stops_the_peer_cleanly(ctx):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = []
        async with (
            open_zmq_socket(ctx, zmq.DEALER, bind=ANY_TCP) as dealer,
            echo_peer(dealer.last_endpoint) as peer,
        ):
            await dealer.send([b"ping"])
            with trio.fail_after(10):
                assert await dealer.receive() == [b"ping"]

            async def receiver():
                try:
                    await dealer.receive()
                except TransportClosed as exc:
                    outcomes.append(exc)

            async def iterator():
                async for _ in dealer:
                    pass
                outcomes.append("iteration ended")

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(receiver)
                    nursery.start_soon(iterator)
                    await trio.sleep(0.05)  # all four are waiting now
                    await dealer.aclose()

            assert dealer.closed
            await dealer.aclose()  # idempotent
            with pytest.raises(TransportClosed):
                await dealer.send([b"too late"])
            with pytest.raises(trio.ClosedResourceError):  # TransportClosed is one too
                await dealer.receive()

        assert peer.returncode == 0
        assert len(outcomes) == 4 and "iteration ended" in outcomes
        dealer = peer = outcomes = None  # drop the last references (the closures hold them too) before collecting
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_messages_sent_just_before_closing_are_still_delivered(ctx, short_tmp):
    async with open_zmq_socket(ctx, zmq.ROUTER, bind=ipc_endpoint(short_tmp)) as router:
        async with open_zmq_socket(ctx, zmq.DEALER, connect=router.last_endpoint) as dealer:
            for i in range(5):
                await dealer.send([b"%d" % i])
        # The owner may not have run since those sends: aclose() flushes.
        with trio.fail_after(5):
            assert [(await router.receive())[1] for _ in range(5)] == [b"0", b"1", b"2", b"3", b"4"]


async def test_close_with_undeliverable_messages_does_not_block_context_termination():
    ctx = zmq.Context()
    try:
        # Connected to a port nobody listens on: messages queue inside ZMQ.
        async with open_zmq_socket(ctx, zmq.DEALER, connect="tcp://127.0.0.1:9", linger=0.05) as dealer:
            for _ in range(10):
                await dealer.send([b"nobody will read this"])
        with trio.fail_after(5):
            await trio.to_thread.run_sync(ctx.term, abandon_on_cancel=True)
    finally:
        if not ctx.closed:
            ctx.destroy(linger=0)


async def test_an_error_in_the_block_propagates_unwrapped_and_closes_the_socket(ctx):
    with pytest.raises(ValueError, match="from the body"):
        async with open_zmq_socket(ctx, zmq.DEALER, bind=ANY_TCP) as dealer:
            raise ValueError("from the body")
    assert dealer.closed


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kind", "endpoint"),
    [("bind", "tcp://not an address"), ("bind", "nonsense://x"), ("connect", "bogus://x")],
)
async def test_invalid_endpoints_raise_endpoint_error(ctx, kind, endpoint):
    with pytest.raises(EndpointError) as info:
        async with open_zmq_socket(ctx, zmq.DEALER, **{kind: endpoint}):
            pytest.fail("opened")
    assert isinstance(info.value, TransportError)
    assert isinstance(info.value.__cause__, zmq.ZMQError)
    assert endpoint in str(info.value)


async def test_address_in_use_is_an_endpoint_error_with_its_errno(ctx):
    async with open_zmq_socket(ctx, zmq.ROUTER, bind=ANY_TCP) as first:
        with pytest.raises(EndpointError) as info:
            async with open_zmq_socket(ctx, zmq.ROUTER, bind=first.last_endpoint):
                pass
    assert info.value.errno == errno.EADDRINUSE


async def test_invalid_socket_option_is_a_transport_error(ctx):
    with pytest.raises(TransportError):
        async with open_zmq_socket(ctx, zmq.DEALER, options={zmq.EVENTS: 1}):
            pass


async def test_a_failed_socket_reports_the_zmq_error_as_a_transport_error(ctx):
    # With ROUTER_MANDATORY an unroutable message is an error inside the owner
    # (once some peer is connected; before that ZMQ never reports POLLOUT).
    async with (
        open_zmq_socket(ctx, zmq.ROUTER, bind=ANY_TCP, options={zmq.ROUTER_MANDATORY: 1}) as router,
        open_zmq_socket(ctx, zmq.DEALER, connect=router.last_endpoint) as dealer,
    ):
        await dealer.send([b"hello"])
        with trio.fail_after(5):
            await router.receive()
        await router.send([b"no such peer", b"hello?"])
        with trio.fail_after(5), pytest.raises(TransportClosed) as info:
            await router.receive()
    cause = info.value.__cause__
    assert isinstance(cause, TransportError) and not isinstance(cause, zmq.ZMQError)
    assert cause.errno == errno.EHOSTUNREACH
    with pytest.raises(TransportClosed):
        await router.send([b"no such peer", b"again"])


async def test_context_termination_closes_the_socket():
    ctx = zmq.Context()
    try:
        async with open_zmq_socket(ctx, zmq.DEALER, bind=ANY_TCP) as dealer:
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    # term() blocks until our owner notices and closes the socket.
                    nursery.start_soon(partial(trio.to_thread.run_sync, ctx.term, abandon_on_cancel=True))
                    with pytest.raises(TransportClosed) as info:
                        await dealer.receive()
            assert info.value.__cause__.errno == zmq.ETERM
    finally:
        if not ctx.closed:
            ctx.destroy(linger=0)


async def test_frames_must_be_bytes_and_messages_non_empty(ctx):
    async with open_zmq_socket(ctx, zmq.DEALER, bind=ANY_TCP) as dealer:
        with pytest.raises(TypeError):
            await dealer.send(["text is not bytes"])
        with pytest.raises(ValueError):
            await dealer.send([])
        await dealer.send([bytearray(b"bytes-like is fine"), memoryview(b"too")])


# --------------------------------------------------------------- connection monitor

async def test_settle_returns_once_the_owner_has_taken_in_what_zeromq_already_held(ctx):
    raw = ctx.socket(zmq.PAIR)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind("inproc://settle")
    try:
        async with open_zmq_socket(ctx, zmq.PAIR, connect="inproc://settle") as sock:
            for n in range(3):
                raw.send(b"%d" % n)   # inside ZeroMQ now; our owner has not run yet
            await sock.settle()
            assert sock.queued == 3
            assert [await sock.receive() for _ in range(3)] == [[b"0"], [b"1"], [b"2"]]
    finally:
        raw.close(linger=0)


async def test_a_monitored_dealer_reports_its_peer_connecting_and_going_away(ctx, short_tmp):
    from protocol.transport import monitor_event

    endpoint = ipc_endpoint(short_tmp)
    seen: list[int] = []
    async with open_zmq_socket(ctx, zmq.ROUTER, bind=endpoint) as router, \
            open_zmq_socket(ctx, zmq.DEALER, connect=endpoint,
                            monitor=zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED) as dealer:
        assert dealer.monitor is not None
        with trio.fail_after(10):
            seen.append(monitor_event(await dealer.monitor.receive()))
            await router.aclose()
            seen.append(monitor_event(await dealer.monitor.receive()))
    assert seen == [zmq.EVENT_CONNECTED, zmq.EVENT_DISCONNECTED]
