"""A row lock another connection holds: NOWAIT's error and a lock wait timeout, as Django's.

The lock is held by Django's own sync connection (a thread of its own);
Django's answer, from a second sync connection, is the oracle. NOWAIT is
the caller's "do not wait": Django's ``OperationalError`` on every backend,
never a :class:`vinyl.exceptions.TransactionConflict`, never run again by
``atomic(retries=N)``. A lock wait that timed out (MariaDB's 1205 without
NOWAIT) is a conflict vinyl may retry; the server rolled back the statement
only, and a block that catches the error goes on, as Django's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author
from vinyl.exceptions import TransactionConflict

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="SQLite has no row locks (tests/backends/test_sqlite.py checks its error)"),
]

#: What a step gave: None when it ran, else the class of its error.
Outcome = type | None


def _hold(alias: str, name: str, locked: threading.Event, release: threading.Event) -> None:
    try:
        with transaction.atomic(using=alias):
            Author.objects.using(alias).select_for_update().get(name=name)
            locked.set()
            release.wait(30)
    finally:
        connections[alias].close()


@asynccontextmanager
async def locked_by_django(backend: str, name: str = "Bob") -> AsyncIterator[None]:
    """Hold a row lock on ``name`` in a transaction of Django's sync connection."""
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(settings.SYNC_ALIAS[backend], name, locked, release))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 30)
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


def _step(call: Callable[[], Any]) -> Outcome:
    try:
        call()
    except (DatabaseError, TransactionManagementError) as exc:
        return type(exc)
    return None


async def _astep(call: Callable[[], Any]) -> Outcome:
    try:
        await call()
    except (DatabaseError, TransactionManagementError) as exc:
        return type(exc)
    return None


@contextmanager
def _sync(backend: str, lock_wait_timeout: int | None = None) -> Iterator[str]:
    """Django's sync connection of ``backend`` in this thread (closed after)."""
    alias = settings.SYNC_ALIAS[backend]
    try:
        if lock_wait_timeout is not None:
            with connections[alias].cursor() as cursor:
                cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {lock_wait_timeout}")
        yield alias
    finally:
        connections[alias].close()


def _django_caught(backend: str, nowait: bool, lock_wait_timeout: int | None = None) -> list[Outcome | bool]:
    """In one Django block: create Cy, lock Bob (failing), the error caught
    in the block; then a count, the block's end, and whether Cy was committed."""
    steps: list[Outcome | bool] = []
    with _sync(backend, lock_wait_timeout) as alias:
        objects = Author.objects.using(alias)

        def block() -> None:
            with transaction.atomic(using=alias):
                objects.create(name="Cy")
                steps.append(_step(lambda: objects.select_for_update(nowait=nowait).get(name="Bob")))
                steps.append(_step(objects.count))

        steps.append(_step(block))
        steps.append(objects.filter(name="Cy").exists())
        objects.filter(name="Cy").delete()
    return steps


async def _vinyl_caught(nowait: bool, using: str = "vinyl_default") -> list[Outcome | bool]:
    """:func:`_django_caught` in a vinyl block."""
    steps: list[Outcome | bool] = []
    objects = Author.vinyl.using(using)

    async def block() -> None:
        async with vinyl.atomic(using=using):
            await objects.create(name="Cy")
            steps.append(await _astep(lambda: objects.select_for_update(nowait=nowait).get(name="Bob")))
            steps.append(await _astep(objects.count))

    steps.append(await _astep(block))
    steps.append(await objects.filter(name="Cy").exists())
    await objects.filter(name="Cy").delete()
    return steps


# -- NOWAIT ---------------------------------------------------------------


async def test_nowait_on_a_locked_row_raises_djangos_operational_error(backend):
    """The class Django raises, exactly: not a TransactionConflict (MariaDB
    reports NOWAIT's failure as error 1205, a lock wait timeout)."""
    await Author.vinyl.create(name="Bob")
    async with locked_by_django(backend):
        expected = await asyncio.to_thread(_django_caught, backend, True)
        got = await _vinyl_caught(True)
    assert expected[0] is OperationalError
    assert got == expected


async def test_atomic_retries_do_not_run_a_nowait_failure_again(backend):
    await Author.vinyl.create(name="Bob")
    runs: list[int] = []

    @vinyl.atomic(retries=3)
    async def lock_bob() -> None:
        runs.append(1)
        await Author.vinyl.select_for_update(nowait=True).get(name="Bob")

    async with locked_by_django(backend):
        with pytest.raises(DatabaseError) as raised:
            await lock_bob()
    assert runs == [1]
    assert type(raised.value) is OperationalError
    assert not isinstance(raised.value, TransactionConflict)


async def test_nowait_failure_of_each_way_to_read_is_djangos_error(backend):
    """Django's compiler runs every read of a select_for_update() QuerySet:
    a list, first(), an iterator, values_list()."""
    await Author.vinyl.create(name="Bob")
    reads: list[Callable[[Any], Any]] = [
        lambda qs: qs,
        lambda qs: qs.first(),
        lambda qs: qs.values_list("name", flat=True),
        lambda qs: _drain(qs.iterator()),
    ]
    async with locked_by_django(backend):
        for read in reads:
            async with vinyl.atomic():
                outcome = await _astep(lambda: read(Author.vinyl.select_for_update(nowait=True).filter(name="Bob")))
            assert outcome is OperationalError


async def _drain(rows: Any) -> list:
    return [row async for row in rows]


# -- a lock wait that timed out ---------------------------------------------

LOCK_WAIT = "vinyl_lock_wait"


@pytest.fixture
async def lock_wait_alias(backend: str) -> AsyncIterator[str]:
    """A vinyl alias of MariaDB whose sessions wait 1 s for a row lock."""
    base = dict(connections.settings["vinyl_default"])
    options = {**(base.get("OPTIONS") or {}), "init_command": "SET SESSION innodb_lock_wait_timeout = 1"}
    connections.settings[LOCK_WAIT] = {**base, "OPTIONS": options}
    try:
        yield LOCK_WAIT
    finally:
        await vinyl.dispose(LOCK_WAIT)
        del connections.settings[LOCK_WAIT]


@pytest.mark.backends("mysql", reason="innodb_lock_wait_timeout (error 1205) is InnoDB's; PostgreSQL's lock_timeout is SQLSTATE 55P03, NOWAIT's")
async def test_lock_wait_timeout_caught_in_the_block_keeps_the_transaction(backend, lock_wait_alias):
    """MariaDB rolled back the statement only: the block goes on and commits
    what it wrote before, as Django's. vinyl's class is a TransactionConflict,
    a subclass of Django's."""
    await Author.vinyl.create(name="Bob")
    async with locked_by_django(backend):
        expected = await asyncio.to_thread(_django_caught, backend, False, 1)
        got = await _vinyl_caught(False, lock_wait_alias)
    assert expected == [OperationalError, None, None, True]
    assert got == [TransactionConflict, None, None, True]


@pytest.mark.backends("mysql", reason="innodb_lock_wait_timeout (error 1205) is InnoDB's")
async def test_atomic_retries_run_a_timed_out_lock_wait_again(backend, lock_wait_alias):
    await Author.vinyl.create(name="Bob")
    runs: list[int] = []

    @vinyl.atomic(using=lock_wait_alias, retries=1)
    async def lock_bob() -> None:
        runs.append(1)
        await Author.vinyl.using(lock_wait_alias).create(name="Cy")
        await Author.vinyl.using(lock_wait_alias).select_for_update().get(name="Bob")

    async with locked_by_django(backend):
        with pytest.raises(TransactionConflict) as raised:
            await lock_bob()
    assert runs == [1, 1]
    assert raised.value.reason == "error 1205 (lock wait timeout)"
    # Each attempt was rolled back whole, by vinyl: no Cy.
    assert not await Author.vinyl.filter(name="Cy").exists()


# -- raw SQL NOWAIT ---------------------------------------------------------

RAW_NOWAIT = "SELECT * FROM testapp_author WHERE name = %s FOR UPDATE NOWAIT"


def _django_raw_nowait(backend: str) -> Outcome:
    with _sync(backend) as alias:

        def block() -> None:
            with transaction.atomic(using=alias):
                list(Author.objects.using(alias).raw(RAW_NOWAIT, ["Bob"]))

        return _step(block)


async def test_raw_sql_nowait_on_a_locked_row_is_caught_as_djangos_error(backend):
    """Django raises its OperationalError; vinyl's error is one too, so the
    same ``except`` catches both. On MariaDB it is the subclass
    TransactionConflict: the server's 1205 is also a timed-out lock wait's,
    and raw SQL has no Query to say NOWAIT (documented in docs/scaling.md)."""
    await Author.vinyl.create(name="Bob")
    async with locked_by_django(backend):
        expected = await asyncio.to_thread(_django_raw_nowait, backend)
        with pytest.raises(DatabaseError) as raised:
            async with vinyl.atomic():
                await Author.vinyl.raw(RAW_NOWAIT, ["Bob"])
    assert expected is OperationalError
    assert isinstance(raised.value, OperationalError)
    assert isinstance(raised.value, TransactionConflict) is (backend == "mysql")
