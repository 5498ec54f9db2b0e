"""Statements outside a block share a checkout: the spare connection.

vinyl keeps the idle connection of a finished statement checked out of its
pool, for the next statement (see vinyl.engine.engines.keep_spare). On
vinyl's own pool it stays out across loop steps until someone else needs a
connection (then it goes back first: nobody ever waits on it, and the pool
opens no connection for it), the engine is disposed, or it has been idle
for SPARE_IDLE_SECONDS. On a pool class an application chose it goes back
at the loop's next step.
"""

from __future__ import annotations

import asyncio
import selectors
import threading

import pytest
from django.conf import settings
from django.db import IntegrityError
from django.db.utils import Error as DjangoDBError
from sqlalchemy import event, text
from sqlalchemy.pool import AsyncAdaptedQueuePool

import vinyl
from tests.conftest import point_default_alias
from tests.testapp.models import Author
from tests.txhelpers import checked_out, configure_pool, kill_session, returned, run_loops_in_threads
from vinyl.engine.engines import SPARE_IDLE_SECONDS, engine_entry, forget_engine, open_connections

pytestmark = pytest.mark.backends("postgresql", "mysql", reason="SQLite's pool hands its one connection back at once")

# Longer than the bound by more than a timer's lateness can reorder: the
# spare's timer was armed before the sleep's, for an earlier time.
PAST_THE_BOUND = SPARE_IDLE_SECONDS + 0.2


def count_events(name: str) -> list:
    seen: list = []
    event.listen(vinyl.get_engine().sync_engine, name, lambda *args: seen.append(1))
    return seen


async def statements(age: int) -> None:
    assert (await Author.vinyl.get(name="Ann")).name == "Ann"
    assert await Author.vinyl.count() == 1
    await Author.vinyl.filter(name="Ann").update(age=age)


async def warmed() -> None:
    """Ann, and the plans of statements() (straight on the driver from
    their second run), with no spare left."""
    await Author.vinyl.create(name="Ann")
    for age in (1, 2):
        await statements(age)
    assert await returned() == 0


def spares() -> int:
    return len(engine_entry("vinyl_default").spares)


@pytest.mark.usefixtures("vinyl_db")
async def test_statements_share_a_checkout_across_loop_steps():
    await warmed()
    checkouts, checkins = count_events("checkout"), count_events("checkin")
    await statements(3)
    await asyncio.sleep(0)
    await statements(4)
    await asyncio.sleep(0.01)
    await statements(5)
    assert (len(checkouts), len(checkins)) == (1, 0)
    assert checked_out() == 1 and spares() == 1  # the spare, idle
    assert await returned() == 0
    assert len(checkins) == 1
    assert await Author.vinyl.filter(age=5).count() == 1
    assert len(checkouts) == 2


@pytest.mark.usefixtures("vinyl_db")
async def test_an_idle_spare_goes_back_to_the_pool_within_the_bound():
    await warmed()
    checkins = count_events("checkin")
    await statements(3)
    assert checked_out() == 1
    await asyncio.sleep(PAST_THE_BOUND)
    # Back by its timer (returned() would give it back itself).
    assert checked_out() == 0 and spares() == 0
    assert len(checkins) == 1
    # A task busy past the bound keeps its connection (the timer finds it in
    # use), and its spare goes back once it is idle.
    loop = asyncio.get_running_loop()
    end = loop.time() + PAST_THE_BOUND
    while loop.time() < end:
        await statements(4)
    await asyncio.sleep(PAST_THE_BOUND)
    assert checked_out() == 0 and spares() == 0
    assert await returned() == 0


@pytest.mark.usefixtures("vinyl_db")
async def test_sqlalchemy_code_and_blocks_get_the_spare_of_a_pool_of_one():
    # (A timeout shorter than the bound: nothing waits for the spare's timer.)
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=SPARE_IDLE_SECONDS / 4)
    await warmed()
    await statements(3)
    for _ in range(3):
        await asyncio.sleep(0)  # later steps: the spare is still out
    assert checked_out() == 1
    # SQLAlchemy code sharing the pool, a block, a statement: each gets the
    # pool's only connection at once (a wait would end in a timeout).
    async with vinyl.get_engine().connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM testapp_author"))).scalar_one() == 1
    await statements(4)
    async with vinyl.atomic():
        await Author.vinyl.filter(name="Ann").update(age=9)
        assert await Author.vinyl.filter(age=9).count() == 1
        assert spares() == 0  # a block's connection is never a spare
    await statements(5)
    assert spares() == 1
    await vinyl.dispose()  # with a spare: it goes back, then the pool closes
    assert await Author.vinyl.count() == 1
    assert await returned() == 0


@pytest.mark.usefixtures("vinyl_db")
async def test_the_pool_opens_no_connection_while_a_spare_is_idle():
    await configure_pool(pool_size=1, max_overflow=5)
    await warmed()
    await statements(3)
    await asyncio.sleep(0)
    assert open_connections() == 1 and spares() == 1
    async with vinyl.get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))
        assert open_connections() == 1  # the spare, not an overflow connection
        assert spares() == 0
    # Tasks that need more connections than there are spares open them.
    assert await asyncio.gather(*(Author.vinyl.filter(name="Ann").count() for _ in range(4))) == [1] * 4
    assert await returned() == 0


@pytest.mark.usefixtures("vinyl_db")
async def test_many_tasks_on_a_small_pool_all_finish():
    await configure_pool(pool_size=2, max_overflow=0, pool_timeout=5)

    async def work(i: int) -> int:
        author = await Author.vinyl.create(name=f"a{i:02}")
        await Author.vinyl.filter(pk=author.pk).update(age=i)
        return (await Author.vinyl.get(pk=author.pk)).age

    for _ in range(2):
        assert await asyncio.gather(*(work(i) for i in range(40))) == list(range(40))
        await Author.vinyl.all().delete()
    assert await returned() == 0


@pytest.mark.usefixtures("vinyl_db")
async def test_statements_blocks_and_sqlalchemy_code_share_a_small_pool():
    # Spares and tasks waiting for the pool never coexist: whoever waits
    # (in vinyl's line or in SQLAlchemy's checkout) gets a connection as one
    # comes back, never behind an idle spare (a wait would end in a timeout).
    await configure_pool(pool_size=2, max_overflow=0, pool_timeout=10)
    await warmed()

    async def work(i: int) -> int:
        for _ in range(3):
            if i % 3 == 0:
                async with vinyl.get_engine().connect() as conn:
                    await conn.execute(text("SELECT count(*) FROM testapp_author"))
            elif i % 3 == 1:
                async with vinyl.atomic():
                    await Author.vinyl.filter(name="Ann").update(age=i)
            await statements(i)
            await asyncio.sleep(0)
        return i

    assert await asyncio.gather(*(work(i) for i in range(30))) == list(range(30))
    assert await returned() == 0


@pytest.mark.usefixtures("vinyl_db")
async def test_dispose_closes_the_spares():
    await warmed()
    await statements(3)
    entry = engine_entry("vinyl_default")
    assert len(entry.spares) == 1 and len(entry.opened) == 1
    await vinyl.dispose()
    assert entry.spares == [] and entry.opened == {}
    # SQLAlchemy's own dispose of the engine closes a spare as well (the
    # pool's dispose asks its queue for every idle connection).
    for age in (3, 4):  # (the new engine's plans)
        await statements(age)
    entry = engine_entry("vinyl_default")
    assert len(entry.spares) == 1 and len(entry.opened) == 1
    await vinyl.get_engine().dispose()
    assert entry.spares == [] and entry.opened == {}
    await statements(4)  # on the engine's new pool
    assert len(entry.opened) == 1
    assert await returned() == 0


async def _server_id() -> int:
    async with vinyl.get_engine().connect() as conn:
        sql = "SELECT pg_backend_pid()" if conn.dialect.name == "postgresql" else "SELECT CONNECTION_ID()"
        return (await conn.execute(text(sql))).scalar_one()


@pytest.mark.usefixtures("vinyl_db")
async def test_a_spare_whose_session_the_server_killed():
    await configure_pool(pool_size=1, max_overflow=0)
    await warmed()
    victim = await _server_id()  # the pool's only connection
    await statements(3)
    assert spares() == 1
    await kill_session(victim)
    await asyncio.sleep(0.05)
    # A read on it fails, and runs once more on a fresh connection.
    assert (await Author.vinyl.get(name="Ann")).age == 3
    assert await _server_id() != victim
    await statements(4)
    victim = await _server_id()
    await statements(5)
    await kill_session(victim)
    await asyncio.sleep(0.05)
    # A write is never retried; the next statement gets a live connection.
    with pytest.raises(DjangoDBError):
        await Author.vinyl.filter(name="Ann").update(age=6)
    assert await Author.vinyl.filter(age=5).count() == 1
    assert await returned() == 0


@pytest.mark.usefixtures("vinyl_db")
async def test_a_failed_statement_does_not_keep_its_connection():
    for name in ("Ann", "Cy"):
        await Author.vinyl.create(name=name, email=f"{name}@x")
    for _ in range(2):
        with pytest.raises(IntegrityError):
            await Author.vinyl.create(name="Bob", email="Ann@x")
        assert checked_out() == 0
    assert await Author.vinyl.count() == 2


@pytest.mark.usefixtures("vinyl_db")
async def test_an_engine_shared_by_two_aliases_keeps_no_spare(backend):
    # One engine of vinyl's own pool handed to set_engine() for two aliases.
    # An application's engine keeps no spare (its check-in rolls back, a
    # round trip), so neither alias can hold a connection the pool does not see.
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=SPARE_IDLE_SECONDS / 4)
    await warmed()
    engine = vinyl.get_engine()
    other = settings.VINYL_ALIAS[backend]
    vinyl.set_engine(engine, "vinyl_default")
    vinyl.set_engine(engine, other)
    try:
        for alias in ("vinyl_default", other, "vinyl_default", other, "vinyl_default"):
            assert await Author.vinyl.using(alias).filter(name="Ann").count() == 1
            assert engine_entry(alias).spares == []
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            # Each time, SQLAlchemy code gets the pool's only connection at
            # once (a wait would end in a timeout).
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM testapp_author"))).scalar_one() == 1
    finally:
        forget_engine("vinyl_default")
        forget_engine(other)
        await engine.dispose()


@pytest.mark.usefixtures("vinyl_db")
async def test_on_another_pool_class_the_spare_goes_back_at_the_next_step():
    # (Nothing would take a spare back when such a pool is asked.)
    await configure_pool(poolclass=AsyncAdaptedQueuePool)
    await warmed()
    checkouts = count_events("checkout")
    await statements(3)
    assert len(checkouts) == 1  # one checkout for the statements of one step
    assert checked_out() == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert checked_out() == 0 and spares() == 0  # by its timer
    await statements(4)
    assert len(checkouts) == 2


def test_two_threads_loops_give_their_spares_back_at_once(_emptied):
    # Each loop has its engine entry, and its spares' timer its own context
    # (a Context is entered by one thread at a time): the two timers fire
    # about together.
    point_default_alias(_emptied)
    results: dict[str, tuple] = {}
    ready = threading.Barrier(2)

    async def run(name: str) -> None:
        for _ in range(3):
            assert await Author.vinyl.filter(name=name).count() == 0
        await returned()
        await asyncio.get_running_loop().run_in_executor(None, ready.wait, 30)
        assert await Author.vinyl.filter(name=name).count() == 0
        kept = checked_out()
        await asyncio.sleep(PAST_THE_BOUND)
        results[name] = (kept, checked_out(), engine_entry("vinyl_default"))
        await vinyl.dispose()

    run_loops_in_threads(run)
    assert results["a"][:2] == results["b"][:2] == (1, 0)
    assert results["a"][2] is not results["b"][2]


class _CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The loop's selector, counting the polls that do not wait for I/O."""

    polls_without_wait = 0

    def select(self, timeout: float | None = None) -> list:
        if timeout == 0:
            self.polls_without_wait += 1
        return super().select(timeout)


@pytest.mark.usefixtures("vinyl_db")
def test_statements_one_after_another_add_no_step_without_io():
    # Each awaited statement wakes its task once (one poll that does not
    # wait: the task's callback is due). Keeping the connection must not
    # add a second one.
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
