"""Tasks outside and inside atomic: own connections vs. one shared transaction."""

from __future__ import annotations

import asyncio

import pytest

import vinyl
from tests.testapp.models import Author, Book
from tests.txhelpers import checked_out, committed_names, in_use, lock_waits, returned, wait_until
from vinyl.exceptions import TransactionScopeEnded

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="row locks and parallel writers: SQLite has one writer at a time"),
]


async def test_outside_atomic_tasks_run_in_parallel_on_their_own_connections(backend):
    await Author.vinyl.create(name="locked")
    await Author.vinyl.create(name="free")
    locked, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with vinyl.atomic():
            await Author.vinyl.select_for_update().get(name="locked")
            locked.set()
            await release.wait()

    hold = asyncio.create_task(holder())
    await locked.wait()
    # One task blocks on the row lock held by the holder's connection...
    blocked = asyncio.create_task(Author.vinyl.filter(name="locked").update(age=1))
    await wait_until(lambda: _lock_wait_seen(backend), "the update waits for the row lock")
    # ...while others proceed on connections of their own.
    results = await asyncio.gather(
        Author.vinyl.filter(name="free").update(age=2),
        Author.vinyl.count(),
        Author.vinyl.get(name="free"),
    )
    assert results[0] == 1 and results[1] == 2
    assert not blocked.done()
    assert in_use() == 2  # the holder's and the blocked task's
    release.set()
    await hold
    assert await blocked == 1
    assert await returned() == 0


async def _lock_wait_seen(backend: str) -> bool:
    return await lock_waits(backend) >= 1


async def test_gather_taskgroup_and_create_task_share_the_block_transaction():
    async with vinyl.atomic():
        await asyncio.gather(*(Author.vinyl.create(name=f"g{i:02}") for i in range(20)))
        async with asyncio.TaskGroup() as group:
            for i in range(10):
                group.create_task(Author.vinyl.create(name=f"t{i:02}"))
        task = asyncio.create_task(Author.vinyl.create(name="task"))
        await task
        # Reads in parallel tasks see the block's uncommitted rows.
        counts = await asyncio.gather(*(Author.vinyl.count() for _ in range(10)))
        assert counts == [31] * 10
        assert checked_out() == 1
        assert await committed_names() == []
    assert len(await committed_names()) == 31


async def test_tasks_of_a_failed_block_are_rolled_back_with_it():
    with pytest.raises(ExceptionGroup):
        async with vinyl.atomic():
            async with asyncio.TaskGroup() as group:
                for i in range(5):
                    group.create_task(Author.vinyl.create(name=f"a{i}"))
                group.create_task(_fail_after(Author.vinyl.create(name="x")))
    assert await committed_names() == []
    assert await returned() == 0


async def _fail_after(awaitable) -> None:
    await awaitable
    raise RuntimeError("task failed")


async def test_sibling_savepoint_blocks_run_one_after_the_other():
    a_inside, b_tried = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        with pytest.raises(ValueError):
            async with vinyl.atomic():
                order.append("a in")
                await Author.vinyl.create(name="a")
                a_inside.set()
                await b_tried.wait()
                # b is waiting to open its savepoint: still ours alone.
                await Author.vinyl.create(name="a2")
                order.append("a out")
                raise ValueError

    async def second() -> None:
        await a_inside.wait()
        entering = asyncio.create_task(_enter_nested(order))
        await asyncio.sleep(0)  # let it reach the wait for first's block
        b_tried.set()
        await entering

    async with vinyl.atomic():
        await asyncio.gather(first(), second())
        assert sorted(await Author.vinyl.values_list("name", flat=True)) == ["b"]
    assert order == ["a in", "a out", "b in", "b out"]
    assert await committed_names() == ["b"]


async def _enter_nested(order: list[str]) -> None:
    async with vinyl.atomic():
        order.append("b in")
        await Author.vinyl.create(name="b")
        order.append("b out")


async def test_sibling_statement_never_lands_in_another_tasks_savepoint():
    inside, done_waiting = asyncio.Event(), asyncio.Event()

    async def rolls_back() -> None:
        with pytest.raises(ValueError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="savepoint")
                inside.set()
                await done_waiting.wait()
                raise ValueError

    async def writes_outer() -> None:
        await inside.wait()
        write = asyncio.create_task(Author.vinyl.create(name="outer"))
        await asyncio.sleep(0)
        assert not write.done()  # waits for the savepoint block to end
        done_waiting.set()
        await write

    async with vinyl.atomic():
        await asyncio.gather(rolls_back(), writes_outer())
    assert await committed_names() == ["outer"]


async def test_many_tasks_with_nested_blocks_keep_their_savepoints_apart():
    async def worker(i: int) -> None:
        try:
            async with vinyl.atomic():
                await Author.vinyl.create(name=f"w{i:02}")
                try:
                    async with vinyl.atomic():
                        await Author.vinyl.create(name=f"w{i:02}-inner")
                        if i % 3 == 0:
                            raise LookupError
                except LookupError:
                    pass
                if i % 4 == 0:
                    raise KeyError
        except KeyError:
            pass

    async with vinyl.atomic():
        await asyncio.gather(*(worker(i) for i in range(24)))
    expected = []
    for i in range(24):
        if i % 4 == 0:
            continue
        expected.append(f"w{i:02}")
        if i % 3:
            expected.append(f"w{i:02}-inner")
    assert await committed_names() == sorted(expected)


async def test_task_that_outlives_its_block_gets_transaction_scope_ended():
    go = asyncio.Event()

    async def late_writer() -> None:
        await go.wait()
        await Author.vinyl.create(name="late")

    async def late_block() -> None:
        await go.wait()
        async with vinyl.atomic():
            await Author.vinyl.create(name="late2")

    async with vinyl.atomic():
        await Author.vinyl.create(name="in block")
        writer = asyncio.create_task(late_writer())
        block = asyncio.create_task(late_block())
    go.set()
    with pytest.raises(TransactionScopeEnded, match="already ended"):
        await writer
    with pytest.raises(TransactionScopeEnded):
        await block
    assert await committed_names() == ["in block"]
    assert await returned() == 0


async def test_task_that_outlives_a_savepoint_block_gets_transaction_scope_ended():
    go = asyncio.Event()

    async def late_writer() -> None:
        await go.wait()
        await Author.vinyl.create(name="late")

    async with vinyl.atomic():
        async with vinyl.atomic():
            writer = asyncio.create_task(late_writer())
        go.set()
        with pytest.raises(TransactionScopeEnded):
            await writer
        await Author.vinyl.create(name="outer")
    assert await committed_names() == ["outer"]


async def test_block_exit_waits_for_a_statement_a_task_is_running():
    started = asyncio.Event()

    async with vinyl.atomic():
        author = await Author.vinyl.create(name="a")
        await Book.vinyl.create(title="b", author=author)

        async def write() -> None:
            started.set()
            await Author.vinyl.filter(pk=author.pk).update(name="written")

        task = asyncio.create_task(write())
        await started.wait()
    await task  # ran inside the block, before its commit
    assert await committed_names() == ["written"]
