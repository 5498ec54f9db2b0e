"""Cancelling tasks at any await point: no leaked connection, no open transaction."""

from __future__ import annotations

import asyncio
import random

import pytest

import vinyl
from tests.testapp.models import Author, Book
from tests.txhelpers import configure_pool, connections_held, no_open_transactions, returned, settle

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="checks open transactions in the server's session tables; SQLite has no server"),
]

STORM_TASKS = 300
STORM_POOL = 5


async def _plain(i: int) -> None:
    author = await Author.vinyl.create(name=f"p{i}")
    await Author.vinyl.filter(pk=author.pk).update(age=i)
    await Author.vinyl.get(pk=author.pk)


async def _block(i: int) -> None:
    async with vinyl.atomic():
        author = await Author.vinyl.create(name=f"b{i}")
        await Book.vinyl.create(title=f"b{i}", author=author)


async def _nested(i: int) -> None:
    async with vinyl.atomic():
        author = await Author.vinyl.create(name=f"n{i}")
        async with vinyl.atomic():
            await Book.vinyl.create(title=f"n{i}", author=author)
            await Author.vinyl.count()


async def _shared(i: int) -> None:
    async with vinyl.atomic():
        author = await Author.vinyl.create(name=f"s{i}")
        await asyncio.gather(
            Book.vinyl.create(title=f"s{i}a", author=author),
            Book.vinyl.create(title=f"s{i}b", author=author),
        )


async def _stream(i: int) -> None:
    async for _ in Author.vinyl.iterator(chunk_size=2):
        pass


KINDS = (_plain, _block, _nested, _shared, _stream)


async def test_cancellation_storm_leaks_nothing(backend):
    # asyncpg's SSL negotiation (sslmode "prefer") leaves a future whose
    # error nobody retrieves when connect() is cancelled; the test server
    # has no SSL, so skip the negotiation.
    connect_args = {"ssl": False} if backend == "postgresql" else None
    await configure_pool(connect_args, pool_size=STORM_POOL, max_overflow=0, pool_timeout=30)
    for i in range(10):
        await Author.vinyl.create(name=f"seed{i}")
    rng = random.Random(4)
    loop = asyncio.get_running_loop()
    tasks = []
    for i in range(STORM_TASKS):
        task = asyncio.create_task(KINDS[i % len(KINDS)](i))
        # Cancel at a random point: before it starts, while it waits for the
        # pool, mid-statement, mid-commit...
        loop.call_later(rng.uniform(0, 0.25), task.cancel)
        tasks.append(task)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
    assert errors == []
    after = await settle()
    print(
        f"\ncancellation storm ({backend}): {STORM_TASKS} tasks, pool_size={STORM_POOL}, "
        f"{cancelled} cancelled, {STORM_TASKS - cancelled} completed, checked out after: {after}"
    )
    assert after == 0
    assert await no_open_transactions(backend)
    # Each block is all-or-nothing: no author of a block without its books.
    for author in await Author.vinyl.filter(name__regex=r"^[bns][0-9]"):
        count = await Book.vinyl.filter(author=author).count()
        assert count == (2 if author.name.startswith("s") else 1), author.name
    # The pool still works.
    assert await Author.vinyl.filter(name__startswith="seed").count() == 10
    assert await returned() == 0


async def test_cancelled_while_waiting_for_the_pool():
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=30)
    async with connections_held(1):
        waiters = [asyncio.create_task(Author.vinyl.count()) for _ in range(5)]
        await asyncio.sleep(0)  # they reach the pool's queue
        for waiter in waiters:
            waiter.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert await returned() == 0
    assert await Author.vinyl.count() == 0


async def test_cancelled_child_task_mid_statement_rolls_the_block_back(backend):
    """A child cancelled inside a shared block never lets a half operation commit."""
    started = asyncio.Event()

    async def child() -> None:
        started.set()
        await Author.vinyl.create(name="child")

    with pytest.raises(asyncio.CancelledError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="parent")
            task = asyncio.create_task(child())
            await started.wait()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            # The block may not commit what the cancelled task left.
            if task.cancelled():
                raise asyncio.CancelledError
    assert await returned() == 0
    assert await Author.vinyl.count() == 0
    assert await no_open_transactions(backend)


async def test_cancelled_inside_nested_block_rolls_back_the_savepoint_only():
    started = asyncio.Event()

    async def nested() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="inner")
            started.set()
            await asyncio.Event().wait()  # until cancelled

    async with vinyl.atomic():
        await Author.vinyl.create(name="outer")
        task = asyncio.create_task(nested())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await Author.vinyl.create(name="after")
    assert sorted(await Author.vinyl.values_list("name", flat=True)) == ["after", "outer"]
    assert await returned() == 0


async def test_cancelled_outer_block_discards_its_connection(backend):
    started = asyncio.Event()

    async def block() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="x")
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(block())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await returned() == 0
    assert await Author.vinyl.count() == 0
    assert await no_open_transactions(backend)


async def test_timeout_around_a_query_inside_atomic_is_a_timeout_error():
    async with vinyl.atomic():
        await Author.vinyl.create(name="x")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await Author.vinyl.count()
    assert await returned() == 0


async def test_streams_cancelled_mid_fetch_never_hand_back_a_busy_connection(backend):
    """A stream cancelled while its driver awaits rows must not return that
    connection to the pool: the next user would run inside its transaction."""
    connect_args = {"ssl": False} if backend == "postgresql" else None
    await configure_pool(connect_args, pool_size=2, max_overflow=0, pool_timeout=30)
    for i in range(40):
        await Author.vinyl.create(name=f"seed{i}")
    rng = random.Random(7)
    for round_ in range(15):
        streams = [asyncio.create_task(_stream(i)) for i in range(6)]
        await asyncio.sleep(rng.uniform(0, 0.004))
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        created = [await Author.vinyl.create(name=f"r{round_}.{i}") for i in range(3)]
        for author in created:
            assert await Author.vinyl.filter(pk=author.pk).exists(), author.name
    assert await settle() == 0
    assert await no_open_transactions(backend)


async def _awaiting(awaitable):
    return await awaitable


async def test_finish_keeps_a_cancellation_that_arrives_with_the_result():
    """A cancellation delivered in the same loop turn as the shielded work
    ends is re-raised, not swallowed with the result."""
    from vinyl.engine.shield import finish

    release = asyncio.get_running_loop().create_future()
    finished = []

    async def work() -> int:
        await release
        finished.append(True)
        return 1

    task = asyncio.create_task(_awaiting(finish(work())))
    await asyncio.sleep(0)  # finish() waits on the shielded work
    release.set_result(None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == [True]


async def test_finish_runs_the_work_to_its_end_then_raises_the_cancellation():
    """The future the work waits on is never cancelled: the work resumes
    when it completes, and only then does the caller see the cancellation."""
    from vinyl.engine.shield import finish

    release = asyncio.get_running_loop().create_future()
    steps = []

    async def work() -> int:
        steps.append("waiting")
        await release
        steps.append("resumed")
        await asyncio.sleep(0)  # a bare yield, cancelled too
        steps.append("done")
        return 1

    task = asyncio.create_task(_awaiting(finish(work())))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0.01)
    assert not release.cancelled() and not task.done() and steps == ["waiting"]
    task.cancel()  # twice: still one cancellation at the end
    release.set_result(None)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["waiting", "resumed", "done"]


async def test_finish_passes_the_result_and_errors_through():
    from vinyl.engine.shield import finish

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad")

    assert await finish(asyncio.sleep(0, result=7)) == 7
    with pytest.raises(ValueError, match="bad"):
        await finish(fails())


async def test_finish_keeps_the_error_of_the_work_as_the_cause_of_the_cancellation():
    """Work that fails while its caller is cancelled: the cancellation is
    raised, with the work's error as its cause (a failed write must still
    mark its block)."""
    from vinyl.engine.shield import finish

    release = asyncio.get_running_loop().create_future()

    async def fails() -> None:
        await release
        raise ValueError("bad")

    task = asyncio.create_task(_awaiting(finish(fails())))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    release.set_result(None)
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    assert isinstance(caught.value.__cause__, ValueError)


async def test_finish_can_be_closed_while_it_waits():
    """Closing the coroutine that awaits finish() (an abandoned ``async for``
    finalized at loop shutdown) closes the work with it instead of waiting
    again ("coroutine ignored GeneratorExit")."""
    from vinyl.engine.shield import finish

    release = asyncio.get_running_loop().create_future()
    closed = []

    async def work() -> None:
        try:
            await release
        finally:
            closed.append(True)

    coro = _awaiting(finish(work()))
    coro.send(None)  # now waiting on the work's future
    coro.close()
    assert closed == [True] and not release.cancelled()
