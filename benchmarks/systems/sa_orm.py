"""SQLAlchemy ORM on the async engine, as its documentation shows it.

One ``AsyncSession`` per op (``expire_on_commit=False``), the default
transactional engine (BEGIN ... COMMIT/ROLLBACK around each op), ``selectinload``
for the reverse FK and ``joinedload`` for the join.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import joinedload, selectinload

from benchmarks.systems.base import AsyncSystem
from benchmarks.systems.sa_models import Author, Book, Entry, Item, url
from benchmarks.workloads import BULK, CHUNK, IN_WINDOW


class System(AsyncSystem):
    key = "sa_orm"

    async def setup(self) -> None:
        self.engine = create_async_engine(url(self.db), pool_size=self.pool_size, max_overflow=0)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def teardown(self) -> None:
        await self.engine.dispose()

    async def get(self, i: int) -> Any:
        async with self.session() as s:
            return await s.get(Author, self.keys.author(i))

    async def filter100(self, i: int) -> Any:
        async with self.session() as s:
            stmt = select(Book).where(Book.id >= self.keys.book(i), Book.pages >= self.keys.pages(i)).order_by(Book.id).limit(100)
            return (await s.scalars(stmt)).all()

    async def join100(self, i: int) -> Any:
        async with self.session() as s:
            stmt = (
                select(Book).options(joinedload(Book.author, innerjoin=True))
                .where(Book.id >= self.keys.book(i)).order_by(Book.id).limit(100)
            )
            return (await s.scalars(stmt)).all()

    async def insert1(self, i: int) -> Any:
        async with self.session() as s:
            obj = Entry(name=f"entry {i}", value=i)
            s.add(obj)
            await s.commit()
            return obj

    async def bulk1000(self, i: int) -> Any:
        async with self.session() as s:
            objs = [Entry(name=f"entry {i}.{j}", value=j) for j in range(BULK)]
            s.add_all(objs)
            await s.commit()
            return objs

    async def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        async with self.session() as s:
            result = await s.execute(update(Book).where(Book.id >= b, Book.id < b + 10).values(pages=Book.pages + 1))
            await s.commit()
            return result.rowcount

    async def count(self, i: int) -> Any:
        async with self.session() as s:
            return await s.scalar(select(func.count()).select_from(Book).where(Book.author_id == self.keys.author(i)))

    async def update_set(self, i: int) -> Any:
        async with self.session() as s:
            result = await s.execute(update(Book).where(Book.author_id == self.keys.author(i)).values(title=f"title {i}"))
            await s.commit()
            return result.rowcount

    async def prefetch(self, i: int) -> Any:
        async with self.session() as s:
            stmt = (
                select(Author).options(selectinload(Author.books))
                .where(Author.id >= self.keys.author(i)).order_by(Author.id).limit(100)
            )
            return (await s.scalars(stmt)).all()

    async def txn10(self, i: int) -> None:
        a, b = self.keys.author(i), self.keys.book(i)
        async with self.session() as s, s.begin():
            for j in range(5):
                await s.get(Author, a + j)
                await s.execute(update(Book).where(Book.id == b + j).values(pages=Book.pages + 1))

    async def atomic_empty(self, i: int) -> None:
        async with self.session() as s, s.begin():
            pass

    async def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        async with self.session() as s:
            stmt = select(Book).where(Book.author_id >= a, Book.author_id < a + IN_WINDOW, Book.pages.in_(self.keys.page_list(i)))
            return (await s.scalars(stmt)).all()

    async def stream(self) -> int:
        n = 0
        async with self.session() as s:
            result = await s.stream_scalars(select(Item).execution_options(yield_per=CHUNK))
            # partitions(): one greenlet hop per chunk, not per row.
            async for objs in result.partitions(CHUNK):
                for _obj in objs:
                    n += 1
        return n
