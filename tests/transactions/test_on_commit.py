"""vinyl.on_commit: after the outermost commit, dropped on rollback."""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.db.transaction import TransactionManagementError
from sqlalchemy import text

import vinyl
from tests.testapp.models import Author

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_sync_and_async_callbacks_run_in_order_after_commit():
    calls: list[str] = []

    async def notify() -> None:
        calls.append("async:" + ",".join(await Author.vinyl.values_list("name", flat=True)))

    async with vinyl.atomic():
        await Author.vinyl.create(name="Ann")
        vinyl.on_commit(lambda: calls.append("sync"))
        vinyl.on_commit(notify)
        async with vinyl.atomic():
            vinyl.on_commit(lambda: calls.append("nested"))
        assert calls == []
    # The async callback ran after the commit, on a fresh connection.
    assert calls == ["sync", "async:Ann", "nested"]


async def test_callbacks_are_dropped_on_rollback():
    calls: list[str] = []
    with pytest.raises(ValueError):
        async with vinyl.atomic():
            vinyl.on_commit(lambda: calls.append("x"))
            raise ValueError
    assert calls == []


async def test_callbacks_of_a_rolled_back_savepoint_are_dropped():
    calls: list[str] = []
    async with vinyl.atomic():
        vinyl.on_commit(lambda: calls.append("outer"))
        with pytest.raises(ValueError):
            async with vinyl.atomic():
                vinyl.on_commit(lambda: calls.append("inner"))
                async with vinyl.atomic():
                    vinyl.on_commit(lambda: calls.append("innermost"))
                raise ValueError
        async with vinyl.atomic():
            vinyl.on_commit(lambda: calls.append("later"))
    assert calls == ["outer", "later"]


async def test_callback_registered_by_a_sibling_task_during_a_savepoint_survives_its_rollback():
    calls: list[str] = []
    entered = asyncio.Event()
    registered = asyncio.Event()

    async def rolls_back() -> None:
        with pytest.raises(ValueError):
            async with vinyl.atomic():
                entered.set()
                await registered.wait()
                raise ValueError

    async def registers() -> None:
        await entered.wait()
        vinyl.on_commit(lambda: calls.append("sibling"))
        registered.set()

    async with vinyl.atomic():
        await asyncio.gather(rolls_back(), registers())
    assert calls == ["sibling"]


async def test_outside_a_transaction_sync_runs_now_and_async_is_scheduled():
    calls: list[str] = []
    done = asyncio.Event()

    async def later() -> None:
        calls.append("async")
        done.set()

    vinyl.on_commit(lambda: calls.append("sync"))
    assert calls == ["sync"]
    vinyl.on_commit(later)
    await done.wait()
    assert calls == ["sync", "async"]


async def test_robust_callback_failure_is_logged_and_the_rest_run(caplog):
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="vinyl.transaction"):
        async with vinyl.atomic():
            vinyl.on_commit(broken, robust=True)
            vinyl.on_commit(lambda: calls.append("after"))
    assert calls == ["after"]
    assert "boom" in caplog.text


async def test_non_robust_callback_failure_propagates_after_commit():
    with pytest.raises(RuntimeError, match="boom"):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Ann")
            vinyl.on_commit(lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert await Author.vinyl.count() == 1


async def test_on_commit_inside_use_connection_is_refused():
    async with vinyl.get_engine().connect() as conn:
        async with vinyl.use_connection(conn):
            with pytest.raises(TransactionManagementError, match="use_connection"):
                vinyl.on_commit(lambda: None)
        await conn.rollback()


async def test_on_commit_requires_a_callable():
    with pytest.raises(TypeError):
        vinyl.on_commit(text("x"))  # type: ignore[arg-type]
