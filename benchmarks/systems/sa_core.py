"""SQLAlchemy Core on the async engine, in AUTOCOMMIT mode.

Each op checks a connection out of the pool (``async with engine.connect()``)
and builds its statement (SQLAlchemy caches the compiled SQL by shape).
AUTOCOMMIT avoids SQLAlchemy's BEGIN/ROLLBACK around each read; the
transaction row uses a second, transactional engine.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks.systems.base import AsyncSystem
from benchmarks.systems.sa_models import Author, Book, Entry, Item, url
from benchmarks.workloads import BULK, CHUNK, IN_WINDOW

author = Author.__table__
book = Book.__table__
entry = Entry.__table__
item = Item.__table__


class System(AsyncSystem):
    key = "sa_core"

    async def setup(self) -> None:
        self.engine = create_async_engine(url(self.db), isolation_level="AUTOCOMMIT", pool_size=self.pool_size, max_overflow=0)
        self.tx_engine = create_async_engine(url(self.db), pool_size=2, max_overflow=0)

    async def teardown(self) -> None:
        await self.engine.dispose()
        await self.tx_engine.dispose()

    async def _first(self, stmt: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).first()

    async def _all(self, stmt: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).all()

    async def _rowcount(self, stmt: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).rowcount

    async def get(self, i: int) -> Any:
        return await self._first(select(author).where(author.c.id == self.keys.author(i)))

    async def filter100(self, i: int) -> Any:
        return await self._all(
            select(book).where(book.c.id >= self.keys.book(i), book.c.pages >= self.keys.pages(i)).order_by(book.c.id).limit(100)
        )

    async def join100(self, i: int) -> Any:
        return await self._all(
            select(book, author).join(author, author.c.id == book.c.author_id)
            .where(book.c.id >= self.keys.book(i)).order_by(book.c.id).limit(100)
        )

    async def insert1(self, i: int) -> Any:
        return await self._first(insert(entry).values(name=f"entry {i}", value=i).returning(entry.c.id))

    async def bulk1000(self, i: int) -> Any:
        # insertmanyvalues: a few multi-row INSERTs.
        async with self.engine.connect() as conn:
            return await conn.execute(insert(entry), [{"name": f"entry {i}.{j}", "value": j} for j in range(BULK)])

    async def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        return await self._rowcount(update(book).where(book.c.id >= b, book.c.id < b + 10).values(pages=book.c.pages + 1))

    async def count(self, i: int) -> Any:
        return (await self._first(select(func.count()).select_from(book).where(book.c.author_id == self.keys.author(i))))[0]

    async def update_set(self, i: int) -> Any:
        return await self._rowcount(update(book).where(book.c.author_id == self.keys.author(i)).values(title=f"title {i}"))

    async def prefetch(self, i: int) -> Any:
        async with self.engine.connect() as conn:
            authors = (await conn.execute(
                select(author).where(author.c.id >= self.keys.author(i)).order_by(author.c.id).limit(100)
            )).all()
            books = (await conn.execute(select(book).where(book.c.author_id.in_([a.id for a in authors])))).all()
        by_author: dict[int, list] = defaultdict(list)
        for b in books:
            by_author[b.author_id].append(b)
        return [(a, by_author[a.id]) for a in authors]

    async def txn10(self, i: int) -> None:
        a, b = self.keys.author(i), self.keys.book(i)
        async with self.tx_engine.begin() as conn:
            for j in range(5):
                (await conn.execute(select(author).where(author.c.id == a + j))).first()
                await conn.execute(update(book).where(book.c.id == b + j).values(pages=book.c.pages + 1))

    async def atomic_empty(self, i: int) -> None:
        async with self.tx_engine.begin():
            pass

    async def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        return await self._all(
            select(book).where(book.c.author_id >= a, book.c.author_id < a + IN_WINDOW, book.c.pages.in_(self.keys.page_list(i)))
        )

    async def stream(self) -> int:
        n = 0
        async with self.tx_engine.connect() as conn:
            result = await conn.stream(select(item).execution_options(yield_per=CHUNK))
            # partitions(): one greenlet hop per chunk, not per row.
            async for rows in result.partitions(CHUNK):
                for _row in rows:
                    n += 1
        return n
