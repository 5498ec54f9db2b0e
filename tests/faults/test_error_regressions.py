"""Regressions of issue 13: driver errors that escaped unmapped, MariaDB's
stacked statements. Every error a user sees is the one Django raises."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import IntegrityError, OperationalError, ProgrammingError, connections
from django.db.models import F
from django.db.transaction import TransactionManagementError

import vinyl
from tests.faults.sessions import Sessions
from tests.testapp.models import AllTypes, Author
from tests.txhelpers import returned

pytestmark = pytest.mark.usefixtures("vinyl_db")


def _sync(backend: str) -> str:
    return {"postgresql": "sync_postgresql", "mysql": "sync_mysql", "sqlite": "sync_sqlite"}[backend]


async def django_raises(fn) -> type:
    """The class of the exception Django's sync ORM raises in ``fn`` (run in
    a thread of its own, outside this task's context)."""
    outcome: list = []

    def run() -> None:
        try:
            fn()
        except Exception as exc:  # the class is what is compared
            outcome.append(type(exc))
        else:
            outcome.append(None)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert outcome and outcome[0] is not None, "Django raised nothing"
    return outcome[0]


@pytest.mark.backends("mysql", reason="MariaDB's client sends stacked statements; PostgreSQL's protocol refuses them")
async def test_mariadb_runs_no_stacked_statements(backend):
    # asyncmy connects with CLIENT_MULTI_STATEMENTS: "SELECT %s; DROP TABLE t"
    # used to drop the table.
    await Author.vinyl.create(name="kept")
    with pytest.raises(ProgrammingError):
        await vinyl.fetch("SELECT %s; DROP TABLE testapp_author", ["x"])
    with pytest.raises(ProgrammingError):
        await vinyl.execute("UPDATE testapp_author SET age = 1; DROP TABLE testapp_author")
    assert await Author.vinyl.count() == 1
    assert await returned() == 0


@pytest.mark.backends("mysql", reason="error 1690 is MySQL's (unsigned out of range)")
async def test_mysql_1690_is_an_integrity_error_as_in_django(backend):
    await AllTypes.vinyl.create(positive=1)
    expected = await django_raises(
        lambda: AllTypes.objects.using(_sync(backend)).update(positive=F("positive") - 5)
    )
    assert expected is IntegrityError
    with pytest.raises(IntegrityError):
        await AllTypes.vinyl.filter(positive=1).update(positive=F("positive") - 5)
    with pytest.raises(IntegrityError):
        await AllTypes.vinyl.update(positive=F("positive") - 5)


async def test_lone_surrogate_raises_what_django_raises(backend):
    expected = await django_raises(lambda: Author.objects.using(_sync(backend)).create(name="a\ud800b"))
    with pytest.raises(expected):
        await Author.vinyl.create(name="a\ud800b")
    with pytest.raises(expected):
        await Author.vinyl.filter(name="a\ud800b").count()
    with pytest.raises(expected):
        await Author.vinyl.filter(name="a\ud800b")
    await Author.vinyl.create(name="fine")
    assert await Author.vinyl.count() == 1
    assert await returned() == 0


@pytest.mark.backends("postgresql", "mysql", reason="kills server sessions; SQLite has no server")
async def test_first_statement_of_atomic_after_lost_connections_is_a_django_error(backend):
    # asyncpg's InternalClientError (wrapped by SQLAlchemy) and asyncmy's
    # OperationalError 2006 used to reach the user from the BEGIN of a block.
    await Author.vinyl.create(name="a")
    # Fill the pool with idle connections, then kill them all on the server.
    sessions = await Sessions(vinyl.get_engine().url).start()
    try:
        await asyncio.gather(*(Author.vinyl.count() for _ in range(4)))
        await asyncio.sleep(0)
        assert await sessions.terminate_all() > 0
        failures: list[BaseException] = []
        for _ in range(6):
            try:
                async with vinyl.atomic():
                    assert await Author.vinyl.count() == 1
                    await Author.vinyl.filter(name="a").update(age=F("age") + 1)
            except Exception as exc:
                failures.append(exc)
        for exc in failures:
            assert isinstance(exc, OperationalError), "".join(__import__("traceback").format_exception(exc))
        # The first failure marks the whole pool stale: the next blocks get
        # fresh connections instead of each failing on a dead one.
        assert len(failures) <= 1
        assert await Author.vinyl.count() == 1
        assert await returned() == 0
    finally:
        await sessions.close()


@pytest.mark.backends("mysql", reason="MySQL ends a transaction on a deadlock and autocommits what follows; PostgreSQL aborts it")
async def test_statements_after_a_deadlock_never_autocommit(backend):
    # The deadlock victim's block caught the error and went on: its next
    # statements used to be committed one by one (a half-committed block).
    # As in Django (the failed update marked the block for rollback), the
    # next statement is refused and the block rolls back.
    a = await Author.vinyl.create(name="a")
    b = await Author.vinyl.create(name="b")
    both_locked = asyncio.Barrier(2)
    outcomes: dict[str, str] = {}

    async def block(me: str, first: int, second: int) -> None:
        try:
            async with vinyl.atomic():
                await Author.vinyl.filter(pk=first).update(age=F("age") + 1)
                await both_locked.wait()
                try:
                    await Author.vinyl.filter(pk=second).update(age=F("age") + 1)
                except OperationalError:
                    outcomes[me] = "deadlock"
                await Author.vinyl.create(name=f"after-{me}")
        except TransactionManagementError as exc:
            outcomes[me] = outcomes.get(me, "") + f", then {exc}"
        else:
            outcomes.setdefault(me, "committed")

    await asyncio.gather(block("x", a.pk, b.pk), block("y", b.pk, a.pk))
    assert sorted(v.split(",")[0] for v in outcomes.values()) == ["committed", "deadlock"], outcomes
    victim = next(k for k, v in outcomes.items() if v.startswith("deadlock"))
    assert "You can't execute queries until the end of the 'atomic' block" in outcomes[victim]
    names = sorted(await Author.vinyl.filter(name__startswith="after").values_list("name", flat=True))
    assert names == [f"after-{'y' if victim == 'x' else 'x'}"]
    ages = await Author.vinyl.filter(pk__in=[a.pk, b.pk]).order_by("pk").values_list("age", flat=True)
    assert list(ages) == [1, 1]
    assert await returned() == 0
