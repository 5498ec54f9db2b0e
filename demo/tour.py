"""The demo itself: each step prints what it did."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management import call_command
from django.db.models import Sum
from sqlalchemy import column, func, insert, select, table
from sqlalchemy.pool import QueuePool

import vinyl
from demo.library.models import Author, Book

# A Core view of the same table, for the SQLAlchemy part of the tour.
book_table = table("library_book", column("id"), column("title"), column("author_id"), column("pages"))


def step(title: str) -> None:
    print(f"\n== {title}")


def migrate() -> None:
    """Create the schema with Django's migrations, as any Django project does."""
    db = settings.DATABASES["default"]
    where = db["NAME"] if db["ENGINE"].endswith("sqlite3") else f"{db['HOST']}:{db['PORT']}/{db['NAME']}"
    step(f"schema: Django migrations on {db['ENGINE'].rsplit('.', 1)[-1]} ({where})")
    call_command("migrate", "library", verbosity=0)
    print("   migrated library.0001_initial (no Alembic, no second model definition)")


async def tour() -> None:
    try:
        await _tour()
    finally:
        await vinyl.dispose()


async def _tour() -> None:
    await Author.vinyl.all().delete()  # start from empty tables on every run

    step("models declared once: Author.objects is Django's, Author.vinyl is async")
    ann = await Author.vinyl.create(name="Ann Leckie")
    ted = await Author.vinyl.create(name="Ted Chiang")
    await Book.vinyl.bulk_create(
        [
            Book(title="Ancillary Justice", author=ann, pages=386),
            Book(title="Ancillary Sword", author=ann, pages=356),
            Book(title="Exhalation", author=ted, pages=368),
            Book(title="Stories of Your Life", author=ted, pages=281),
        ]
    )
    print(f"   created {await Author.vinyl.count()} authors, {await Book.vinyl.count()} books")

    step("async queries, three at once on pooled connections (asyncio.gather)")
    long_books, total, first = await asyncio.gather(
        Book.vinyl.filter(pages__gt=360).values_list("title", flat=True),
        Book.vinyl.aggregate(pages=func_sum("pages")),
        Book.vinyl.order_by("title").first(),
    )
    print(f"   long books: {list(long_books)}")
    print(f"   pages in all: {total['pages']}; first title: {first.title if first else None}")
    async for book in Book.vinyl.filter(author=ann).iterator(chunk_size=1):
        print(f"   streamed with async for: {book.title}")

    step("related rows, loaded up front and read with item access")
    async with vinyl.capture_queries() as queries:
        books = await Book.vinyl.select_related("author").order_by("title")
    for book in books[:2]:
        print(f"   select_related: {book.title!r} by {book['author'].name}")
    print(f"   ({len(queries)} query for {len(books)} books and their authors)")
    async with vinyl.capture_queries() as queries:
        authors = await Author.vinyl.prefetch_related("book_set").order_by("name")
    for writer in authors:
        titles = ", ".join(b.title for b in writer["book_set"])
        print(f"   prefetch_related: {writer.name}: {titles}")
    print(f"   ({len(queries)} queries: the authors, then all their books in one go)")
    author = await books[0].author  # a forward FK is awaited: a query, never lazy
    print(f"   await book.author -> {author.name}")

    step("a transaction: vinyl.atomic rolls back on error")
    try:
        async with vinyl.atomic():
            await Book.vinyl.create(title="Provenance", author=ann, pages=448)
            await Author.vinyl.filter(pk=ted.pk).update(name="T. Chiang")
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    print(f"   after rollback: {await Book.vinyl.count()} books, "
          f"{(await Author.vinyl.get(pk=ted.pk)).name!r} unchanged")
    async with vinyl.atomic():
        await Book.vinyl.create(title="Provenance", author=ann, pages=448)
    print(f"   after commit: {await Book.vinyl.count()} books")

    step("SQLAlchemy Core on vinyl's own engine and pool")
    engine = vinyl.get_engine()
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(book_table))).scalar_one()
    pool = engine.sync_engine.pool
    in_use = pool.checkedout() if isinstance(pool, QueuePool) else "?"
    print(f"   Core count(library_book) = {count} (pool: {in_use} connections checked out)")
    async with engine.begin() as conn:
        # One transaction for both: Core's insert and vinyl's query see each other.
        await conn.execute(insert(book_table).values(title="The Raven Tower", author_id=ann.pk, pages=416))
        async with vinyl.use_connection(conn):
            mine = await Book.vinyl.filter(author=ann).count()
    print(f"   Core insert + vinyl count in one transaction: Ann has {mine} books")


def func_sum(field: str) -> Sum:
    return Sum(field)
