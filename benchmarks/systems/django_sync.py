"""Django's sync ORM on Django's own backend (psycopg; mysqlclient or PyMySQL).

Each thread keeps its persistent connection (``CONN_MAX_AGE=None``); the
concurrency row runs the 50 jobs on 10 threads, so 10 connections.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import F, Prefetch

from benchmarks.benchapp.models import Author, Book, Entry, Item
from benchmarks.systems.base import SyncSystem
from benchmarks.workloads import BULK, CHUNK, IN_WINDOW


def driver_name(db: str) -> str:
    if db == "postgresql":
        import psycopg

        return f"psycopg {psycopg.__version__}"
    import MySQLdb

    if getattr(MySQLdb, "__name__", "") == "pymysql" or "pymysql" in repr(MySQLdb):
        import pymysql

        return f"PyMySQL {pymysql.__version__} (mysqlclient is not installed)"
    return f"mysqlclient {'.'.join(map(str, MySQLdb.version_info[:3]))}"


class System(SyncSystem):
    key = "django"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.note = f"Django sync and Django `a*` run on {driver_name(self.db)}"

    def get(self, i: int) -> Any:
        return Author.objects.get(pk=self.keys.author(i))

    def filter100(self, i: int) -> Any:
        return list(Book.objects.filter(id__gte=self.keys.book(i), pages__gte=self.keys.pages(i)).order_by("id")[:100])

    def join100(self, i: int) -> Any:
        return list(Book.objects.filter(id__gte=self.keys.book(i)).select_related("author").order_by("id")[:100])

    def insert1(self, i: int) -> Any:
        return Entry.objects.create(name=f"entry {i}", value=i)

    def bulk1000(self, i: int) -> Any:
        return Entry.objects.bulk_create([Entry(name=f"entry {i}.{j}", value=j) for j in range(BULK)])

    def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        return Book.objects.filter(id__gte=b, id__lt=b + 10).update(pages=F("pages") + 1)

    def count(self, i: int) -> Any:
        return Book.objects.filter(author_id=self.keys.author(i)).count()

    def update_set(self, i: int) -> Any:
        return Book.objects.filter(author_id=self.keys.author(i)).update(title=f"title {i}")

    def prefetch(self, i: int) -> Any:
        return list(Author.objects.filter(id__gte=self.keys.author(i)).order_by("id")[:100].prefetch_related("book_set"))

    def txn10(self, i: int) -> None:
        a, b = self.keys.author(i), self.keys.book(i)
        with transaction.atomic():
            for j in range(5):
                Author.objects.get(pk=a + j)
                Book.objects.filter(pk=b + j).update(pages=F("pages") + 1)

    def atomic_empty(self, i: int) -> None:
        with transaction.atomic():
            pass

    # -- reads of issue 17 (a datetime column, every prefetch kind) --

    def _authors(self, i: int) -> Any:
        return Author.objects.filter(id__gte=self.keys.author(i)).order_by("id")[:100]

    def _books(self, i: int) -> Any:
        return Book.objects.filter(id__gte=self.keys.book(i)).order_by("id")[:100]

    def authors100(self, i: int) -> Any:
        return list(Author.objects.filter(id__gte=self.keys.author(i), rating__gte=self.keys.rating(i)).order_by("id")[:100])

    def since100(self, i: int) -> Any:
        return list(Author.objects.filter(joined__gte=self.keys.since(i)).order_by("joined")[:100])

    def prefetch_fk(self, i: int) -> Any:
        return list(self._books(i).prefetch_related("author"))

    def prefetch_m2m(self, i: int) -> Any:
        return list(self._books(i).prefetch_related("tags"))

    def prefetch_nested(self, i: int) -> Any:
        return list(self._authors(i).prefetch_related("book_set__tags"))

    def prefetch_obj(self, i: int) -> Any:
        books = Book.objects.filter(pages__gte=self.keys.pages(i)).order_by("-pages")
        return list(self._authors(i).prefetch_related(Prefetch("book_set", queryset=books)))

    def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        return list(Book.objects.filter(author_id__gte=a, author_id__lt=a + IN_WINDOW, pages__in=self.keys.page_list(i)))

    def _stream(self) -> int:
        n = 0
        for _obj in Item.objects.iterator(chunk_size=CHUNK):
            n += 1
        return n

    async def stream(self) -> int:
        return await self.in_thread(self._stream)

    def close_thread_connection(self) -> None:
        connection.close()
