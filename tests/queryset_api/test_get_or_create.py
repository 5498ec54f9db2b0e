"""get_or_create / update_or_create, and their races between concurrent tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from django.db import IntegrityError, connections
from django.db.models.signals import pre_save

import vinyl
from tests.qsapp.models import Gadget

pytestmark = pytest.mark.usefixtures("vinyl_db")

RACERS = 20


@pytest.fixture
async def wide_pool(vinyl_db: str) -> AsyncIterator[str]:
    """Give vinyl_default a pool with a connection for every racing task."""
    await vinyl.dispose()
    settings = connections.settings["vinyl_default"]
    settings["OPTIONS"] = {**settings.get("OPTIONS", {}), "pool": {"pool_size": RACERS + 2, "max_overflow": 0}}
    try:
        del connections["vinyl_default"]
    except AttributeError:  # no wrapper built in this context yet
        pass
    yield vinyl_db
    await vinyl.dispose()


class InsertBarrier:
    """Hold every insert of a Gadget until ``parties`` tasks are about to insert.

    Every task has then looked the row up and missed it, so all of them
    insert at once: exactly the race get_or_create must survive.
    """

    def __init__(self, parties: int) -> None:
        self.barrier = asyncio.Barrier(parties)
        self.inserts = 0

    async def receiver(self, sender, instance, **kwargs) -> None:
        if instance._state.adding:
            self.inserts += 1
            async with asyncio.timeout(20):
                await self.barrier.wait()

    def __enter__(self) -> InsertBarrier:
        pre_save.connect(self.receiver, sender=Gadget, weak=False)
        return self

    def __exit__(self, *exc_info) -> None:
        pre_save.disconnect(self.receiver, sender=Gadget)


async def test_get_or_create_gets_then_creates():
    obj, created = await Gadget.vinyl.get_or_create(code="a", defaults={"name": "first"})
    assert created is True and obj.pk is not None and obj.name == "first"
    again, created = await Gadget.vinyl.get_or_create(code="a", defaults={"name": "second"})
    assert created is False and again.pk == obj.pk and again.name == "first"
    assert type(again) is Gadget.vinyl.model


async def test_get_or_create_resolves_callable_defaults_and_filters_by_lookups():
    obj, created = await Gadget.vinyl.get_or_create(code__iexact="X", defaults={"code": "x", "name": lambda: "called"})
    assert created and (obj.code, obj.name) == ("x", "called")
    assert (await Gadget.vinyl.get_or_create(code__iexact="X"))[1] is False


async def test_get_or_create_raises_multiple_objects_returned():
    await Gadget.vinyl.create(code="a", name="same")
    await Gadget.vinyl.create(code="b", name="same")
    with pytest.raises(Gadget.MultipleObjectsReturned):
        await Gadget.vinyl.get_or_create(name="same")


async def test_get_or_create_reraises_an_integrity_error_it_cannot_resolve():
    await Gadget.vinyl.create(code="taken", name="x")
    # The lookup misses, the insert collides, the second lookup misses too.
    with pytest.raises(IntegrityError):
        await Gadget.vinyl.get_or_create(name="other", defaults={"code": "taken"})
    assert await Gadget.vinyl.count() == 1


async def test_update_or_create_creates_then_updates_with_create_defaults():
    obj, created = await Gadget.vinyl.update_or_create(
        code="a", defaults={"name": "updated"}, create_defaults={"name": "created", "count": 1}
    )
    assert created and (obj.name, obj.count) == ("created", 1)
    obj, created = await Gadget.vinyl.update_or_create(
        code="a", defaults={"name": "updated", "count": 5}, create_defaults={"name": "created"}
    )
    assert not created and (obj.name, obj.count) == ("updated", 5)
    fresh = await Gadget.vinyl.get(code="a")
    assert (fresh.name, fresh.count) == ("updated", 5)


async def test_update_or_create_without_create_defaults_uses_defaults():
    obj, created = await Gadget.vinyl.update_or_create(code="a", defaults={"name": "d"})
    assert created and obj.name == "d"


@pytest.mark.backends(
    "postgresql", "mysql",
    reason="SQLite has one writer at a time: the 20 tasks cannot all reach their insert together",
)
async def test_get_or_create_race_of_twenty_tasks_has_one_winner(wide_pool):
    async def racer(i: int):
        return await Gadget.vinyl.get_or_create(code="same", defaults={"created_by": f"task{i}"})

    with InsertBarrier(RACERS) as barrier:
        results = await asyncio.gather(*(racer(i) for i in range(RACERS)))
    assert barrier.inserts == RACERS  # every task really tried to insert
    winners = [obj for obj, created in results if created]
    assert len(winners) == 1
    assert {obj.pk for obj, _ in results} == {winners[0].pk}
    assert {obj.created_by for obj, _ in results} == {winners[0].created_by}
    assert await Gadget.vinyl.count() == 1


@pytest.mark.backends(
    "postgresql", "mysql",
    reason="SQLite has one writer at a time: the 20 tasks cannot all reach their insert together",
)
async def test_update_or_create_race_of_twenty_tasks_has_one_row(wide_pool):
    async def racer(i: int):
        return await Gadget.vinyl.update_or_create(
            code="same", defaults={"count": i}, create_defaults={"created_by": f"task{i}", "count": i}
        )

    with InsertBarrier(RACERS) as barrier:
        results = await asyncio.gather(*(racer(i) for i in range(RACERS)))
    assert barrier.inserts == RACERS
    assert sum(created for _, created in results) == 1
    assert len({obj.pk for obj, _ in results}) == 1
    row = await Gadget.vinyl.get(code="same")
    assert row.created_by in {f"task{i}" for i in range(RACERS)}
    assert await Gadget.vinyl.count() == 1


async def test_get_or_create_joins_an_atomic_block():
    with pytest.raises(RuntimeError):
        async with vinyl.atomic():
            obj, created = await Gadget.vinyl.get_or_create(code="a")
            assert created and await Gadget.vinyl.filter(code="a").exists()
            raise RuntimeError("roll back")
    assert await Gadget.vinyl.count() == 0
