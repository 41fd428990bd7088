"""Group commit in the store: a batch is one transaction — all of it lands, or none of it (both backends)."""
import pytest

from actors.runtime.store import THREAD_BATCH_BYTES, StorageError, Store
from protocol.canonical import Message, Role, TextBlock


def msg(text: str) -> Message:
    return Message(Role.USER, (TextBlock(text),))


@pytest.mark.parametrize("size", [10, THREAD_BATCH_BYTES + 1], ids=["inline", "worker-thread"])
async def test_a_batch_lands_whole_and_only_when_committed(store_location, size):
    store = Store(store_location)
    store.create_session("s_1", None)
    batch = store.batch()
    store.start_turn("t_1", "s_1", "m", None, into=batch)
    store.append_messages("s_1", "t_1", [msg("x" * size), msg("second")], into=batch)
    store.record_event("s_1", "t_1", "turn.started", {"model": "m"}, into=batch)
    assert store.turn_count("s_1") == 0 and store.load_messages("s_1") == []  # gathered, not written
    await store.commit(batch)
    assert store.turn_count("s_1") == 1
    assert [m.text for m in store.load_messages("s_1")] == ["x" * size, "second"]
    assert [e["type"] for e in store.events(turn_id="t_1")] == ["turn.started"]
    store.close()


async def test_a_failed_batch_writes_nothing_and_the_next_messages_keep_their_order(store_location):
    store = Store(store_location)
    store.create_session("s_1", None)
    store.append_messages("s_1", None, [msg("before")])
    batch = store.batch()
    store.append_messages("s_1", "t_1", [msg("lost")], into=batch)
    store.start_turn("t_dup", "s_1", "m", None)
    store.start_turn("t_dup", "s_1", "m", None, into=batch)  # a duplicate key: the batch fails
    with pytest.raises(StorageError):
        await store.commit(batch)
    store.append_messages("s_1", None, [msg("after")])
    assert [m.text for m in store.load_messages("s_1")] == ["before", "after"]
    store.close()
