"""Tortoise ORM on asyncpg / asyncmy, pool of 10.

Tortoise has no server-side cursor: ``async for`` over a QuerySet fetches
every row first, which the memory row shows.
"""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise, fields
from tortoise.expressions import F
from tortoise.models import Model
from tortoise.transactions import in_transaction

from benchmarks.config import server
from benchmarks.systems.base import AsyncSystem
from benchmarks.workloads import BULK, IN_WINDOW


class Author(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=100)
    age = fields.IntField()
    email = fields.CharField(max_length=100)
    joined = fields.DatetimeField()
    rating = fields.FloatField()

    class Meta:
        table = "benchapp_author"


class Book(Model):
    id = fields.BigIntField(primary_key=True)
    title = fields.CharField(max_length=200)
    author: fields.ForeignKeyRelation[Author] = fields.ForeignKeyField("models.Author", related_name="books")
    pages = fields.IntField()

    class Meta:
        table = "benchapp_book"


class Entry(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=100)
    value = fields.IntField()

    class Meta:
        table = "benchapp_entry"


class Item(Model):
    id = fields.BigIntField(primary_key=True)
    n = fields.IntField()
    label = fields.CharField(max_length=20)

    class Meta:
        table = "benchapp_item"


def config(db: str, pool_size: int) -> dict[str, Any]:
    s = server(db)
    credentials: dict[str, Any] = {
        "host": s["HOST"], "port": int(s["PORT"]), "user": s["USER"],
        "password": s["PASSWORD"], "database": s["NAME"],
        "minsize": pool_size, "maxsize": pool_size,
    }
    if db == "mysql":
        credentials["charset"] = "utf8mb4"
    engine = "tortoise.backends.asyncpg" if db == "postgresql" else "tortoise.backends.mysql"
    return {
        "connections": {"default": {"engine": engine, "credentials": credentials}},
        "apps": {"models": {"models": [__name__], "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def init(db: str, pool_size: int) -> None:
    """Initialise Tortoise in the calling task's context."""
    await Tortoise.init(config=config(db, pool_size))


class System(AsyncSystem):
    key = "tortoise"
    note = "Tortoise has no server-side cursor: its `async for` loads every row first"

    async def setup(self) -> None:
        await init(self.db, self.pool_size)
        await Author.filter(id=1).count()

    async def teardown(self) -> None:
        await Tortoise.close_connections()

    async def get(self, i: int) -> Any:
        return await Author.get(id=self.keys.author(i))

    async def filter100(self, i: int) -> Any:
        return await Book.filter(id__gte=self.keys.book(i), pages__gte=self.keys.pages(i)).order_by("id").limit(100)

    async def join100(self, i: int) -> Any:
        return await Book.filter(id__gte=self.keys.book(i)).select_related("author").order_by("id").limit(100)

    async def insert1(self, i: int) -> Any:
        return await Entry.create(name=f"entry {i}", value=i)

    async def bulk1000(self, i: int) -> Any:
        return await Entry.bulk_create([Entry(name=f"entry {i}.{j}", value=j) for j in range(BULK)])

    async def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        return await Book.filter(id__gte=b, id__lt=b + 10).update(pages=F("pages") + 1)

    async def count(self, i: int) -> Any:
        return await Book.filter(author_id=self.keys.author(i)).count()

    async def update_set(self, i: int) -> Any:
        return await Book.filter(author_id=self.keys.author(i)).update(title=f"title {i}")

    async def prefetch(self, i: int) -> Any:
        return await Author.filter(id__gte=self.keys.author(i)).order_by("id").limit(100).prefetch_related("books")

    async def txn10(self, i: int) -> None:
        a, b = self.keys.author(i), self.keys.book(i)
        async with in_transaction():
            for j in range(5):
                await Author.get(id=a + j)
                await Book.filter(id=b + j).update(pages=F("pages") + 1)

    async def atomic_empty(self, i: int) -> None:
        async with in_transaction():
            pass

    async def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        return await Book.filter(author_id__gte=a, author_id__lt=a + IN_WINDOW, pages__in=self.keys.page_list(i))

    async def stream(self) -> int:
        n = 0
        async for _obj in Item.all():
            n += 1
        return n
