"""The lock of a transaction level (vinyl.engine.lock): one holder at a
time, waiters served in order, a release hands the lock straight to the
first waiter still waiting, and a cancelled waiter never keeps it.

(Engine-level: no database. The block-level behaviour it guards, statements
of sibling tasks one at a time under gather and cancellation, is covered by
tests/transactions and tests/engine/test_cancellation.py.)
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.db.transaction import TransactionManagementError

from vinyl import _compat
from tests.txhelpers import FIRST_OF_KINDS, first_to_end
from vinyl.engine.lock import CYCLE_CHECK_S, StatementLock


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


# -- the level-deadlock search where asyncio changed --------------------------


def _locked_with_a_waiter() -> tuple[StatementLock, asyncio.Task]:
    """A lock taken (its level's task named by the caller) and a task that waits for it."""
    lock = StatementLock()
    assert lock.try_acquire()

    async def waiter() -> None:
        async with lock:
            pass

    return lock, asyncio.create_task(waiter())


async def _hold_and_wait_for_a_waiter(wait: object) -> None:
    """Hold the lock for this task's level, start a task that waits for it,
    and wait on that task through ``wait``."""
    lock, sibling = _locked_with_a_waiter()
    lock.hold_for(asyncio.current_task())
    try:
        await wait(sibling)  # type: ignore[operator]
        await sibling
    finally:
        sibling.cancel()
        lock.release()


async def test_a_wait_through_asyncio_wait_is_found() -> None:
    with pytest.raises(TransactionManagementError, match="awaits"):
        await asyncio.wait_for(_hold_and_wait_for_a_waiter(lambda t: asyncio.wait({t})), 5)


async def test_a_changed_asyncio_wait_is_not_followed_and_says_so_once(monkeypatch, caplog) -> None:
    # As if asyncio.wait's callback no longer had the closure vinyl reads.
    monkeypatch.setattr(_compat, "_WAIT_CODE", None)
    monkeypatch.setattr(_compat, "_COMPLETION_MISSING", ["asyncio.tasks._wait.<locals>._on_completion"])
    monkeypatch.setattr(_compat, "_missing_warned", False)
    with caplog.at_level(logging.WARNING, logger="vinyl.transaction"):
        with pytest.raises(TimeoutError):  # not found: it waits, as before the search read callbacks
            await asyncio.wait_for(_hold_and_wait_for_a_waiter(lambda t: asyncio.wait({t})), 5 * CYCLE_CHECK_S)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "_on_completion" in warnings[0], warnings


async def test_done_callbacks_of_another_shape_turn_the_step_off_with_a_warning(caplog) -> None:
    class Changed:
        _callbacks = [object()]  # not (callback, context) pairs

    with caplog.at_level(logging.WARNING, logger="vinyl.transaction"):
        saved = _compat._shape_warned
        _compat._shape_warned = False
        try:
            assert _compat.ended_by([Changed()]) == {}  # type: ignore[list-item]
        finally:
            _compat._shape_warned = saved
    assert any("not (callback, context) pairs" in r.getMessage() for r in caplog.records)


def _gather(future: asyncio.Future) -> asyncio.Future:
    """gather() of ``future`` that keeps its error (the test awaits the sibling for it)."""
    return asyncio.gather(future, return_exceptions=True)


async def test_a_wait_on_a_gather_of_a_gather_is_found() -> None:
    # asyncio.wait's callback is on the outer gathering future: the search
    # reaches it through gather's callbacks on the sibling and the inner gather.
    with pytest.raises(TransactionManagementError, match="awaits"):
        await asyncio.wait_for(
            _hold_and_wait_for_a_waiter(lambda t: asyncio.wait({_gather(_gather(t))})), 5
        )


async def _through_a_task_group(sibling: asyncio.Task) -> None:
    async def wait() -> None:
        await sibling

    async with asyncio.TaskGroup() as group:
        group.create_task(wait())


@pytest.mark.parametrize(
    "name, wait",
    [
        ("_TASKGROUP_DONE", _through_a_task_group),
        ("_GATHER_CODE", lambda t: asyncio.wait({_gather(t)})),
    ],
)
async def test_a_changed_task_group_or_gather_is_not_followed_and_says_so_once(monkeypatch, caplog, name, wait) -> None:
    # As if asyncio no longer had what vinyl reads of TaskGroup or gather.
    monkeypatch.setattr(_compat, name, None)
    monkeypatch.setattr(_compat, "_COMPLETION_MISSING", [name])
    monkeypatch.setattr(_compat, "_missing_warned", False)
    with caplog.at_level(logging.WARNING, logger="vinyl.transaction"):
        with pytest.raises(TimeoutError):  # not found: it waits, as before the search read them
            await asyncio.wait_for(_hold_and_wait_for_a_waiter(wait), 5 * CYCLE_CHECK_S)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and name in warnings[0], warnings


async def test_with_both_read_a_task_group_is_followed() -> None:
    with pytest.raises(BaseExceptionGroup) as caught:
        await asyncio.wait_for(_hold_and_wait_for_a_waiter(_through_a_task_group), 5)
    assert caught.value.subgroup(TransactionManagementError) is not None


async def test_a_wait_another_future_has_just_ended_is_not_followed() -> None:
    # FIRST_COMPLETED over the sibling and another future: the other's end
    # resolved asyncio.wait's future, and until the waiting task resumes the
    # callback left on the sibling counts it as the last one to wait for.
    lock, sibling = _locked_with_a_waiter()
    other: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    holder = asyncio.create_task(asyncio.wait({sibling, other}, return_when=asyncio.FIRST_COMPLETED))
    await asyncio.sleep(0)  # both wait now
    lock.hold_for(holder)
    other.set_result(None)
    await asyncio.sleep(0)  # asyncio.wait's callback ran; the holder resumes after this task
    assert not holder.done()
    lock._check_cycle()
    assert not sibling.done()  # still waiting for the lock, not failed
    done, pending = await holder
    assert done == {other} and pending == {sibling}
    lock.release()
    await sibling


# -- waits that the first failure ends: gather() and a TaskGroup's exit -------


async def _fails_before_its_callbacks_run(lock: StatementLock, failed: list[bool]) -> None:
    """Fail after asking for a search that runs before this task's
    done-callbacks (gather's, the group's) do; it notes whether it failed a waiter."""

    def search() -> None:
        lock._check_cycle()
        failed.append(any(waiter.done() for waiter in lock._waiters or ()))

    await asyncio.sleep(0)
    asyncio.get_running_loop().call_soon(search)
    raise ValueError("failed")


async def _gather_of(*aws: object) -> None:
    await asyncio.gather(*aws)  # type: ignore[arg-type]


async def _in_a_group(*aws: object) -> None:
    async with asyncio.TaskGroup() as group:
        for aw in aws:
            group.create_task(aw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["gather", "task_group"])
async def test_a_wait_another_task_has_just_failed_is_not_followed(kind) -> None:
    # The other task's failure ends the gather (or the group's exit), but
    # until its callback runs the search still sees it among the waited.
    lock, sibling = _locked_with_a_waiter()
    failed: list[bool] = []
    other = _fails_before_its_callbacks_run(lock, failed)
    if kind == "gather":
        holder = asyncio.create_task(_gather_of(sibling, other))
    else:
        holder = asyncio.create_task(_in_a_group(_await(sibling), other))
    await asyncio.sleep(0)
    lock.hold_for(holder)
    with pytest.raises((ValueError, BaseExceptionGroup)):
        await holder
    assert failed == [False]
    lock.release()
    if kind == "gather":
        await sibling  # it got the lock
    else:
        assert sibling.cancelled()  # with the group's tasks


async def _await(task: asyncio.Task) -> None:
    await task


def _gather_keeping_errors_beside_a_future(sibling: asyncio.Task) -> asyncio.Future:
    """gather(sibling, f, return_exceptions=True), f a future the sibling's
    end sets (a callback the search cannot read: f may end any time)."""
    other: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sibling.add_done_callback(lambda _: other.done() or other.set_result(None))
    return asyncio.gather(sibling, other, return_exceptions=True)


async def test_a_gather_that_returns_errors_waits_for_every_child_and_is_found() -> None:
    # With return_exceptions=True the other child's end cannot end the gather.
    with pytest.raises(TransactionManagementError, match="awaits"):
        await asyncio.wait_for(_hold_and_wait_for_a_waiter(_gather_keeping_errors_beside_a_future), 5)


async def test_an_unread_return_exceptions_counts_every_gather_as_ended_by_its_first_failure(monkeypatch) -> None:
    monkeypatch.setattr(_compat, "_GATHER_KEEPS", -1)
    with pytest.raises(TimeoutError):  # not found while the other child may end (it could fail)
        await asyncio.wait_for(
            _hold_and_wait_for_a_waiter(_gather_keeping_errors_beside_a_future), 5 * CYCLE_CHECK_S
        )


async def _hold_and_gather(other: object) -> tuple[asyncio.Task, asyncio.Task]:
    """Hold the lock for this task's level and gather a waiter for it with
    ``other(lock)``; the lock is released and both tasks returned at the end."""
    lock, sibling = _locked_with_a_waiter()
    lock.hold_for(asyncio.current_task())
    second = asyncio.create_task(other(lock))  # type: ignore[operator]
    try:
        await asyncio.wait_for(asyncio.gather(sibling, second), 10 * CYCLE_CHECK_S)
    finally:
        lock.release()
        await asyncio.wait({sibling, second}, timeout=1)
    return sibling, second


async def test_a_gather_child_stuck_through_another_task_on_the_level_is_found() -> None:
    async def through_a_task(lock: StatementLock) -> None:
        async def inner() -> None:
            async with lock:
                pass

        await asyncio.gather(asyncio.create_task(inner()))

    with pytest.raises(TransactionManagementError, match="awaits"):
        await _hold_and_gather(through_a_task)


async def test_a_gather_child_waiting_on_what_the_search_cannot_read_is_not_stuck() -> None:
    event = asyncio.Event()  # never set: nothing the search reads says so

    async def on_an_event(lock: StatementLock) -> None:
        await event.wait()

    with pytest.raises(TimeoutError):  # 10 rounds: the sibling waits, not failed
        await _hold_and_gather(on_an_event)


# -- waits that the first to end ends: asyncio.wait FIRST_*, as_completed -----


def _waiter_for(lock: StatementLock) -> asyncio.Task:
    async def waiter() -> None:
        async with lock:
            pass

    return asyncio.create_task(waiter())


@pytest.mark.parametrize("kind", FIRST_OF_KINDS)
async def test_the_first_of_two_waiters_for_the_level_is_found(kind) -> None:
    # Either waiter's end would end the wait, but both wait for the level.
    lock = StatementLock()
    assert lock.try_acquire()
    lock.hold_for(asyncio.current_task())
    first, second = _waiter_for(lock), _waiter_for(lock)
    try:
        with pytest.raises(TransactionManagementError, match="awaits"):
            await asyncio.wait_for(first_to_end(kind, first, second), 5)
    finally:
        lock.release()
        await asyncio.wait({first, second})
    assert all(isinstance(t.exception(), TransactionManagementError) for t in (first, second))


async def _never_set() -> None:
    await asyncio.get_running_loop().create_future()  # nothing the search reads sets it


@pytest.mark.parametrize("other", ["plain_future", "task_on_a_future"])
@pytest.mark.parametrize("kind", FIRST_OF_KINDS)
async def test_the_first_of_waiters_and_of_what_may_end_is_not_followed(kind, other) -> None:
    # A plain future (not seen with asyncio.wait's callback), or a task on
    # one, may end first: 10 rounds, and the waiters still wait.
    lock = StatementLock()
    assert lock.try_acquire()
    lock.hold_for(asyncio.current_task())
    first, second = _waiter_for(lock), _waiter_for(lock)
    third: asyncio.Future = (
        asyncio.get_running_loop().create_future() if other == "plain_future" else asyncio.create_task(_never_set())
    )
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(first_to_end(kind, first, second, third), 10 * CYCLE_CHECK_S)
        assert not first.done() and not second.done()
    finally:
        lock.release()
        third.cancel()
        await asyncio.wait({first, second})
    assert first.exception() is None and second.exception() is None


async def _returns_before_its_callbacks_run(lock: StatementLock, failed: list[bool]) -> str:
    """Return after asking for a search that runs before this task's
    done-callbacks (asyncio.wait's, as_completed's) do; it notes whether it failed a waiter."""

    def search() -> None:
        lock._check_cycle()
        failed.append(any(waiter.done() for waiter in lock._waiters or ()))

    await asyncio.sleep(0)
    asyncio.get_running_loop().call_soon(search)
    return "returned"


@pytest.mark.parametrize("kind", [k for k in FIRST_OF_KINDS if k != "first_exception"])
async def test_a_first_of_wait_another_task_has_just_ended_is_not_followed(kind) -> None:
    # The other task's end ends the wait, but until its callback runs that
    # task is no longer seen with it: it must not leave the waiters alone to read.
    lock = StatementLock()
    assert lock.try_acquire()
    first, second = _waiter_for(lock), _waiter_for(lock)
    failed: list[bool] = []
    other = asyncio.create_task(_returns_before_its_callbacks_run(lock, failed))
    holder = asyncio.create_task(first_to_end(kind, first, second, other))
    await asyncio.sleep(0)
    lock.hold_for(holder)
    assert await holder == "returned"
    assert failed == [False]
    lock.release()
    await asyncio.gather(first, second)  # they got the lock in turn


@pytest.mark.parametrize("kind", ["all_completed", "first_completed"])
async def test_asyncio_wait_of_shields_of_waiters_is_found(kind) -> None:
    # asyncio.wait's callback sits on shield's future, which the callback
    # shield adds to the waiter resolves: the search reads that future's callbacks too.
    lock = StatementLock()
    assert lock.try_acquire()
    lock.hold_for(asyncio.current_task())
    first, second = _waiter_for(lock), _waiter_for(lock)
    when = asyncio.ALL_COMPLETED if kind == "all_completed" else asyncio.FIRST_COMPLETED
    try:
        with pytest.raises(TransactionManagementError, match="awaits"):
            await asyncio.wait_for(_wait_shielded(when, first, second), 5)
    finally:
        lock.release()
        await asyncio.wait({first, second})
    assert all(isinstance(t.exception(), TransactionManagementError) for t in (first, second))


async def _wait_shielded(when: str, *tasks: asyncio.Task) -> object:
    shields = [asyncio.shield(task) for task in tasks]
    try:
        done, _ = await asyncio.wait(set(shields), return_when=when)
        return await next(iter(done))
    finally:
        await asyncio.gather(*shields, return_exceptions=True)  # each one's error retrieved
