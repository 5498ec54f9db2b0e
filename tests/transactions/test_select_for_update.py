"""select_for_update(): inside atomic only, with nowait, skip_locked and of."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import Any

import pytest
from django.conf import settings
from django.db import DatabaseError, NotSupportedError, connections, transaction
from django.db.models import Max, QuerySet
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author, Book

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="SQLite has no row locks (tests/backends/test_sqlite.py checks its error)"),
]


async def test_outside_atomic_raises_transaction_management_error():
    await Author.vinyl.create(name="Ann")
    qs = Author.vinyl.select_for_update()
    with pytest.raises(TransactionManagementError, match="outside of a transaction"):
        await qs
    with pytest.raises(TransactionManagementError):
        await qs.get(name="Ann")
    with pytest.raises(TransactionManagementError):
        await qs.first()
    with pytest.raises(TransactionManagementError):
        [a async for a in qs]


async def test_inside_atomic_locks_the_rows():
    await Author.vinyl.create(name="Ann")
    async with vinyl.atomic():
        [ann] = await Author.vinyl.select_for_update().filter(name="Ann")
        ann.age = 7
        await ann.save()
    assert (await Author.vinyl.get(name="Ann")).age == 7


async def _hold_lock(name: str, locked: asyncio.Event, release: asyncio.Event) -> None:
    async with vinyl.atomic():
        await Author.vinyl.select_for_update().get(name=name)
        locked.set()
        await release.wait()


async def test_nowait_and_skip_locked_against_a_lock_held_elsewhere():
    for name in ("Ann", "Bob", "Cy"):
        await Author.vinyl.create(name=name)
    locked, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_lock("Bob", locked, release))
    await locked.wait()
    try:
        async with vinyl.atomic():
            free = await Author.vinyl.select_for_update(skip_locked=True).order_by("name")
            assert [a.name for a in free] == ["Ann", "Cy"]
        with pytest.raises(DatabaseError):
            async with vinyl.atomic():
                await Author.vinyl.select_for_update(nowait=True).get(name="Bob")
    finally:
        release.set()
        await holder
    async with vinyl.atomic():
        assert (await Author.vinyl.select_for_update(nowait=True).get(name="Bob")).name == "Bob"


async def test_of_locks_the_named_tables(backend):
    ann = await Author.vinyl.create(name="Ann")
    await Book.vinyl.create(title="T", author=ann)
    qs = Book.vinyl.select_related("author").select_for_update(of=("self",))
    async with vinyl.atomic():
        if backend == "postgresql":
            [book] = await qs
            assert book["author"].name == "Ann"
        else:
            # As in Django: MySQL and MariaDB have no SELECT ... FOR UPDATE OF.
            with pytest.raises(NotSupportedError):
                await qs


# -- locks of shared blocks, seen from Django's own connections ---------------


def _from_django(backend: str) -> tuple[type | None, list[str]]:
    """On a Django sync connection (a thread of its own): the error class of
    ``select_for_update(nowait=True)`` on Bob (None if it got the row), and
    the names ``skip_locked`` reads."""
    alias = settings.SYNC_ALIAS[backend]
    try:
        with transaction.atomic(using=alias):
            free = [a.name for a in Author.objects.using(alias).select_for_update(skip_locked=True).order_by("name")]
        try:
            with transaction.atomic(using=alias):
                Author.objects.using(alias).select_for_update(nowait=True).get(name="Bob")
        except DatabaseError as exc:
            return type(exc), free
        return None, free
    finally:
        connections[alias].close()


async def _from_vinyl() -> type | None:
    """The same nowait, from a vinyl block of its own (another connection:
    run it in a task started with an empty context, outside the block)."""
    return await asyncio.create_task(_vinyl_nowait(), context=contextvars.Context())


async def _vinyl_nowait() -> type | None:
    try:
        async with vinyl.atomic():
            await Author.vinyl.select_for_update(nowait=True).get(name="Bob")
    except DatabaseError as exc:
        return type(exc)
    return None


async def _lock_bob() -> None:
    await Author.vinyl.select_for_update().get(name="Bob")


async def _lock_bob_nested() -> None:
    async with vinyl.atomic():
        await _lock_bob()


async def _by_a_task() -> None:
    await asyncio.gather(_lock_bob(), Author.vinyl.count())


async def _in_a_released_nested_block() -> None:
    await _lock_bob_nested()


async def _in_tasks_nested_blocks() -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(_lock_bob_nested())
        group.create_task(_lock_bob_nested())


@pytest.mark.parametrize("lock", [_lock_bob, _by_a_task, _in_a_released_nested_block, _in_tasks_nested_blocks])
@pytest.mark.parametrize("ends", ["commit", "rollback"])
async def test_lock_of_a_shared_block_is_held_until_the_block_ends(backend, lock, ends):
    """A row lock taken in the block, by its own task, a task it started or a
    nested block that was released, holds against other connections until
    the block commits or rolls back, as Django's: nowait raises Django's
    error class (vinyl's too), skip_locked skips the row."""
    for name in ("Ann", "Bob", "Cy"):
        await Author.vinyl.create(name=name)
    with contextlib.suppress(LookupError):
        async with vinyl.atomic():
            await lock()
            error, free = await asyncio.to_thread(_from_django, backend)
            assert free == ["Ann", "Cy"]
            assert error is not None
            raised = await _from_vinyl()
            assert raised is error
            if ends == "rollback":
                raise LookupError
    assert await asyncio.to_thread(_from_django, backend) == (None, ["Ann", "Bob", "Cy"])
    assert await _from_vinyl() is None


def _django_outside_atomic(backend: str, method: str) -> str:
    alias = settings.SYNC_ALIAS[backend]
    try:
        return _outcome_sync(lambda: _TERMINALS[method](Author.objects.using(alias).select_for_update()))
    finally:
        connections[alias].close()


def _outcome_sync(call: Any) -> str:
    try:
        result = call()
        if isinstance(result, QuerySet) or hasattr(result, "__next__"):
            list(result)  # (lazy: evaluated, as vinyl's await does)
    except Exception as exc:
        return type(exc).__name__
    return "ok"


async def _vinyl_outside_atomic(method: str) -> str:
    try:
        result = _TERMINALS[method](Author.vinyl.select_for_update())
        if hasattr(result, "__aiter__"):
            [row async for row in result]
        else:
            await result
    except Exception as exc:
        return type(exc).__name__
    return "ok"


_TERMINALS: dict[str, Any] = {
    "get": lambda qs: qs.get(name="Ann"),
    "first": lambda qs: qs.first(),
    "last": lambda qs: qs.last(),
    "latest": lambda qs: qs.latest(),
    "exists": lambda qs: qs.exists(),
    "count": lambda qs: qs.count(),
    "values_list": lambda qs: qs.values_list("name", flat=True),
    "in_bulk": lambda qs: qs.in_bulk(),
    "aggregate": lambda qs: qs.aggregate(oldest=Max("age")),
    "iterator": lambda qs: qs.iterator(),
    "update": lambda qs: qs.update(age=3),
    "delete": lambda qs: qs.filter(name="nobody").delete(),
    "get_or_create": lambda qs: qs.get_or_create(name="Ann"),
    "update_or_create": lambda qs: qs.update_or_create(name="Ann", defaults={"age": 2}),
}


@pytest.mark.parametrize("method", sorted(_TERMINALS))
async def test_outside_atomic_each_terminal_answers_as_django(backend, method):
    """Outside a block, each way to run a select_for_update() QuerySet
    raises (TransactionManagementError) or runs exactly where Django's does."""
    await Author.vinyl.create(name="Ann", age=1)
    expected = await asyncio.to_thread(_django_outside_atomic, backend, method)
    await Author.vinyl.all().delete()
    await Author.vinyl.create(name="Ann", age=1)
    assert await _vinyl_outside_atomic(method) == expected
