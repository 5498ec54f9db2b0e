"""Cancelling tasks of a shared ``atomic`` block at each loop turn.

A cancellation may hit the outer task (the block's owner) or a task of the
block while it is inside its own nested block, before, during or after any
statement, SAVEPOINT, RELEASE or COMMIT. Whatever turn it hits: the outer
block commits whole or not at all, a cancelled nested block loses its own
writes and only them, no connection stays checked out, and no transaction
stays open on the server.
"""

from __future__ import annotations

import asyncio

import pytest

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import after_turns, committed_names, no_open_transactions, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")

# Loop turns before the cancellation, then times past the first round trips.
TURNS = [*range(0, 14), 0.0005, 0.002, 0.005, 0.02]


async def _nested(tag: str, fail: bool = False) -> None:
    try:
        async with vinyl.atomic():
            await Author.vinyl.create(name=f"{tag}1")
            await asyncio.sleep(0)
            await Author.vinyl.create(name=f"{tag}2")
            if fail:
                raise LookupError
    except LookupError:
        pass


async def _block() -> None:
    async with vinyl.atomic():
        await Author.vinyl.create(name="o1")
        async with asyncio.TaskGroup() as group:
            group.create_task(_nested("a"))
            group.create_task(_nested("b", fail=True))
        await Author.vinyl.create(name="o2")


async def _clean(backend: str) -> None:
    assert await returned() == 0
    if backend != "sqlite":  # (no server sessions to look at)
        assert await no_open_transactions(backend)


@pytest.mark.parametrize("k", TURNS)
async def test_cancelled_outer_task_commits_its_shared_block_whole_or_not_at_all(backend, k):
    await Author.vinyl.count()  # the engine is up: the turns count from the block
    task = asyncio.create_task(_block())
    await after_turns(k)
    task.cancel()
    try:
        await task
        finished = True
    except asyncio.CancelledError:
        finished = False
    names = await committed_names()
    assert names in (["a1", "a2", "o1", "o2"], []), names
    if finished:
        assert names
    await _clean(backend)


@pytest.mark.parametrize("k", TURNS)
async def test_cancelled_task_in_its_nested_block_loses_only_its_own_writes(backend, k):
    await Author.vinyl.count()
    async with vinyl.atomic():
        await Author.vinyl.create(name="o1")
        child = asyncio.create_task(_nested("c"))
        sibling = asyncio.create_task(_nested("s"))
        await after_turns(k)
        child.cancel()
        outcomes = await asyncio.gather(child, sibling, return_exceptions=True)
        assert outcomes[1] is None
        await Author.vinyl.create(name="o2")
    names = await committed_names()
    others = [n for n in names if n not in ("c1", "c2")]
    assert others == ["o1", "o2", "s1", "s2"], names
    child_rows = [n for n in names if n in ("c1", "c2")]
    assert child_rows in ([], ["c1", "c2"]), names
    if outcomes[0] is None:  # it ended before the cancellation
        assert child_rows == ["c1", "c2"]
    await _clean(backend)
