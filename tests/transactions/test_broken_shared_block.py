"""A write that fails in a block shared by several tasks leaves the block
only able to roll back, for every task of the block, including one whose
statement was already waiting for the block's connection when the write
failed.

Django, on one connection, refuses every query after a failed write inside
``atomic`` with TransactionManagementError until the block ends (and enters
a nested block without a savepoint then). Tasks of a vinyl block run their
statements one at a time on its connection: whatever order they queued in,
a statement that runs after the failure must get the same refusal, not run
in the broken transaction (PostgreSQL then answers InternalError "current
transaction is aborted"; MariaDB and SQLite would run it, and the caller
would be told it succeeded).
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def _django_after_failed_write(backend: str, then: str) -> str:
    """What Django's sync ORM answers for ``then`` after a failed write caught inside atomic."""
    alias = settings.SYNC_ALIAS[backend]

    def run() -> str:
        with transaction.atomic(using=alias):
            try:
                Author.objects.using(alias).create(name="dup2", email="d@x")
            except IntegrityError:
                pass
            try:
                if then == "nested":
                    with transaction.atomic(using=alias):
                        Author.objects.using(alias).create(name="next")
                elif then == "stream":
                    list(Author.objects.using(alias).iterator(chunk_size=2))
                else:
                    Author.objects.using(alias).create(name="next")
            except TransactionManagementError:
                return "refused"
            return "ran"

    return await sync_to_async(run)()


async def _fail_while_next_waits(then) -> str:
    """Fail a write in a shared block while another task's ``then`` waits
    for the block's connection (queued during the INSERT's round trip)."""
    failing_started = asyncio.Event()
    outcome: list[str] = []

    async def fails() -> None:
        failing_started.set()
        with pytest.raises(IntegrityError):
            await Author.vinyl.create(name="dup2", email="d@x")

    async def next_one() -> None:
        await failing_started.wait()
        try:
            await then()
        except TransactionManagementError:
            outcome.append("refused")
            return
        outcome.append("ran")

    async with vinyl.atomic():
        await Author.vinyl.count()  # the transaction has begun
        await asyncio.gather(fails(), next_one())
    return outcome[0]


async def _create() -> None:
    await Author.vinyl.create(name="next")


async def _stream() -> None:
    async for _ in Author.vinyl.iterator(chunk_size=2):
        pass


async def _nested() -> None:
    async with vinyl.atomic():
        await Author.vinyl.create(name="next")


@pytest.mark.parametrize("then, kind", [(_create, "write"), (_stream, "stream"), (_nested, "nested")])
async def test_statement_waiting_for_the_block_when_a_sibling_write_fails_is_refused(backend, then, kind):
    await Author.vinyl.create(name="dup", email="d@x")
    expected = await _django_after_failed_write(backend, kind)
    assert expected == "refused"
    assert await _fail_while_next_waits(then) == expected
    assert await committed_names() == ["dup"]
    assert await returned() == 0


async def test_sibling_tasks_after_a_caught_failed_write_are_refused(backend):
    await Author.vinyl.create(name="dup", email="d@x")
    wrote = [asyncio.Event(), asyncio.Event()]
    failed = asyncio.Event()
    refused: list[str] = []

    async def fails() -> None:
        for event in wrote:
            await event.wait()
        with pytest.raises(IntegrityError):
            await Author.vinyl.create(name="dup2", email="d@x")
        failed.set()

    async def keeps_writing(name: str, done: asyncio.Event) -> None:
        await Author.vinyl.create(name=name)
        done.set()
        await failed.wait()
        with pytest.raises(TransactionManagementError):
            await Author.vinyl.create(name=f"{name} after")
        with pytest.raises(TransactionManagementError):
            async with vinyl.atomic():
                await Author.vinyl.create(name=f"{name} nested")
        with pytest.raises(TransactionManagementError):
            await Author.vinyl.count()
        refused.append(name)

    async with vinyl.atomic():
        await asyncio.gather(fails(), keeps_writing("b", wrote[0]), keeps_writing("c", wrote[1]))
    assert refused == ["b", "c"]
    # The block ends in a rollback of the writes that succeeded too (as
    # Django's, without an exception).
    assert await committed_names() == ["dup"]
    assert await returned() == 0
