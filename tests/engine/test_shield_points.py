"""The statement shield (vinyl.engine.shield) at each await point of a
statement inside a block: waiting for the block's connection, its BEGIN
(PostgreSQL's is sent with the first statement, MariaDB's by the begin,
SQLite's in the driver's thread) and the statement itself.

The task waits on a guard of the driver's future; a cancellation meanwhile
lets the statement end, then is raised. Whatever point a cancellation hits,
the statement ran whole or not at all, the block's connection stays usable
for the other tasks, and what the block commits is what it read.
"""

from __future__ import annotations

import asyncio

import pytest
from django.db.models import F

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import after_turns, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")

# What passes before the cancellation: loop turns (from "not started yet"
# to the first round trip), then times that reach the BEGIN's and the
# statement's round trips, and past them ("already done").
TURNS = [*range(0, 10), 0.0002, 0.0005, 0.001, 0.002, 0.004, 0.05]


async def _bump(pk: int) -> int:
    return await Author.vinyl.filter(pk=pk).update(age=F("age") + 1)


async def _planned(name: str) -> Author:
    """A new author at age 1, every statement of these tests planned (a
    shape's first call compiles through Django, in the bridge)."""
    author = await Author.vinyl.create(name=name, age=0)
    assert await _bump(author.pk) == 1
    assert (await Author.vinyl.get(pk=author.pk)).age == 1
    await Author.vinyl.count()
    return author


@pytest.mark.parametrize("k", TURNS)
async def test_cancelled_first_statement_of_a_block_runs_whole_or_not_at_all(backend, k):
    """The first statement of a block begins the transaction: a cancellation
    at any point of it (begin, BEGIN, statement) leaves the connection usable."""
    author = await _planned("a")
    async with vinyl.atomic():
        child = asyncio.create_task(_bump(author.pk))
        await after_turns(k)
        child.cancel()
        try:
            assert await child == 1
            finished = True
        except asyncio.CancelledError:
            finished = False
        seen = (await Author.vinyl.get(pk=author.pk)).age
        assert seen in (1, 2)
        if finished:
            assert seen == 2
        assert await _bump(author.pk) == 1  # the block goes on
    assert (await Author.vinyl.get(pk=author.pk)).age == seen + 1
    assert await returned() == 0


@pytest.mark.parametrize("k", TURNS)
async def test_cancelled_statement_waiting_for_the_block_connection(backend, k):
    """Two tasks of a block: the second waits for the connection while the
    first runs; cancelling either at any turn keeps both rows consistent."""
    first, second = await _planned("first"), await _planned("second")
    async with vinyl.atomic():
        await Author.vinyl.count()  # the transaction has begun
        one = asyncio.create_task(_bump(first.pk))
        two = asyncio.create_task(_bump(second.pk))
        await after_turns(k)
        (two if TURNS.index(k) % 2 else one).cancel()
        outcomes = await asyncio.gather(one, two, return_exceptions=True)
        ages = [(await Author.vinyl.get(pk=pk)).age for pk in (first.pk, second.pk)]
        for outcome, age in zip(outcomes, ages):
            if isinstance(outcome, BaseException):
                assert isinstance(outcome, asyncio.CancelledError)
                assert age in (1, 2)
            else:
                assert outcome == 1 and age == 2
    assert [(await Author.vinyl.get(pk=pk)).age for pk in (first.pk, second.pk)] == ages
    assert await returned() == 0


@pytest.mark.parametrize("k", TURNS)
async def test_cancelled_create_in_a_block_then_rolled_back(backend, k):
    """A cancelled INSERT (RETURNING, or MariaDB's insert id) that ended
    anyway is undone with the block when the cancellation leaves it."""
    await _planned("before")
    with pytest.raises(asyncio.CancelledError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="kept until the rollback")
            child = asyncio.create_task(Author.vinyl.create(name="child"))
            await after_turns(k)
            child.cancel()
            try:
                await child
            except asyncio.CancelledError:
                pass
            await Author.vinyl.count()  # the connection still answers
            raise asyncio.CancelledError
    assert await Author.vinyl.count() == 1
    assert await returned() == 0


async def test_timeout_during_a_write_in_a_block_is_a_timeout_error(backend):
    author = await _planned("a")
    async with vinyl.atomic():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await _bump(author.pk)
        # The statement ran to its end before the timeout was raised.
        assert (await Author.vinyl.get(pk=author.pk)).age == 2
    assert (await Author.vinyl.get(pk=author.pk)).age == 2
    assert await returned() == 0


# -- the guard itself (no database) ------------------------------------------


async def _awaiting(awaitable):
    return await awaitable


@pytest.mark.backends("sqlite", reason="the guard's own behaviour: no database involved, one backend is enough")
async def test_finish_resumes_in_the_turn_its_future_completes(backend):
    """The task wakes in the loop turn the driver's future completes in, as
    if it waited on the future itself (no stand-in future to complete first)."""
    from vinyl.engine.shield import finish

    loop = asyncio.get_running_loop()
    shielded, plain = loop.create_future(), loop.create_future()
    order: list[str] = []

    async def wait(future: asyncio.Future, name: str) -> None:
        await future
        order.append(name)

    tasks = [
        asyncio.create_task(_awaiting(finish(wait(shielded, "shielded")))),
        asyncio.create_task(wait(plain, "plain")),
    ]
    await asyncio.sleep(0)
    shielded.set_result(None)
    plain.set_result(None)
    await asyncio.sleep(0)  # one turn: both resume in it
    assert order == ["shielded", "plain"]
    await asyncio.gather(*tasks)


@pytest.mark.backends("sqlite", reason="the guard's own behaviour: no database involved, one backend is enough")
async def test_nested_finish_runs_both_to_their_end_then_raises_once(backend):
    from vinyl.engine.shield import finish

    loop = asyncio.get_running_loop()
    inner_future, outer_future = loop.create_future(), loop.create_future()
    steps: list[str] = []

    async def inner() -> int:
        await inner_future
        steps.append("inner")
        return 1

    async def outer() -> int:
        value = await finish(inner())
        await outer_future
        steps.append("outer")
        return value + 1

    task = asyncio.create_task(_awaiting(finish(outer())))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert not inner_future.cancelled() and not task.done()
    inner_future.set_result(None)
    await asyncio.sleep(0)
    task.cancel()
    outer_future.set_result(None)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["inner", "outer"]
    assert not outer_future.cancelled()


@pytest.mark.backends("sqlite", reason="the guard's own behaviour: no database involved, one backend is enough")
async def test_finish_keeps_the_work_error_under_no_cancellation(backend):
    """The driver's error reaches the caller through the guard unchanged
    (the guard's own result is never the work's)."""
    from vinyl.engine.shield import finish

    loop = asyncio.get_running_loop()
    future = loop.create_future()

    async def work() -> None:
        await future

    task = asyncio.create_task(_awaiting(finish(work())))
    await asyncio.sleep(0)
    future.set_exception(LookupError("from the driver"))
    with pytest.raises(LookupError, match="from the driver"):
        await task
