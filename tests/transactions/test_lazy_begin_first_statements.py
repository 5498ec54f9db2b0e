"""Each kind of statement as a block's first (the one its lazy BEGIN goes before): what it wrote is
invisible to other connections until the block commits, and gone when the block raises.

Django's atomic writes nothing another connection sees before COMMIT, whatever
statement comes first; vinyl's transactions begin right before their first
statement, which runs on one of several paths (the driver path, the bridge, a
savepoint of get_or_create, a related manager's through rows): each path here.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

import vinyl
from tests.diffapp.models import Item, Owner, Tag

pytestmark = pytest.mark.usefixtures("vinyl_db")


class Boom(Exception):
    pass


async def _seed() -> tuple[int, int]:
    owner = await Owner.vinyl.create(name="o")
    tag = await Tag.vinyl.create(name="t")
    await Item.vinyl.create(name="seed", integer=1, owner_id=owner.pk)
    return owner.pk, tag.pk


async def _state(backend: str) -> tuple:
    alias = settings.SYNC_ALIAS[backend]

    def read() -> tuple:
        items = sorted((i.name, i.integer, i.owner_id) for i in Item.objects.using(alias).all())
        tags = sorted((t.name, t.weight) for t in Tag.objects.using(alias).all())
        links = sorted(Item.tags.through.objects.using(alias).values_list("item__name", "tag__name"))
        owners = sorted(Owner.objects.using(alias).values_list("name", "age"))
        return items, tags, links, owners

    return await sync_to_async(read)()


def _firsts(owner: int, tag: int, backend: str = "") -> dict[str, Callable[[], Awaitable[Any]]]:
    async def save() -> None:
        obj = await Item.vinyl.get(name="seed")
        obj.integer = 2
        await obj.save(update_fields=["integer"])

    async def m2m_add() -> None:
        obj = await Item.vinyl.get(name="seed")
        await obj.tags.add(tag)

    async def read_for_update() -> None:
        # (SQLite has no row locks: vinyl refuses select_for_update there, see vinyl.sqlite_backend.)
        await (Item.vinyl.all() if backend == "sqlite" else Item.vinyl.select_for_update()).filter(name="seed")
        await Item.vinyl.filter(name="seed").update(integer=3)

    async def read_then_write() -> None:
        await Item.vinyl.values_list("name", flat=True)
        await Item.vinyl.create(name="after-read")

    async def stream_then_write() -> None:
        [x async for x in Item.vinyl.iterator(chunk_size=1)]
        await Item.vinyl.filter(name="seed").update(integer=4)

    return {
        "create": lambda: Item.vinyl.create(name="new", owner_id=owner),
        "update": lambda: Item.vinyl.filter(name="seed").update(integer=5),
        "update_expression": lambda: Owner.vinyl.filter(pk=owner).update(age=7),
        "bulk_create": lambda: Tag.vinyl.bulk_create([Tag(name="b1"), Tag(name="b2")]),
        "delete": lambda: Item.vinyl.filter(name="seed").delete(),
        "save": save,
        "get_or_create": lambda: Tag.vinyl.get_or_create(name="g", defaults={"weight": 2}),
        "update_or_create": lambda: Tag.vinyl.update_or_create(name="t", defaults={"weight": 9}),
        "m2m_add": m2m_add,
        "select_for_update": read_for_update,
        "read_then_write": read_then_write,
        "stream_then_write": stream_then_write,
        "owner_delete_cascade": lambda: Owner.vinyl.filter(pk=owner).delete(),
    }


FIRSTS = list(_firsts(0, 0))


@pytest.mark.parametrize("first", FIRSTS)
async def test_a_blocks_first_statement_is_inside_its_transaction(backend: str, first: str) -> None:
    owner, tag = await _seed()
    before = await _state(backend)
    run = _firsts(owner, tag, backend)[first]
    seen_inside = None
    with pytest.raises(Boom):
        async with vinyl.atomic():
            await run()
            seen_inside = await _state(backend)
            raise Boom
    assert seen_inside == before, "another connection saw the block's writes before it committed"
    assert await _state(backend) == before, "the block's writes outlived its rollback"
    # Committed, the same writes are there for everyone.
    async with vinyl.atomic():
        await run()
    assert await _state(backend) != before


@pytest.mark.parametrize("first", FIRSTS)
async def test_a_nested_blocks_first_statement_rolls_back_with_its_savepoint(backend: str, first: str) -> None:
    owner, tag = await _seed()
    before = await _state(backend)
    run = _firsts(owner, tag, backend)[first]
    async with vinyl.atomic():
        with pytest.raises(Boom):
            async with vinyl.atomic():
                await run()
                raise Boom
        await Tag.vinyl.create(name="outer")
    after = await _state(backend)
    assert after[1] == sorted(before[1] + [("outer", 0)])
    assert (after[0], after[2], after[3]) == (before[0], before[2], before[3])
