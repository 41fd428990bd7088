"""Actor kernel: mailboxes with backpressure, request/reply, failures as data, supervision."""
import pytest
import trio
import trio.testing

from actors.runtime.kernel import Actor, ActorSystem, RequestTimeout
from actors.runtime.supervisor import ChildSpec, Restart, Supervisor, SupervisorGaveUp
from protocol.errors import RemoteError
from protocol.messages import Ack, Failure, Ping, Pong


class Echo(Actor):
    name = "echo"

    def __init__(self, system, crash_on=b"boom"):
        super().__init__(system)
        self.crash_on = crash_on
        self.seen = []

    def handlers(self):
        return {Ping: self.on_ping}

    async def on_ping(self, env):
        self.seen.append(env.body.payload)
        if env.body.payload == self.crash_on:
            raise RuntimeError("exploded")
        if env.body.payload == b"fail":
            return Failure("nope", "refused as data")
        if env.body.payload == b"slow":
            await trio.sleep(100)
        return Pong(env.body.payload)


async def test_request_gets_the_correlated_reply():
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(Echo(system).run)
        replies = []

        async def ask(i):
            replies.append(await system.request("echo", Ping(str(i).encode())))

        async with trio.open_nursery() as inner:
            for i in range(50):
                inner.start_soon(ask, i)
        assert sorted(r.payload for r in replies) == sorted(str(i).encode() for i in range(50))
        n.cancel_scope.cancel()


async def test_failure_reply_is_raised_as_remote_error():
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(Echo(system).run)
        with pytest.raises(RemoteError) as info:
            await system.request("echo", Ping(b"fail"))
        assert info.value.code == "nope"
        n.cancel_scope.cancel()


async def test_request_times_out_at_the_caller(autojump_clock):
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(Echo(system).run)
        with pytest.raises(RequestTimeout):
            await system.request("echo", Ping(b"slow"), timeout=1.0)
        n.cancel_scope.cancel()


async def test_unknown_actor_answers_with_a_failure():
    system = ActorSystem()
    with pytest.raises(RemoteError) as info:
        await system.request("nobody", Ping())
    assert info.value.code == "unknown_actor"


async def test_unsupported_message_answers_with_a_failure():
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(Echo(system).run)
        with pytest.raises(RemoteError) as info:
            await system.request("echo", Ack())
        assert info.value.code == "unsupported_message"
        n.cancel_scope.cancel()


async def test_mailbox_is_bounded_so_senders_wait():
    system = ActorSystem()
    system.mailbox("idle", size=2)
    await system.tell("idle", Ping())
    await system.tell("idle", Ping())
    with trio.move_on_after(0.05) as scope:
        await system.tell("idle", Ping())
    assert scope.cancelled_caught  # the third send waited: backpressure, not an unbounded queue


async def test_a_crashing_handler_answers_that_request_with_failure_and_the_actor_carries_on(autojump_clock):
    system = ActorSystem()
    echo = Echo(system)
    sup = Supervisor([ChildSpec("echo", echo.run, Restart.PERMANENT)], max_restarts=3, window_s=10)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        with pytest.raises(RemoteError) as info:
            await system.request("echo", Ping(b"boom"))
        assert info.value.code == "internal_error"
        reply = await system.request("echo", Ping(b"after"))
        assert reply == Pong(b"after")
        assert sup.state["echo"].restarts == 0
        assert echo.faults == 1 and "exploded" in (echo.last_fault or "")
        n.cancel_scope.cancel()


async def test_handler_faults_never_spend_the_supervisor_restart_budget(autojump_clock):
    system = ActorSystem()
    echo = Echo(system)
    sup = Supervisor([ChildSpec("echo", echo.run, Restart.PERMANENT)], max_restarts=2, window_s=10)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        for _ in range(20):
            with pytest.raises(RemoteError):
                await system.request("echo", Ping(b"boom"), timeout=5)
        assert await system.request("echo", Ping(b"still")) == Pong(b"still")
        assert sup.state["echo"].restarts == 0 and echo.faults == 20
        n.cancel_scope.cancel()


async def test_a_failing_spawned_task_is_a_fault_not_the_end_of_the_actor(autojump_clock):
    system = ActorSystem()
    echo = Echo(system)
    async with trio.open_nursery() as n:
        await n.start(echo.run)

        async def broken():
            raise RuntimeError("background bug")

        echo.spawn(broken)
        await trio.testing.wait_all_tasks_blocked()
        assert echo.faults == 1
        assert await system.request("echo", Ping(b"x")) == Pong(b"x")
        n.cancel_scope.cancel()


class Dies(Echo):
    """Crashes outside its handlers: a background task of its own nursery raises."""

    name = "dies"

    async def setup(self, nursery):
        async def bomb():
            await trio.sleep(0.1)
            raise RuntimeError("actor died")

        nursery.start_soon(bomb)


async def test_supervisor_gives_up_after_too_many_restarts(autojump_clock):
    system = ActorSystem()
    sup = Supervisor([ChildSpec("dies", Dies(system).run, Restart.PERMANENT)], max_restarts=2, window_s=10)
    with pytest.RaisesGroup(pytest.RaisesExc(SupervisorGaveUp), flatten_subgroups=True):
        async with trio.open_nursery() as n:
            await n.start(sup.run)
            await trio.sleep(10)


async def test_an_unsolicited_failure_or_reply_is_dropped_never_answered():
    """A frame naming another actor as its sender must not start an error ping-pong."""
    system = ActorSystem()
    a, b = Echo(system), Echo(system)
    b.name = "other"
    async with trio.open_nursery() as n:
        await n.start(a.run)
        await n.start(b.run)
        await system.tell("echo", Failure("x", "spoofed"), sender=system.address("other"))
        await system.tell("echo", Pong(b"late"), sender=system.address("other"), correlation_id="m1")
        await system.tell("echo", Ack(), sender=system.address("other"))   # unsupported → one Failure
        await trio.testing.wait_all_tasks_blocked()
        assert (a.dropped, b.dropped) == (2, 1)        # other got one Failure and dropped it
        assert a.handled + b.handled == 4
        n.cancel_scope.cancel()


async def test_temporary_child_is_not_restarted(autojump_clock):
    runs = []

    async def child(task_status=trio.TASK_STATUS_IGNORED):
        runs.append(1)
        task_status.started()
        raise RuntimeError("once")

    sup = Supervisor([ChildSpec("t", child, Restart.TEMPORARY)])
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await trio.sleep(5)
        n.cancel_scope.cancel()
    assert runs == [1] and sup.state["t"].status == "crashed"


async def test_transient_child_is_restarted_only_after_a_crash(autojump_clock):
    runs = []

    async def child(task_status=trio.TASK_STATUS_IGNORED):
        runs.append(1)
        task_status.started()
        if len(runs) == 1:
            raise RuntimeError("first run crashes")

    sup = Supervisor([ChildSpec("t", child, Restart.TRANSIENT)])
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await trio.sleep(5)
        n.cancel_scope.cancel()
    assert len(runs) == 2 and sup.state["t"].status == "stopped"


async def test_a_request_in_flight_when_its_actor_dies_gets_an_error_reply_not_a_timeout(autojump_clock):
    system = ActorSystem()
    dies = Dies(system)   # its bomb goes off at t=0.1 while Ping(b"slow") is being handled
    sup = Supervisor([ChildSpec("dies", dies.run, Restart.PERMANENT)], max_restarts=5, window_s=10)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        with pytest.raises(RemoteError) as info:  # not RequestTimeout: the answer came at once
            await system.request("dies", Ping(b"slow"), timeout=60)
        assert info.value.code == "internal_error" and "stopped while handling Ping" in info.value.message
        n.cancel_scope.cancel()


async def test_a_crash_that_races_with_stopping_is_logged_and_the_stop_stays_clean():
    async def child(task_status=trio.TASK_STATUS_IGNORED):
        async def crashes_when_cancelled():
            try:
                await trio.sleep_forever()
            finally:
                raise RuntimeError("crash during stop")

        async with trio.open_nursery() as inner:
            inner.start_soon(crashes_when_cancelled)
            task_status.started()
            await trio.sleep_forever()

    sup = Supervisor([ChildSpec("c", child, Restart.PERMANENT)])
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        n.cancel_scope.cancel()
    assert sup.state["c"].status == "crashed" and "crash during stop" in (sup.state["c"].last_error or "")


class SlowRouter(Actor):
    """Answers every Ping after one second of (virtual) work: a queue of them is slow, not dead."""

    name = "router"

    def handlers(self):
        return {Ping: self.on_ping}

    async def on_ping(self, env):
        await trio.sleep(1)
        return Pong(env.body.payload)


async def test_request_behind_a_queue_longer_than_its_timeout_still_gets_its_reply(autojump_clock):
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(SlowRouter(system).run)
        for _ in range(60):  # 60 s of work queued ahead, twice the request's timeout
            await system.tell("router", Ping(b"queued"))
        started = trio.current_time()
        reply = await system.request("router", Ping(b"mine"), timeout=30)
        assert reply.payload == b"mine"
        assert trio.current_time() - started > 30  # it really waited past the old fixed deadline
        n.cancel_scope.cancel()


async def test_request_to_an_actor_that_stopped_fails_with_a_clear_error(autojump_clock):
    system = ActorSystem()
    async with trio.open_nursery() as actor_nursery:
        await actor_nursery.start(SlowRouter(system).run)
        actor_nursery.cancel_scope.cancel()  # the router is gone (and nobody restarts it)
    with pytest.raises(RequestTimeout, match="router: it is not running"):
        await system.request("router", Ping(b"x"), timeout=30)


async def test_request_to_a_hung_handler_times_out_even_while_its_actor_is_alive(autojump_clock):
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(Echo(system).run)
        await system.tell("echo", Ping(b"slow"))  # hangs the actor's loop for 100 s
        with pytest.raises(RequestTimeout, match="took no message"):
            await system.request("echo", Ping(b"x"), timeout=5)
        n.cancel_scope.cancel()


class Busy(Actor):
    """Takes one message per second: its 4-slot mailbox stays full for a long while."""

    name = "busy"

    def handlers(self):
        return {Ping: self.on_ping}

    async def on_ping(self, env):
        await trio.sleep(1)


async def test_a_patient_tell_waits_for_a_full_mailbox_of_an_actor_that_works_through_it(autojump_clock):
    system = ActorSystem()
    system.mailbox("busy", size=4)
    async with trio.open_nursery() as n:
        await n.start(Busy(system).run)
        for _ in range(5):
            await system.tell("busy", Ping(b"queued"))
        assert await system.tell_patiently("busy", Ping(b"mine"), stall_s=2)  # ≈ 4 s of queue ahead
        n.cancel_scope.cancel()


async def test_a_patient_tell_gives_up_on_an_actor_that_stopped(autojump_clock):
    system = ActorSystem()
    system.mailbox("busy", size=1)
    async with trio.open_nursery() as actor_nursery:
        await actor_nursery.start(Busy(system).run)
        actor_nursery.cancel_scope.cancel()
    await system.tell("busy", Ping(b"fills the mailbox"))
    assert not await system.tell_patiently("busy", Ping(b"mine"), stall_s=2)


async def test_settled_means_every_delivered_message_was_handled_to_the_end():
    system = ActorSystem()
    echo = Echo(system)
    assert not system.settled("echo")   # not running yet: nothing can be said
    async with trio.open_nursery() as n:
        await n.start(echo.run)
        await trio.testing.wait_all_tasks_blocked()
        assert system.settled("echo") and system.settled(system.address("echo"))
        await system.tell("echo", Ping(b"a"), hand_over=False)
        assert not system.settled("echo")   # delivered, not yet taken
        await trio.testing.wait_all_tasks_blocked()
        assert echo.seen == [b"a"] and system.settled("echo")
        n.start_soon(system.tell, "echo", Ping(b"slow"))
        await trio.testing.wait_all_tasks_blocked()
        assert not system.settled("echo")   # taken, but its handler has not returned
        assert not system.settled("other-node/echo")
        n.cancel_scope.cancel()


async def test_publish_keeps_only_the_newest_message_of_a_kind_for_a_local_actor():
    system = ActorSystem()
    assert system.latest("echo", Pong) is None
    assert system.publish("echo", Pong(b"1")) and system.publish(system.address("echo"), Pong(b"2"))
    system.publish("echo", Ping(b"other kind"))
    assert system.latest("echo", Pong) == Pong(b"2") and system.latest("echo", Ping) == Ping(b"other kind")
    assert not system.publish("other-node/echo", Pong(b"3"))   # across nodes: ask instead
    assert not ActorSystem(wire_mode=True).publish("echo", Pong(b"4"))   # wire mode: every message on the wire


async def test_a_shorter_request_deadline_added_later_still_fires_first(autojump_clock):
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(Echo(system).run)
        await system.tell("echo", Ping(b"slow"))   # hangs the actor's loop for 100 s
        failed: list[str] = []

        async def ask(name: str, timeout: float) -> None:
            with pytest.raises(RequestTimeout, match="took no message"):
                await system.request("echo", Ping(name.encode()), timeout=timeout)
            failed.append(name)

        n.start_soon(ask, "patient", 60.0)
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        await ask("hasty", 1.0)
        assert failed == ["hasty"] and trio.current_time() - started < 60   # not held to the later deadline
        n.cancel_scope.cancel()


async def test_a_request_to_a_full_mailbox_waits_for_room_and_gets_its_reply(autojump_clock):
    system = ActorSystem()
    system.mailbox("busy", size=4)
    replies = []

    class BusyEcho(Busy):
        async def on_ping(self, env):
            await trio.sleep(1)
            return Pong(env.body.payload)

    async with trio.open_nursery() as n:
        await n.start(BusyEcho(system).run)
        for _ in range(5):   # one taken, four queued: the mailbox is full
            await system.tell("busy", Ping(b"queued"))
        replies.append(await system.request("busy", Ping(b"mine"), timeout=3))
        assert replies == [Pong(b"mine")]
        n.cancel_scope.cancel()


def test_one_system_serves_requests_in_successive_trio_runs():
    system = ActorSystem()

    async def once(payload: bytes) -> Pong:
        async with trio.open_nursery() as n:
            await n.start(Echo(system).run)
            reply = await system.request("echo", Ping(payload), timeout=5)
            n.cancel_scope.cancel()
        return reply

    assert trio.run(once, b"first") == Pong(b"first")
    assert trio.run(once, b"second") == Pong(b"second")


async def test_a_cancelled_request_is_not_woken_later_and_leaves_no_pending_entry(autojump_clock):
    system = ActorSystem()
    async with trio.open_nursery() as n:
        await n.start(Echo(system).run)
        with trio.move_on_after(0.5):
            await system.request("echo", Ping(b"slow"), timeout=1.0)
        assert system._pending == {}
        await trio.sleep(5)   # past the cancelled request's deadline: its wake-up finds it closed
        assert (await system.request("echo", Ping(b"after"), timeout=200)) == Pong(b"after")
        n.cancel_scope.cancel()


async def test_a_patient_tell_with_room_is_delivered_at_once_and_in_order():
    system = ActorSystem()
    echo = Echo(system)
    async with trio.open_nursery() as n:
        await n.start(echo.run)
        await system.tell("echo", Ping(b"1"), hand_over=False)
        assert await system.tell_patiently("echo", Ping(b"2"), hand_over=False)
        assert not system.settled("echo")   # delivered, nothing has run yet
        await system.tell("echo", Ping(b"3"))
        await trio.testing.wait_all_tasks_blocked()
        assert echo.seen == [b"1", b"2", b"3"]
        n.cancel_scope.cancel()
