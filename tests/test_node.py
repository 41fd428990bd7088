"""Location transparency: the same request reaches a local actor or one on another node over ZeroMQ."""
import trio

from actors.runtime.kernel import ActorSystem
from actors.runtime.node import Node
from protocol.messages import Ping, Pong

from .test_kernel import Echo


async def test_a_request_reaches_an_actor_on_another_node_by_address(short_tmp):
    a, b = ActorSystem("nodeA"), ActorSystem("nodeB")
    node_a, node_b = Node(a), Node(b)
    async with trio.open_nursery() as n:
        await n.start(node_a.serve, f"ipc://{short_tmp}/a.sock")
        await n.start(node_b.serve, f"ipc://{short_tmp}/b.sock")
        await n.start(Echo(b).run)
        await node_a.connect_peer("nodeB", f"ipc://{short_tmp}/b.sock")
        with trio.fail_after(10):
            remote = await a.request("nodeB/echo", Ping(b"over the wire"))
            local = await b.request("echo", Ping(b"in process"))
        assert remote == Pong(b"over the wire") and local == Pong(b"in process")
        n.cancel_scope.cancel()


async def test_wire_mode_sends_even_local_traffic_through_the_codec(short_tmp):
    system = ActorSystem("nodeW", wire_mode=True)
    node = Node(system)
    encoded = []
    import protocol.codec as codec

    real_encode = codec.encode

    def spy(env):
        encoded.append(type(env.body).__name__)
        return real_encode(env)

    import actors.runtime.node as node_module

    node_module.encode = spy
    try:
        async with trio.open_nursery() as n:
            await n.start(node.serve, f"ipc://{short_tmp}/w.sock")
            await n.start(Echo(system).run)
            with trio.fail_after(10):
                assert await system.request("echo", Ping(b"x")) == Pong(b"x")
            n.cancel_scope.cancel()
    finally:
        node_module.encode = real_encode
    assert encoded == ["Ping", "Pong"]


async def test_a_clients_ping_is_answered_by_the_node_without_the_control_actor(short_tmp):
    """The daemon's liveness Ping skips the actor hop (``answer_pings``): the node answers it even
    with no control actor running at all, and the Pong correlates with the Ping."""
    from orchestrator.client import open_client

    system = ActorSystem("daemon")
    node = Node(system, answer_pings=True)
    async with trio.open_nursery() as n:
        endpoint = await n.start(node.serve, f"ipc://{short_tmp}/p.sock")
        async with open_client(endpoint, check=False) as client:
            with trio.fail_after(10):
                assert await client.request("control", Ping(b"alive?")) == Pong(b"alive?")
                await client.ping()
        n.cancel_scope.cancel()


async def test_a_ping_to_another_actor_or_posing_as_a_reply_still_takes_the_normal_path(short_tmp):
    """Only a client's Ping to ``control`` is answered early: to another actor it goes to that
    actor, and one carrying a correlation id is refused as before (clients send no replies)."""
    from orchestrator.client import open_client
    from protocol.codec import Envelope, decode, encode, new_id

    system = ActorSystem("daemon")
    node = Node(system, answer_pings=True)
    async with trio.open_nursery() as n:
        endpoint = await n.start(node.serve, f"ipc://{short_tmp}/q.sock")
        await n.start(Echo(system).run)
        async with open_client(endpoint, check=False) as client:
            with trio.fail_after(10):
                assert await client.request("echo", Ping(b"to echo")) == Pong(b"to echo")
        import zmq

        from protocol.transport import open_zmq_socket

        async with open_zmq_socket(zmq.Context.instance(), zmq.DEALER, connect=endpoint) as sock:
            await sock.send([encode(Envelope(Ping(b"x"), "control", "m/client", new_id(), "someone-elses"))])
            with trio.fail_after(10):
                reply = decode((await sock.receive())[-1])
        assert reply.body.code == "forbidden_message"
        n.cancel_scope.cancel()


async def test_a_clients_commands_reach_a_busy_actor_in_the_order_sent(short_tmp):
    """The ROUTER's owner puts a command straight into its actor's mailbox only while nothing waits
    ahead of it: once a mailbox is full the rest go through the inbound loop's backlog, and the
    actor still takes every command in the order the client sent them."""
    import zmq

    from protocol.codec import Envelope, encode, new_id
    from protocol.transport import open_zmq_socket

    system = ActorSystem("daemon")
    system.mailbox("echo", size=4)   # fills after four commands
    echo = Echo(system)
    gate = trio.Event()
    answer = echo.on_ping

    async def slow_ping(env):
        await gate.wait()
        return await answer(env)

    echo.table = {Ping: slow_ping}
    node = Node(system, answer_pings=True)
    count = 60
    async with trio.open_nursery() as n:
        endpoint = await n.start(node.serve, f"ipc://{short_tmp}/o.sock")
        await n.start(echo.run)
        async with open_zmq_socket(zmq.Context.instance(), zmq.DEALER, connect=endpoint) as sock:
            for i in range(count):
                await sock.send([encode(Envelope(Ping(b"%d" % i), "echo", "c/client", new_id()))])
            with trio.fail_after(10):
                while system.liveness("echo").delivered < 5:   # the mailbox is full and more wait
                    await trio.sleep(0.001)
                gate.set()
                for _ in range(count):
                    await sock.receive()
        n.cancel_scope.cancel()
    assert echo.seen == [b"%d" % i for i in range(count)]
