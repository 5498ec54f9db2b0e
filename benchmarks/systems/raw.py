"""The raw driver: asyncpg on PostgreSQL, asyncmy on MariaDB/MySQL.

Sequential workloads run on one held connection (the fastest way a driver
offers); the concurrency workload uses the driver's pool, with asyncpg's
per-release reset query turned off (autocommit connections hold no state).
Rows stay driver rows: no model instances.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from benchmarks.config import server
from benchmarks.systems.base import AsyncSystem
from benchmarks.workloads import BULK, CHUNK, IN_WINDOW

AUTHOR_COLS = "id, name, age, email, joined, rating"
BOOK_COLS = "id, title, author_id, pages"
JOIN = (
    "SELECT b.id, b.title, b.author_id, b.pages, a.id, a.name, a.age, a.email, a.joined, a.rating "
    "FROM benchapp_book b INNER JOIN benchapp_author a ON a.id = b.author_id "
    "WHERE b.id >= {0} ORDER BY b.id LIMIT 100"
)


async def _no_reset(conn: Any) -> None:
    """Skip asyncpg's reset query on release."""


def _group(rows: Any, key: int) -> dict[Any, list]:
    """Rows by the value of column ``key`` (the ORMs' prefetch caches)."""
    by: dict[Any, list] = defaultdict(list)
    for row in rows:
        by[row[key]].append(row)
    return by


TAGS_OF = (
    "SELECT bt.book_id, t.id, t.name FROM benchapp_tag t "
    "INNER JOIN benchapp_book_tags bt ON t.id = bt.tag_id WHERE bt.book_id {0}"
)


def System(db: str, *args: Any, **kwargs: Any) -> AsyncSystem:
    """Return the raw-driver system of ``db``."""
    return (_Asyncpg if db == "postgresql" else _Asyncmy)(db, *args, **kwargs)


class _Prefetches:
    """The prefetch workloads by hand, on a driver's ``_where_in`` (its own IN)."""

    _books: Any
    _authors: Any
    _tags: Any
    _where_in: Any

    async def prefetch_fk(self, i: int) -> Any:
        books = await self._books(i)
        authors = await self._where_in(f"SELECT {AUTHOR_COLS} FROM benchapp_author", "id", {b[2] for b in books})
        by_id = {a[0]: a for a in authors}
        return [(b, by_id[b[2]]) for b in books]

    async def prefetch_m2m(self, i: int) -> Any:
        books = await self._books(i)
        tags = await self._tags(books)
        return [(b, tags[b[0]]) for b in books]

    async def prefetch_nested(self, i: int) -> Any:
        authors = await self._authors(i)
        books = await self._where_in(f"SELECT {BOOK_COLS} FROM benchapp_book", "author_id", [a[0] for a in authors])
        tags = await self._tags(books)
        by_author: dict[Any, list] = defaultdict(list)
        for b in books:
            by_author[b[2]].append((b, tags[b[0]]))
        return [(a, by_author[a[0]]) for a in authors]


class _Asyncpg(_Prefetches, AsyncSystem):
    key = "raw"
    note = "raw driver = asyncpg (held connection; pool without reset query for the concurrency row)"

    async def setup(self) -> None:
        import asyncpg

        s = server("postgresql")
        self.params = dict(host=s["HOST"], port=int(s["PORT"]), user=s["USER"], password=s["PASSWORD"] or None, database=s["NAME"])
        self.conn = await asyncpg.connect(**self.params)
        self.pool = await asyncpg.create_pool(min_size=self.pool_size, max_size=self.pool_size, reset=_no_reset, **self.params)

    async def teardown(self) -> None:
        await self.conn.close()
        await self.pool.close()

    async def get(self, i: int) -> Any:
        return await self.conn.fetchrow(f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id = $1", self.keys.author(i))

    async def filter100(self, i: int) -> Any:
        return await self.conn.fetch(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE id >= $1 AND pages >= $2 ORDER BY id LIMIT 100",
            self.keys.book(i), self.keys.pages(i),
        )

    async def join100(self, i: int) -> Any:
        return await self.conn.fetch(JOIN.format("$1"), self.keys.book(i))

    async def insert1(self, i: int) -> Any:
        return await self.conn.fetchval(
            "INSERT INTO benchapp_entry (name, value) VALUES ($1, $2) RETURNING id", f"entry {i}", i
        )

    async def bulk1000(self, i: int) -> Any:
        # One statement returning the new keys, as the ORMs do on PostgreSQL.
        names = [f"entry {i}.{j}" for j in range(BULK)]
        return await self.conn.fetch(
            "INSERT INTO benchapp_entry (name, value) SELECT * FROM unnest($1::varchar[], $2::int[]) RETURNING id",
            names, list(range(BULK)),
        )

    async def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        return await self.conn.execute("UPDATE benchapp_book SET pages = pages + 1 WHERE id >= $1 AND id < $2", b, b + 10)

    async def count(self, i: int) -> Any:
        return await self.conn.fetchval("SELECT COUNT(*) FROM benchapp_book WHERE author_id = $1", self.keys.author(i))

    async def update_set(self, i: int) -> Any:
        return await self.conn.execute("UPDATE benchapp_book SET title = $1 WHERE author_id = $2", f"title {i}", self.keys.author(i))

    async def prefetch(self, i: int) -> Any:
        authors = await self.conn.fetch(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id >= $1 ORDER BY id LIMIT 100", self.keys.author(i)
        )
        books = await self.conn.fetch(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE author_id = ANY($1::bigint[])", [a[0] for a in authors]
        )
        by_author: dict[int, list] = defaultdict(list)
        for book in books:
            by_author[book[2]].append(book)
        return [(a, by_author[a[0]]) for a in authors]

    async def txn10(self, i: int) -> None:
        a, b = self.keys.author(i), self.keys.book(i)
        async with self.conn.transaction():
            for j in range(5):
                await self.conn.fetchrow(f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id = $1", a + j)
                await self.conn.execute("UPDATE benchapp_book SET pages = pages + 1 WHERE id = $1", b + j)

    async def atomic_empty(self, i: int) -> None:
        # BEGIN and COMMIT, two round trips.
        async with self.conn.transaction():
            pass

    async def concurrent_get(self, i: int) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id = $1", self.keys.author(i))

    # -- reads of issue 17 (a datetime column, every prefetch kind) --

    async def _authors(self, i: int) -> Any:
        return await self.conn.fetch(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id >= $1 ORDER BY id LIMIT 100", self.keys.author(i)
        )

    async def _books(self, i: int) -> Any:
        return await self.conn.fetch(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE id >= $1 ORDER BY id LIMIT 100", self.keys.book(i)
        )

    async def _tags(self, books: Any) -> dict[Any, list]:
        ids = [b[0] for b in books]
        return _group(await self.conn.fetch(TAGS_OF.format("= ANY($1::bigint[])"), ids), 0)

    async def authors100(self, i: int) -> Any:
        return await self.conn.fetch(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id >= $1 AND rating >= $2 ORDER BY id LIMIT 100",
            self.keys.author(i), self.keys.rating(i),
        )

    async def since100(self, i: int) -> Any:
        return await self.conn.fetch(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE joined >= $1 ORDER BY joined LIMIT 100", self.keys.since(i)
        )

    async def _where_in(self, select: str, column: str, ids: Any) -> Any:
        return await self.conn.fetch(f"{select} WHERE {column} = ANY($1::bigint[])", list(ids))

    async def prefetch_obj(self, i: int) -> Any:
        authors = await self._authors(i)
        books = await self.conn.fetch(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE author_id = ANY($1::bigint[]) AND pages >= $2 "
            "ORDER BY pages DESC",
            [a[0] for a in authors], self.keys.pages(i),
        )
        by_author = _group(books, 2)
        return [(a, by_author[a[0]]) for a in authors]

    async def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        return await self.conn.fetch(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE author_id >= $1 AND author_id < $2 AND pages = ANY($3::int[])",
            a, a + IN_WINDOW, self.keys.page_list(i),
        )

    async def stream(self) -> int:
        n = 0
        async with self.conn.transaction():
            async for _row in self.conn.cursor("SELECT id, n, label FROM benchapp_item", prefetch=CHUNK):
                n += 1
        return n


class _Asyncmy(_Prefetches, AsyncSystem):
    key = "raw"
    note = "raw driver = asyncmy (held autocommit connection; its pool for the concurrency row)"

    async def setup(self) -> None:
        import asyncmy

        s = server("mysql")
        self.params = dict(host=s["HOST"], port=int(s["PORT"]), user=s["USER"], password=s["PASSWORD"], db=s["NAME"], autocommit=True, charset="utf8mb4")
        self.conn = await asyncmy.connect(**self.params)
        self.pool = await asyncmy.create_pool(minsize=self.pool_size, maxsize=self.pool_size, **self.params)

    async def teardown(self) -> None:
        self.conn.close()
        self.pool.close()
        await self.pool.wait_closed()

    async def _one(self, conn: Any, sql: str, args: tuple) -> Any:
        async with conn.cursor() as cur:
            await cur.execute(sql, args)
            return await cur.fetchone()

    async def _all(self, sql: str, args: tuple) -> Any:
        async with self.conn.cursor() as cur:
            await cur.execute(sql, args)
            return await cur.fetchall()

    async def _exec(self, sql: str, args: tuple) -> int:
        async with self.conn.cursor() as cur:
            return await cur.execute(sql, args)

    async def get(self, i: int) -> Any:
        return await self._one(self.conn, f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id = %s", (self.keys.author(i),))

    async def filter100(self, i: int) -> Any:
        return await self._all(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE id >= %s AND pages >= %s ORDER BY id LIMIT 100",
            (self.keys.book(i), self.keys.pages(i)),
        )

    async def join100(self, i: int) -> Any:
        return await self._all(JOIN.format("%s"), (self.keys.book(i),))

    async def insert1(self, i: int) -> Any:
        async with self.conn.cursor() as cur:
            await cur.execute("INSERT INTO benchapp_entry (name, value) VALUES (%s, %s)", (f"entry {i}", i))
            return cur.lastrowid

    async def bulk1000(self, i: int) -> Any:
        # asyncmy's executemany sends one multi-row INSERT.
        async with self.conn.cursor() as cur:
            return await cur.executemany(
                "INSERT INTO benchapp_entry (name, value) VALUES (%s, %s)",
                [(f"entry {i}.{j}", j) for j in range(BULK)],
            )

    async def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        return await self._exec("UPDATE benchapp_book SET pages = pages + 1 WHERE id >= %s AND id < %s", (b, b + 10))

    async def count(self, i: int) -> Any:
        return (await self._one(self.conn, "SELECT COUNT(*) FROM benchapp_book WHERE author_id = %s", (self.keys.author(i),)))[0]

    async def update_set(self, i: int) -> Any:
        return await self._exec("UPDATE benchapp_book SET title = %s WHERE author_id = %s", (f"title {i}", self.keys.author(i)))

    async def prefetch(self, i: int) -> Any:
        authors = await self._all(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id >= %s ORDER BY id LIMIT 100", (self.keys.author(i),)
        )
        ids = tuple(a[0] for a in authors)
        books = await self._all(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE author_id IN ({', '.join(['%s'] * len(ids))})", ids
        )
        by_author: dict[int, list] = defaultdict(list)
        for book in books:
            by_author[book[2]].append(book)
        return [(a, by_author[a[0]]) for a in authors]

    async def txn10(self, i: int) -> None:
        a, b = self.keys.author(i), self.keys.book(i)
        await self.conn.begin()
        try:
            for j in range(5):
                await self._one(self.conn, f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id = %s", (a + j,))
                await self._exec("UPDATE benchapp_book SET pages = pages + 1 WHERE id = %s", (b + j,))
        except BaseException:
            await self.conn.rollback()
            raise
        await self.conn.commit()

    async def atomic_empty(self, i: int) -> None:
        # BEGIN and COMMIT, two round trips.
        await self.conn.begin()
        await self.conn.commit()

    async def concurrent_get(self, i: int) -> Any:
        async with self.pool.acquire() as conn:
            return await self._one(conn, f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id = %s", (self.keys.author(i),))

    # -- reads of issue 17 (a datetime column, every prefetch kind) --

    async def _authors(self, i: int) -> Any:
        return await self._all(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id >= %s ORDER BY id LIMIT 100", (self.keys.author(i),)
        )

    async def _books(self, i: int) -> Any:
        return await self._all(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE id >= %s ORDER BY id LIMIT 100", (self.keys.book(i),)
        )

    @staticmethod
    def _in(ids: Any) -> str:
        return f"IN ({', '.join(['%s'] * len(ids))})"

    async def _tags(self, books: Any) -> dict[Any, list]:
        ids = tuple(b[0] for b in books)
        return _group(await self._all(TAGS_OF.format(self._in(ids)), ids), 0)

    async def authors100(self, i: int) -> Any:
        return await self._all(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE id >= %s AND rating >= %s ORDER BY id LIMIT 100",
            (self.keys.author(i), self.keys.rating(i)),
        )

    async def since100(self, i: int) -> Any:
        # DATETIME columns hold UTC without a zone, as Django writes them.
        since = self.keys.since(i).replace(tzinfo=None)
        return await self._all(
            f"SELECT {AUTHOR_COLS} FROM benchapp_author WHERE joined >= %s ORDER BY joined LIMIT 100", (since,)
        )

    async def _where_in(self, select: str, column: str, ids: Any) -> Any:
        ids = tuple(ids)
        return await self._all(f"{select} WHERE {column} {self._in(ids)}", ids)

    async def prefetch_obj(self, i: int) -> Any:
        authors = await self._authors(i)
        ids = tuple(a[0] for a in authors)
        books = await self._all(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE author_id {self._in(ids)} AND pages >= %s ORDER BY pages DESC",
            (*ids, self.keys.pages(i)),
        )
        by_author = _group(books, 2)
        return [(a, by_author[a[0]]) for a in authors]

    async def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        pages = self.keys.page_list(i)
        return await self._all(
            f"SELECT {BOOK_COLS} FROM benchapp_book WHERE author_id >= %s AND author_id < %s AND pages {self._in(pages)}",
            (a, a + IN_WINDOW, *pages),
        )

    async def stream(self) -> int:
        from asyncmy.cursors import SSCursor

        # Each row visited with the driver's own `async for` (an unbuffered
        # cursor), as on PostgreSQL and in every other system.
        n = 0
        async with self.conn.cursor(SSCursor) as cur:
            await cur.execute("SELECT id, n, label FROM benchapp_item")
            async for _row in cur:
                n += 1
        return n

