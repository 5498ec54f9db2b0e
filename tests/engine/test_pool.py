"""Pool exhaustion, connections killed by the server, the engine vinyl uses."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from django.db import Error as DjangoDBError
from django.db import OperationalError
from sqlalchemy import event, text

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import checked_out, closed_and_returned, committed_names, configure_pool, connections_held, kill_session, returned
from vinyl.exceptions import PoolExhausted

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="kills server sessions and exhausts a network pool; SQLite has no server"),
]


async def test_pool_exhaustion_waits_pool_timeout_then_names_alias_and_size():
    await configure_pool(pool_size=2, max_overflow=0, pool_timeout=0.3)
    async with connections_held(2):
        assert checked_out() == 2
        started = time.monotonic()
        with pytest.raises(PoolExhausted) as info:
            await Author.vinyl.count()
        waited = time.monotonic() - started
        assert isinstance(info.value, OperationalError)
        message = str(info.value)
        assert "'vinyl_default'" in message and "pool_size=2" in message and "pool_timeout=0.3" in message
        assert waited >= 0.29
    assert await returned() == 0
    assert await Author.vinyl.count() == 0
    print(f"\npool exhaustion: pool_size=2, 3rd checkout failed after {waited:.2f}s, checked out after: {checked_out()}")


async def test_a_pool_without_an_overflow_limit_opens_a_connection_instead_of_waiting():
    # max_overflow=-1 is SQLAlchemy's "no limit": a statement outside the
    # block that holds the only pooled connection gets one of its own at
    # once (it waited pool_timeout, then PoolExhausted, when -1 was read as
    # a limit).
    await configure_pool(pool_size=1, max_overflow=-1, pool_timeout=2)
    async with connections_held(1):
        started = time.monotonic()
        assert await Author.vinyl.count() == 0
        async with vinyl.atomic():  # a block too
            assert await Author.vinyl.count() == 0
        waited = time.monotonic() - started
    assert waited < 1
    # (The block's connection, kept as a spare, finds the pool full when it
    # goes back: closed in the greenlet.)
    assert await closed_and_returned() == 0


@pytest.mark.parametrize("max_overflow", [0, -1])
async def test_a_queue_pool_of_the_applications_choice_waits_by_the_same_rule(max_overflow):
    # vinyl's pool serves waiting tasks in order; an application may name
    # SQLAlchemy's own queue pool instead: a checkout still waits when no
    # connection is idle and no overflow is left, and only then.
    from sqlalchemy.pool import AsyncAdaptedQueuePool

    await configure_pool(poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=max_overflow, pool_timeout=0.3)
    assert type(vinyl.get_engine().sync_engine.pool) is AsyncAdaptedQueuePool
    async with connections_held(1):
        if max_overflow == 0:
            with pytest.raises(PoolExhausted):
                await Author.vinyl.count()
        else:
            assert await Author.vinyl.count() == 0
            async with vinyl.atomic():
                assert await Author.vinyl.count() == 0
    assert await Author.vinyl.count() == 0
    assert await returned() == 0


async def test_waiting_tasks_get_connections_as_they_come_back():
    await configure_pool(pool_size=2, max_overflow=0, pool_timeout=5)
    results = await asyncio.gather(*(Author.vinyl.create(name=f"a{i:02}") for i in range(30)))
    assert len(results) == 30
    assert await returned() == 0
    assert len(await committed_names()) == 30


async def test_tasks_waiting_for_a_connection_are_served_in_turn():
    # SQLAlchemy's asyncio queue lets a task that asks for a connection take
    # one a waiting task was woken for: a task that loops over statements
    # kept the only connection and the others timed out (PoolExhausted) with
    # the pool free thousands of times meanwhile. Served in order, each
    # waits for the tasks ahead of it only.
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=5)
    ops = [0] * 4
    until = time.monotonic() + 3

    async def worker(i: int) -> None:
        while time.monotonic() < until:
            await Author.vinyl.count()
            ops[i] += 1

    await asyncio.gather(*(worker(i) for i in range(4)))
    assert all(ops), ops
    assert await returned() == 0


async def _three_tasks_take_turns(pool: Any) -> None:
    """Three tasks run three count()s each on a pool of one: they take turns
    in line, and one checkout of ``pool`` serves them all (the connection is
    handed over checked out)."""
    checkouts = 0

    def counted(*args: object) -> None:
        nonlocal checkouts
        checkouts += 1

    event.listen(pool, "checkout", counted)
    try:
        served: list[int] = []

        async def worker(i: int) -> None:
            for _ in range(3):
                await Author.vinyl.count()
                served.append(i)

        await asyncio.gather(*(worker(i) for i in range(3)))
    finally:
        event.remove(pool, "checkout", counted)
    assert served == [0, 1, 2] * 3
    assert checkouts == 1
    assert await returned() == 0


async def test_a_statement_waiting_in_line_gets_the_connection_handed_over_checked_out():
    # A statement that finished hands its connection to the first statement
    # waiting in line, still checked out: one checkout of the pool serves
    # all of them (a checkin, reset and checkout per handoff cost 2x the
    # throughput of 50 tasks on a pool of 10).
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=5)
    for _ in range(3):  # until count() runs its plan straight on the driver
        await Author.vinyl.count()
    await returned()
    await _three_tasks_take_turns(vinyl.get_engine().sync_engine.pool)


async def test_statements_wait_in_the_line_of_the_pool_an_engine_disposal_made():
    # dispose() replaces the engine's pool: the statements then hand their
    # connection over in the new pool's line, not the old one's.
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=5)
    for _ in range(3):  # until count() runs its plan straight on the driver
        await Author.vinyl.count()
    await returned()
    engine = vinyl.get_engine()
    old_pool = engine.sync_engine.pool
    await engine.dispose()
    pool = engine.sync_engine.pool
    assert pool is not old_pool
    await Author.vinyl.count()
    await returned()
    await _three_tasks_take_turns(pool)


async def test_a_statement_cancelled_as_a_connection_is_handed_to_it_passes_it_on():
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=5)
    for _ in range(3):  # until count() runs its plan straight on the driver
        await Author.vinyl.count()
    await returned()
    tasks: list[asyncio.Task] = []

    async def first() -> int:
        count = await Author.vinyl.count()
        # Same loop step as the handoff: the next task in line was handed
        # the connection and has not run yet.
        tasks[1].cancel()
        return count

    tasks.append(asyncio.create_task(first()))
    tasks.append(asyncio.create_task(Author.vinyl.count()))
    tasks.append(asyncio.create_task(Author.vinyl.count()))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 0 and isinstance(results[1], asyncio.CancelledError) and results[2] == 0
    assert await returned() == 0
    assert vinyl.get_engine().sync_engine.pool.checkedin() == 1


async def test_statements_and_blocks_waiting_for_a_connection_are_served_in_one_line():
    # A block waits inside SQLAlchemy's checkout, a statement in vinyl's
    # line: both wait in the same line, in the order they asked.
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=5)
    held, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with vinyl.atomic():
            await Author.vinyl.count()
            held.set()
            await release.wait()
        order.append("holder")

    async def statement(name: str) -> None:
        await Author.vinyl.count()
        order.append(name)

    async def block() -> None:
        async with vinyl.atomic():
            await Author.vinyl.count()
        order.append("block")

    first = asyncio.create_task(holder())
    await held.wait()
    waiting = [asyncio.create_task(statement("s1"))]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(block()))
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(statement("s2")))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["holder", "s1", "block", "s2"]
    assert await returned() == 0


async def test_each_statement_waiting_in_line_waits_its_own_pool_timeout():
    # Statements in line share one timer, armed for the first of them: the
    # next one still waits its whole pool_timeout, counted from its own start.
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=0.3)

    async def waited() -> float:
        started = time.monotonic()
        with pytest.raises(PoolExhausted):
            await Author.vinyl.count()
        return time.monotonic() - started

    async with connections_held(1):
        early = asyncio.create_task(waited())
        await asyncio.sleep(0.15)
        late = asyncio.create_task(waited())
        waits = await asyncio.gather(early, late)
    assert all(w >= 0.29 for w in waits), waits
    assert await Author.vinyl.count() == 0
    assert await returned() == 0


def test_fair_queue_hands_over_in_order_and_passes_on_an_item_of_a_cancelled_waiter():
    from sqlalchemy.util import greenlet_spawn
    from sqlalchemy.util.queue import Empty

    from vinyl.engine.fairpool import FairQueue

    async def scenario() -> None:
        queue: FairQueue = FairQueue(maxsize=2)
        got: list = []

        async def get(name: str, timeout: float | None = 5) -> None:
            got.append((name, await greenlet_spawn(queue.get, True, timeout)))

        first = asyncio.create_task(get("first"))
        second = asyncio.create_task(get("second"))
        third = asyncio.create_task(get("third"))
        await asyncio.sleep(0)
        assert queue.waiting() == 3
        queue.put_nowait("a")
        first_item_taken = queue.get(block=False) if not queue.empty() else None
        assert first_item_taken is None  # handed to "first", not left for a newcomer
        second.cancel()  # woken for nothing: no item is lost
        queue.put_nowait("b")
        await asyncio.gather(first, third, return_exceptions=True)
        assert got == [("first", "a"), ("third", "b")]
        assert queue.waiting() == 0
        with pytest.raises(Empty):
            await greenlet_spawn(queue.get, True, 0.01)
        # An item handed to a waiter cancelled before it ran goes to the next one.
        late = asyncio.create_task(get("late"))
        later = asyncio.create_task(get("later"))
        await asyncio.sleep(0)
        queue.put_nowait("c")
        late.cancel()
        await asyncio.gather(late, later, return_exceptions=True)
        assert got[-1] == ("later", "c")
        assert queue.qsize() == 0

    asyncio.run(scenario())


def test_fair_queue_times_out_a_waiter_on_a_later_event_loop():
    # The line's timer was armed on a loop that ended before it fired: a
    # task waiting on the next loop still times out.
    from vinyl.engine.fairpool import TIMED_OUT, FairQueue

    queue: FairQueue = FairQueue(maxsize=1)

    async def leave_early() -> None:
        queue.leave(queue.join(30))

    async def wait_once() -> tuple:
        return await asyncio.wait_for(queue.join(0.05), 5)

    asyncio.run(leave_early())
    kind, _ = asyncio.run(wait_once())
    assert kind == TIMED_OUT


async def _server_id(conn) -> int:
    sql = "SELECT pg_backend_pid()" if conn.dialect.name == "postgresql" else "SELECT CONNECTION_ID()"
    return (await conn.execute(text(sql))).scalar_one()


async def _pooled_server_id() -> int:
    async with vinyl.get_engine().connect() as conn:
        return await _server_id(conn)


async def test_connection_killed_by_the_server_is_replaced_before_the_next_statement():
    await configure_pool(pool_size=1, max_overflow=0)
    await Author.vinyl.create(name="Ann")
    victim = await _pooled_server_id()
    await kill_session(victim)
    # The read fails on the dead connection, which is discarded; the pool is
    # refreshed and the read runs once more on a live connection.
    assert await Author.vinyl.count() == 1
    assert await _pooled_server_id() != victim
    assert await returned() == 0


async def test_a_write_on_a_killed_connection_fails_and_the_next_statement_succeeds():
    await configure_pool(pool_size=1, max_overflow=0)
    await Author.vinyl.create(name="Ann")
    victim = await _pooled_server_id()
    await kill_session(victim)
    # A write may have reached the server before the connection died: it is
    # never retried behind the caller's back.
    with pytest.raises(DjangoDBError):
        await Author.vinyl.filter(name="Ann").update(age=3)
    assert await returned() == 0
    # The dead connection was not given back: the next statement succeeds.
    assert await Author.vinyl.count() == 1
    assert await _pooled_server_id() != victim


async def test_connection_killed_inside_atomic_fails_the_block_and_is_discarded():
    await configure_pool(pool_size=1, max_overflow=2)
    with pytest.raises(DjangoDBError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Ann")
            victim = (await Author.vinyl.raw(
                "SELECT id, %s AS pid FROM testapp_author" % (
                    "pg_backend_pid()" if vinyl.get_engine().dialect.name == "postgresql" else "CONNECTION_ID()"
                )
            ))[0].pid
            await kill_session(victim)
            await Author.vinyl.create(name="Bob")
    assert await returned() == 0
    assert await Author.vinyl.count() == 0
    assert await committed_names() == []


async def test_reads_reconnect_a_pooled_connection_that_was_invalidated():
    await configure_pool(pool_size=1, max_overflow=0)
    await Author.vinyl.create(name="Ann")
    for _ in range(2):
        async with vinyl.get_engine().connect() as conn:
            await conn.invalidate()  # back in the pool with no live connection
        assert await Author.vinyl.filter(name="Ann").count() == 1
        assert (await Author.vinyl.get(name="Ann")).name == "Ann"
        assert await returned() == 0
    assert await committed_names() == ["Ann"]
