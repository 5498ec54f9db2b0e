"""Regressions of issue 13: cancellations inside shared transactions."""

from __future__ import annotations

import asyncio
import gc
import random

import pytest
from django.db.models import F

import vinyl
from tests.faults.sessions import Sessions
from tests.testapp.models import Author
from tests.txhelpers import returned

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="counts server transactions; SQLite has no server"),
]


async def test_a_cancelled_child_leaves_its_siblings_and_the_block_working(backend):
    # A child task cancelled mid-statement inside a nested block used to
    # break the block's shared connection for its siblings (asyncmy closes a
    # connection cancelled mid-query; errors such as "'NoneType' object has
    # no attribute 'execute'" in tasks nobody cancelled).
    rng = random.Random(13)
    loop = asyncio.get_running_loop()
    rounds = 30
    for r in range(rounds):
        async with vinyl.atomic():
            async def child(i: int) -> None:
                async with vinyl.atomic():
                    await Author.vinyl.create(name=f"c{r}-{i}")
                    await Author.vinyl.filter(name=f"c{r}-{i}").update(age=F("age") + 1)
                    await Author.vinyl.filter(name=f"c{r}-{i}").count()

            tasks = [asyncio.create_task(child(i)) for i in range(4)]
            loop.call_later(rng.uniform(0, 0.004), tasks[0].cancel)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert [r for r in results[1:] if isinstance(r, BaseException)] == []
            await Author.vinyl.create(name=f"outer{r}")
    # Every block committed; every child not cancelled is there, whole (a
    # cancelled child may have finished its block before the cancellation
    # reached it: then it is there, whole, too).
    assert await Author.vinyl.filter(name__startswith="outer").count() == rounds
    names = set(await Author.vinyl.filter(name__startswith="c").values_list("name", flat=True))
    assert {f"c{r}-{i}" for r in range(rounds) for i in (1, 2, 3)} <= names
    assert await Author.vinyl.filter(name__startswith="c").exclude(age=1).count() == 0
    assert await returned() == 0


async def test_cancelling_a_block_whose_children_use_nested_blocks_leaves_no_transaction(backend):
    # PostgreSQL: cancelling the outer block while gathered children were in
    # nested blocks left sessions "idle in transaction", holding row locks
    # that made a later UPDATE hang.
    target = await Author.vinyl.create(name="locked")
    rng = random.Random(14)
    loop = asyncio.get_running_loop()
    sessions = await Sessions(vinyl.get_engine().url).start()
    try:
        for _ in range(30):
            async def block() -> None:
                async with vinyl.atomic():
                    async def child(i: int) -> None:
                        async with vinyl.atomic():
                            await Author.vinyl.filter(pk=target.pk).update(age=F("age") + 1)
                            await Author.vinyl.create(name=f"n{i}")

                    await asyncio.gather(*(child(i) for i in range(3)))

            task = asyncio.create_task(block())
            loop.call_later(rng.uniform(0, 0.006), task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                pass
            # A later UPDATE of the same row must not wait on a lock left behind.
            await asyncio.wait_for(Author.vinyl.filter(pk=target.pk).update(age=F("age")), 30)
        assert await sessions.settled_open_transactions() == 0
        assert await returned() == 0
        await vinyl.dispose()
        assert await sessions.settled_count(0) == 0
    finally:
        await sessions.close()


async def test_a_checkout_cancelled_while_connecting_leaves_nothing_behind(backend):
    # A task cancelled while its checkout opened a new connection cut the
    # driver's connect short: asyncpg then logged "Future exception was never
    # retrieved: ConnectionError('unexpected connection_lost() call')" (its
    # SSL probe's future, failed by the transport's close), and a connection
    # that had just been opened was left to the garbage collector. The
    # connect now runs to its end; a connection that arrives for a cancelled
    # task is closed at once. The autouse fixture fails on a logged error.
    rng = random.Random(15)
    loop = asyncio.get_running_loop()
    sessions = await Sessions(vinyl.get_engine().url).start()
    try:
        cancelled = 0
        for _ in range(120):
            await vinyl.dispose()  # the next checkout connects
            task = asyncio.create_task(Author.vinyl.count())
            loop.call_later(rng.uniform(0, 0.004), task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
            gc.collect()  # a leaked future logs when it is collected
        await asyncio.sleep(0.05)
        gc.collect()
        assert cancelled > 0
        assert await Author.vinyl.count() >= 0  # the pool still connects
        await vinyl.dispose()
        assert await sessions.settled_count(0) == 0
    finally:
        await sessions.close()
