"""Statements that follow each other in one event-loop step share a checkout.

vinyl keeps the idle connection of a finished statement until the loop's
next step: the next statement started in the same step takes it without a
pool checkout and checkin. Whatever is left goes back to the pool when the
loop turns, so nothing waits on it.
"""

from __future__ import annotations

import asyncio
import selectors

import pytest
from django.db import IntegrityError
from sqlalchemy import event, text

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import checked_out, configure_pool, returned

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="SQLite's pool hands its one connection back at once"),
]


def count_checkouts() -> list:
    seen: list = []
    event.listen(vinyl.get_engine().sync_engine, "checkout", lambda *args: seen.append(1))
    return seen


async def statements(age: int) -> None:
    assert (await Author.vinyl.get(name="Ann")).name == "Ann"
    assert await Author.vinyl.count() == 1
    await Author.vinyl.filter(name="Ann").update(age=age)


async def test_statements_of_one_step_share_a_checkout_until_the_loop_turns():
    await Author.vinyl.create(name="Ann")
    for age in (1, 2):  # these shapes get their plans (straight on the driver)
        await statements(age)
    assert await returned() == 0
    checkouts = count_checkouts()
    await statements(3)
    assert len(checkouts) == 1
    assert checked_out() == 1  # kept for this step
    assert await returned() == 0
    assert await Author.vinyl.filter(age=3).count() == 1
    assert len(checkouts) == 2


async def test_a_kept_connection_never_blocks_a_pool_of_one():
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=2)
    await Author.vinyl.create(name="Ann")
    # Same step: the pool's only connection is kept by vinyl, and SQLAlchemy
    # code and a vinyl block both ask the pool for it.
    async with vinyl.get_engine().connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM testapp_author"))).scalar_one() == 1
    await Author.vinyl.count()
    async with vinyl.atomic():
        await Author.vinyl.create(name="Bob")
    assert await Author.vinyl.count() == 2
    await vinyl.dispose()  # with a connection kept: it goes back, then the pool closes
    assert await Author.vinyl.count() == 2
    assert await returned() == 0


async def test_many_tasks_on_a_small_pool_all_finish():
    await configure_pool(pool_size=2, max_overflow=0, pool_timeout=5)

    async def work(i: int) -> int:
        author = await Author.vinyl.create(name=f"a{i:02}")
        await Author.vinyl.filter(pk=author.pk).update(age=i)
        return (await Author.vinyl.get(pk=author.pk)).age

    assert await asyncio.gather(*(work(i) for i in range(40))) == list(range(40))
    assert await returned() == 0


async def test_a_failed_statement_does_not_keep_its_connection():
    for name in ("Ann", "Cy"):
        await Author.vinyl.create(name=name, email=f"{name}@x")
    with pytest.raises(IntegrityError):
        await Author.vinyl.create(name="Bob", email="Ann@x")
    assert checked_out() == 0
    assert await Author.vinyl.count() == 2


class _CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The loop's selector, counting the polls that do not wait for I/O."""

    polls_without_wait = 0

    def select(self, timeout: float | None = None) -> list:
        if timeout == 0:
            self.polls_without_wait += 1
        return super().select(timeout)


def test_statements_one_after_another_add_no_step_without_io():
    # Each awaited statement wakes its task once (one poll that does not
    # wait: the task's callback is due). Keeping the connection for the
    # step must not add a second one: the check-in it schedules is dropped
    # when the next statement takes the connection back.
    selector = _CountingSelector()

    async def scenario() -> list[int]:
        await Author.vinyl.create(name="Ann")
        counts = []
        for _ in range(3):  # the first rounds make the plans and connections
            selector.polls_without_wait = 0
            for _ in range(20):
                assert (await Author.vinyl.get(name="Ann")).name == "Ann"
            counts.append(selector.polls_without_wait)
        await vinyl.dispose()
        return counts

    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        counts = runner.run(scenario())
    assert counts[-1] <= 20, counts
