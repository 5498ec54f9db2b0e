"""A write cancelled inside an ``atomic`` block, as Django's rule has it: a
block is left only able to roll back by a write that failed; a write that
ran whole is no failure.

Inside a block a statement runs to its end even if its task is cancelled
meanwhile (other tasks share the connection), then the cancellation is
raised. The answer is the same whether the write's shape runs for the first
time (compiled by Django, in the bridge) or through its cached plan:

- a write that ran whole: the block goes on and commits it;
- a write that failed: the block's next statement raises
  TransactionManagementError and nothing of the block is committed, as
  without the cancellation; the cancellation's cause is the error.

The cancellation here is ``asyncio.timeout(0)``: it is delivered at the
write's first wait, on the server's answer.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator

import pytest
from django.db import IntegrityError
from django.db.models import F
from django.db.models.signals import pre_save
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, returned
from vinyl import _compat

pytestmark = pytest.mark.usefixtures("vinyl_db")


@contextmanager
def _receiver() -> Iterator[None]:
    """A pre_save receiver on Author: create() saves through Django, in the bridge."""

    def noop(**kwargs: Any) -> None:
        pass

    pre_save.connect(noop, sender=Author)
    try:
        yield
    finally:
        pre_save.disconnect(noop, sender=Author)


async def _setup() -> dict[str, Author]:
    """Ann and Bob, committed; then a new engine, so a new plan cache: the
    next call of each shape is its first."""
    rows = {name: await Author.vinyl.create(name=name, age=1, email=f"{name}@x") for name in ("Ann", "Bob")}
    await vinyl.dispose()
    return rows


async def _cancelled(write: Awaitable[Any]) -> TimeoutError:
    with pytest.raises(TimeoutError) as caught:
        async with asyncio.timeout(0):
            await write
    return caught.value


# -- a cancelled write that ran whole ----------------------------------------

# A write, given Ann's and Bob's rows.
Write = Callable[[dict[str, Author]], Awaitable[Any]]


async def _save(rows: dict[str, Author]) -> None:
    rows["Ann"].age = 7
    await rows["Ann"].save()


async def _create_in_bridge(rows: dict[str, Author]) -> Author:
    with _receiver():
        return await Author.vinyl.create(name="Cy", age=1)


# name -> (the write, the (name, age) rows once the block has committed).
# delete, save, and create with a pre_save receiver run in the bridge on
# every call; update's first call does, the others are planned.
RAN_WHOLE: dict[str, tuple[Write, list[tuple[str, int]]]] = {
    "update": (
        lambda rows: Author.vinyl.filter(pk=rows["Ann"].pk).update(age=F("age") + 1),
        [("Ann", 2), ("Bob", 1)],
    ),
    "create": (lambda rows: Author.vinyl.create(name="Cy", age=1), [("Ann", 1), ("Bob", 1), ("Cy", 1)]),
    "create in the bridge": (_create_in_bridge, [("Ann", 1), ("Bob", 1), ("Cy", 1)]),
    "bulk_create": (
        lambda rows: Author.vinyl.bulk_create([Author(name="Cy", age=1), Author(name="Di", age=1)]),
        [("Ann", 1), ("Bob", 1), ("Cy", 1), ("Di", 1)],
    ),
    "delete": (lambda rows: Author.vinyl.filter(pk=rows["Bob"].pk).delete(), [("Ann", 1)]),
    "save": (_save, [("Ann", 7), ("Bob", 1)]),
}


async def _ages() -> list[tuple[str, int]]:
    return [tuple(row) async for row in Author.vinyl.order_by("name").values_list("name", "age")]  # type: ignore[misc]


@pytest.mark.parametrize("planned", [False, True], ids=["first call", "planned"])
@pytest.mark.parametrize("name", list(RAN_WHOLE))
async def test_a_cancelled_write_that_ran_whole_is_committed_with_its_block(backend, name, planned):
    """The first call of a shape (the bridge, for update, delete, save and a
    create with a receiver) answers as its plan: the write ran whole, the
    block goes on, and commits it."""
    write, committed = RAN_WHOLE[name]
    rows = await _setup()
    if planned:
        # The same shape once, in a block rolled back: its plan is cached.
        with pytest.raises(LookupError):
            async with vinyl.atomic():
                await write(rows)
                raise LookupError
        rows = {row.name: row for row in [x async for x in Author.vinyl.all()]}
    async with vinyl.atomic():
        await Author.vinyl.count()  # the transaction has begun
        await _cancelled(write(rows))
        assert await _ages() == committed  # the block goes on: it ran whole
        await Author.vinyl.filter(name="Ann").update(email="ann@y")
    assert await _ages() == committed
    assert await Author.vinyl.filter(email="ann@y").count() == 1
    assert await returned() == 0


# -- a write that failed while its task was cancelled ------------------------


async def _save_email(rows: dict[str, Author], email: str) -> None:
    rows["Ann"].email = email
    await rows["Ann"].save()


async def _create_in_bridge_email(rows: dict[str, Author], email: str) -> Author:
    with _receiver():
        return await Author.vinyl.create(name="Cy", email=email)


# name -> the write setting ``email`` ("Bob@x": a duplicate, it fails)
FAILS: dict[str, Callable[[dict[str, Author], str], Awaitable[Any]]] = {
    "update": lambda rows, email: Author.vinyl.filter(pk=rows["Ann"].pk).update(email=email),
    "create": lambda rows, email: Author.vinyl.create(name="Cy", email=email),
    "create in the bridge": _create_in_bridge_email,
    "bulk_create": lambda rows, email: Author.vinyl.bulk_create([Author(name="Cy", email=email)]),
    "save": _save_email,
}


async def _run_failing(write: Any, rows: dict[str, Author], cancel: bool) -> tuple[str, list[str], Any]:
    """In a block: a write that succeeds, then ``write``, which fails (its
    task cancelled meanwhile if ``cancel``), then a statement. Returns what
    that statement raised (or "ran"), the names committed and the error
    the write raised."""
    async with vinyl.atomic():
        await Author.vinyl.create(name="Ed")
        if cancel:
            error: Any = await _cancelled(write(rows, "Bob@x"))
        else:
            with pytest.raises(IntegrityError) as caught:
                await write(rows, "Bob@x")
            error = caught.value
        try:
            await Author.vinyl.filter(name="Ann").update(age=F("age") + 1)
            then = "ran"
        except Exception as exc:
            then = type(exc).__name__
    return then, await committed_names(), error


@pytest.mark.parametrize("planned", [False, True], ids=["first call", "planned"])
@pytest.mark.parametrize("name", list(FAILS))
async def test_a_write_that_failed_while_cancelled_leaves_its_block_only_rolling_back(backend, name, planned):
    """As the failure alone (Django marks a block after a failed write):
    the next statement is refused, nothing of the block is committed; the
    cancellation's cause is Django's IntegrityError."""
    write = FAILS[name]
    rows = await _setup()
    if planned:
        # The same shape once, in a block rolled back: its plan is cached.
        with pytest.raises(LookupError):
            async with vinyl.atomic():
                await write(rows, "new@x")
                raise LookupError
    then, names, error = await _run_failing(write, rows, cancel=True)
    assert isinstance(error.__cause__, asyncio.CancelledError)
    assert isinstance(error.__cause__.__cause__, IntegrityError)
    if name == "bulk_create" and not _compat.BULK_CREATE_OF_ONE_INSERT_MARKS_BLOCK:
        # Django 6 runs one INSERT unmarked: the cancelled one answers as
        # the failure alone does (on the same rows: without what the
        # cancelled run's block committed).
        await Author.vinyl.exclude(name__in=["Ann", "Bob"]).delete()
        assert (then, names) == (await _run_failing(write, rows, cancel=False))[:2]
    else:
        assert then == TransactionManagementError.__name__
        assert names == ["Ann", "Bob"]
    assert await returned() == 0
