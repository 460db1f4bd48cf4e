"""RingQueue: newest-N buffering for video streams."""

from __future__ import annotations

import asyncio
import threading

import pytest
from kitewire.utils import RingQueue


async def test_unbounded_queue_keeps_everything_in_order() -> None:
    queue: RingQueue[int] = RingQueue()
    for item in range(1000):
        queue.put(item)
    assert len(queue) == 1000 and queue.dropped == 0
    assert [await queue.get() for _ in range(1000)] == list(range(1000))


async def test_bounded_queue_keeps_the_newest_and_drops_the_oldest() -> None:
    queue: RingQueue[str] = RingQueue(2)
    for item in "abcde":
        queue.put(item)
    assert len(queue) == 2 and queue.dropped == 3
    assert await queue.get() == "d"
    assert await queue.get() == "e"
    assert len(queue) == 0


async def test_get_waits_for_a_put() -> None:
    queue: RingQueue[int | None] = RingQueue(1)
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    asyncio.get_running_loop().call_soon(queue.put, 42)
    assert await asyncio.wait_for(waiter, 5) == 42
    queue.put(None)  # None is a legal item (VideoStream uses it as end-of-stream)
    assert await queue.get() is None


async def test_several_waiters_each_get_one_item() -> None:
    queue: RingQueue[int] = RingQueue(0)
    waiters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for item in (1, 2, 3):
        queue.put(item)
    results = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert sorted(results) == [1, 2, 3]


async def test_cancelled_get_loses_nothing() -> None:
    queue: RingQueue[int] = RingQueue(4)
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    queue.put(7)
    assert await asyncio.wait_for(queue.get(), 5) == 7


def test_queue_is_usable_across_event_loops() -> None:
    queue: RingQueue[int] = RingQueue(3)

    async def round_trip(item: int) -> int:
        waiter = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        assert not waiter.done()  # the getter really waits on this loop
        queue.put(item)
        return await asyncio.wait_for(waiter, 5)

    assert asyncio.run(round_trip(1)) == 1
    assert asyncio.run(round_trip(2)) == 2


def test_get_nowait() -> None:
    queue: RingQueue[int] = RingQueue(1)
    with pytest.raises(IndexError):
        queue.get_nowait()
    queue.put(5)
    assert queue.get_nowait() == 5


@pytest.mark.parametrize(
    "capacity,message",
    [(-1, "capacity must be >= 0"), (1.5, "capacity must be an int"), (True, "capacity must be an int")],
)
def test_bad_capacity_raises_value_error(capacity: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RingQueue(capacity)  # type: ignore[arg-type]


def _put_all(queue: RingQueue[int], loop: asyncio.AbstractEventLoop, count: int) -> None:
    for item in range(count):
        queue.put_from_thread(item, loop)


async def test_put_from_thread_queues_at_once_and_wakes_a_waiting_get() -> None:
    loop = asyncio.get_running_loop()
    queue: RingQueue[int] = RingQueue(1)
    # the loop is not running while the thread puts: the newest item is there right after
    producer = threading.Thread(target=_put_all, args=(queue, loop, 50))
    producer.start()
    producer.join(10)
    assert len(queue) == 1 and queue.dropped == 49
    assert queue.get_nowait() == 49
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    threading.Thread(target=queue.put_from_thread, args=(7, loop)).start()
    assert await asyncio.wait_for(waiter, 5) == 7


async def test_put_from_thread_and_get_race_without_losing_or_duplicating() -> None:
    loop = asyncio.get_running_loop()
    queue: RingQueue[int] = RingQueue(0)
    count = 2000
    producer = threading.Thread(target=_put_all, args=(queue, loop, count))
    producer.start()
    taken = [await asyncio.wait_for(queue.get(), 10) for _ in range(count)]
    producer.join(10)
    assert taken == list(range(count)) and len(queue) == 0
