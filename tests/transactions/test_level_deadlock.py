"""A task inside a nested block awaits a sibling that uses the enclosing level.

The nested block holds the enclosing level until it ends, so the sibling's
statement waits for the block, and the block's task waits for the sibling:
neither could go on, and the program hung. vinyl now finds the cycle while
the sibling waits and fails the sibling's statement with Django's
``TransactionManagementError``; the block's task gets it from its await. It
is a failed write of the enclosing level, which then can only roll back, as
Django leaves a block a failed save ran in. Waiting itself (a
sibling that waits for the block, not awaited by it) is unchanged.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

import pytest
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")

#: Far longer than detection takes; a hang fails the test instead of the run.
LIMIT = 20


async def _wait_then_create(started: asyncio.Event) -> None:
    await started.wait()
    await Author.vinyl.create(name="sibling")


@asynccontextmanager
async def _nested_block_after_a_sibling(
    sibling: Callable[[asyncio.Event], Awaitable[None]] = _wait_then_create,
) -> AsyncIterator[asyncio.Task]:
    """Start ``sibling`` on the enclosing level (it waits until told), then
    open a nested block and let the sibling go: yields the sibling's task."""
    started = asyncio.Event()
    task = asyncio.create_task(sibling(started))
    async with vinyl.atomic():
        started.set()
        yield task


async def test_awaiting_a_sibling_that_waits_for_the_enclosing_level_raises_instead_of_hanging(backend):
    async def body() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            async with _nested_block_after_a_sibling() as sibling:
                await Author.vinyl.create(name="inner")
                await sibling

    with pytest.raises(TransactionManagementError, match="awaits"):
        await asyncio.wait_for(body(), LIMIT)
    assert await committed_names() == []
    assert await returned() == 0


async def test_a_sibling_awaited_through_gather_is_found_too(backend):
    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling() as sibling:
                await asyncio.gather(sibling)

    with pytest.raises(TransactionManagementError, match="awaits"):
        await asyncio.wait_for(body(), LIMIT)
    assert await committed_names() == []
    assert await returned() == 0


async def test_the_error_is_a_failed_write_of_the_enclosing_level_which_then_only_rolls_back(backend):
    # The sibling's create failed in the enclosing block: as Django marks a
    # block that a failed save ran in, that block can only roll back, even
    # where the error is caught. The nested block's work goes with it.
    async def body() -> tuple[str, str]:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            async with _nested_block_after_a_sibling() as sibling:
                await Author.vinyl.create(name="inner")
                try:
                    await sibling
                except TransactionManagementError as exc:
                    caught = type(exc).__name__
            try:
                await Author.vinyl.create(name="after")
                after = "ran"
            except TransactionManagementError as exc:
                after = type(exc).__name__
        return caught, after

    caught, after = await asyncio.wait_for(body(), LIMIT)
    assert (caught, after) == ("TransactionManagementError", "TransactionManagementError")
    assert await committed_names() == []
    assert await returned() == 0


async def test_a_sibling_not_awaited_by_the_block_waits_for_it_and_runs_after(backend):
    order: list[str] = []

    async def sibling(started: asyncio.Event) -> None:
        await _wait_then_create(started)
        order.append("sibling")

    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling(sibling) as task:
                await asyncio.sleep(0.5)  # several detection rounds while the sibling waits
                await Author.vinyl.create(name="inner")
                order.append("inner")
            await task

    await asyncio.wait_for(body(), LIMIT)
    assert order == ["inner", "sibling"]
    assert await committed_names() == ["inner", "sibling"]
    assert await returned() == 0
