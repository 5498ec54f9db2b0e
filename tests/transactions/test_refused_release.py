"""A nested block whose statement failed, the error caught inside it.

On PostgreSQL the failed statement aborts the transaction: the block's
RELEASE SAVEPOINT is refused. Django then rolls back to the savepoint, lets
it go and raises the RELEASE's error: the block's work (and its on_commit
callbacks) is undone, the enclosing block goes on and commits what it did
before and after. vinyl gave the enclosing block up (it rolled back whole,
without an error: make fuzz seed 3037, write shape 167). MariaDB and SQLite
keep the transaction going after such an error: the RELEASE succeeds and the
block's work stands, on both sides. Django's sync ORM is the oracle.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")

BAD_SQL = "SELECT * FROM vinyl_no_such_table"


def _name(exc: BaseException | None) -> str | None:
    return None if exc is None else type(exc).__name__


def _django(backend: str, failing: str) -> tuple:
    alias = settings.SYNC_ALIAS[backend]
    objects = Author.objects.using(alias)
    ran: list[str] = []
    exited: BaseException | None = None
    after: object = None
    try:
        with transaction.atomic(using=alias):
            objects.create(name="before")
            try:
                with transaction.atomic(using=alias):
                    objects.create(name="inner")
                    transaction.on_commit(lambda: ran.append("inner"), using=alias)
                    try:
                        if failing == "read":
                            with connections[alias].cursor() as cursor:
                                cursor.execute(BAD_SQL)
                        else:
                            objects.create(name="dup", email="inner@x")
                    except (DatabaseError, IntegrityError):
                        pass
            except (DatabaseError, TransactionManagementError) as exc:
                exited = exc
            try:
                after = objects.count()
                objects.create(name="after")
            except (DatabaseError, TransactionManagementError) as exc:
                after = _name(exc)
            transaction.on_commit(lambda: ran.append("outer"), using=alias)
    finally:
        names = sorted(objects.values_list("name", flat=True))
        objects.all().delete()
        connections[alias].close()
    return _name(exited), after, names, ran


async def _vinyl(failing: str) -> tuple:
    objects = Author.vinyl
    ran: list[str] = []
    exited: BaseException | None = None
    after: object = None
    async with vinyl.atomic():
        await objects.create(name="before")
        try:
            async with vinyl.atomic():
                await objects.create(name="inner")
                vinyl.on_commit(lambda: ran.append("inner"))
                try:
                    if failing == "read":
                        await objects.raw(BAD_SQL)
                    else:
                        await objects.create(name="dup", email="inner@x")
                except (DatabaseError, IntegrityError):
                    pass
        except (DatabaseError, TransactionManagementError) as exc:
            exited = exc
        try:
            after = await objects.count()
            await objects.create(name="after")
        except (DatabaseError, TransactionManagementError) as exc:
            after = _name(exc)
        vinyl.on_commit(lambda: ran.append("outer"))
    return _name(exited), after, await committed_names(), ran


@pytest.mark.parametrize("failing", ["read", "write"])
async def test_a_failed_statement_caught_in_a_nested_block_ends_it_as_django(backend, failing):
    await Author.vinyl.create(name="dup", email="inner@x")
    expected = await sync_to_async(_django)(backend, failing)
    await Author.vinyl.create(name="dup", email="inner@x")  # (Django's run emptied the table)
    got = await _vinyl(failing)
    assert got == expected
    if backend == "postgresql" and failing == "read":
        assert expected == ("InternalError", 2, ["after", "before", "dup"], ["outer"])
    assert await returned() == 0
