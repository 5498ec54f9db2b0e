"""The lock of a transaction level (vinyl.engine.lock): one holder at a
time, waiters served in order, a release hands the lock straight to the
first waiter still waiting, and a cancelled waiter never keeps it.

(Engine-level: no database. The block-level behaviour it guards, statements
of sibling tasks one at a time under gather and cancellation, is covered by
tests/transactions and tests/engine/test_cancellation.py.)
"""

from __future__ import annotations

import asyncio

import pytest

from vinyl.engine.lock import StatementLock


async def test_try_acquire_takes_a_free_lock_only() -> None:
    lock = StatementLock()
    assert lock.try_acquire()
    assert lock.locked()
    assert not lock.try_acquire()
    lock.release()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


async def test_waiters_are_served_in_order_and_never_two_at_once() -> None:
    lock = StatementLock()
    order: list[int] = []
    holders = 0

    async def use(i: int) -> None:
        nonlocal holders
        async with lock:
            holders += 1
            assert holders == 1
            order.append(i)
            await asyncio.sleep(0)
            holders -= 1

    assert lock.try_acquire()
    tasks = [asyncio.create_task(use(i)) for i in range(5)]
    await asyncio.sleep(0)
    lock.release()
    # Handed over: no one can barge in between the release and the waiter's turn.
    assert lock.locked()
    assert not lock.try_acquire()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    lock = StatementLock()
    assert lock.try_acquire()
    first = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    lock.release()
    assert await second
    assert lock.locked()
    lock.release()
    assert not lock.locked()


async def test_a_waiter_cancelled_after_the_handover_passes_the_lock_on() -> None:
    lock = StatementLock()
    assert lock.try_acquire()
    first = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # handed to first, which has not resumed yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second  # first passed it on
    lock.release()
    assert not lock.locked()


async def test_matches_asyncio_lock_under_a_cancellation_storm() -> None:
    """Random cancellations of waiters: mutual exclusion holds and the lock
    ends free, as with asyncio.Lock."""
    for lock in (StatementLock(), asyncio.Lock()):
        inside = 0
        done = 0

        async def use() -> None:
            nonlocal inside, done
            async with lock:
                inside += 1
                assert inside == 1
                await asyncio.sleep(0)
                inside -= 1
                done += 1

        tasks = [asyncio.create_task(use()) for _ in range(200)]
        for i, task in enumerate(tasks):
            if i % 3 == 1:
                await asyncio.sleep(0)
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert not lock.locked()
        assert inside == 0
        assert done + sum(t.cancelled() for t in tasks) == 200
