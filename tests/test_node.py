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
