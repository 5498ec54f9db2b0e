"""vinyl, through its public API only (``Model.vinyl``, ``vinyl.atomic``).

``vinyl_default`` runs on a pool of 10 (``OPTIONS["pool"]``, see
``benchmarks/settings.py``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Prefetch

import vinyl
from benchmarks.benchapp.models import Author, Book, Entry, Item
from benchmarks.systems.base import AsyncSystem
from benchmarks.workloads import BULK, CHUNK, IN_WINDOW


class System(AsyncSystem):
    key = "vinyl"

    async def setup(self) -> None:
        # Connect once, so the first measurement does not pay for the pool.
        await Author.vinyl.filter(pk=1).count()

    async def teardown(self) -> None:
        await vinyl.dispose()

    async def get(self, i: int) -> Any:
        return await Author.vinyl.get(pk=self.keys.author(i))

    async def filter100(self, i: int) -> Any:
        return await Book.vinyl.filter(id__gte=self.keys.book(i), pages__gte=self.keys.pages(i)).order_by("id")[:100]

    async def join100(self, i: int) -> Any:
        return await Book.vinyl.filter(id__gte=self.keys.book(i)).select_related("author").order_by("id")[:100]

    async def insert1(self, i: int) -> Any:
        return await Entry.vinyl.create(name=f"entry {i}", value=i)

    async def bulk1000(self, i: int) -> Any:
        return await Entry.vinyl.bulk_create([Entry(name=f"entry {i}.{j}", value=j) for j in range(BULK)])

    async def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        return await Book.vinyl.filter(id__gte=b, id__lt=b + 10).update(pages=F("pages") + 1)

    async def count(self, i: int) -> Any:
        return await Book.vinyl.filter(author_id=self.keys.author(i)).count()

    async def update_set(self, i: int) -> Any:
        return await Book.vinyl.filter(author_id=self.keys.author(i)).update(title=f"title {i}")

    async def prefetch(self, i: int) -> Any:
        # Evaluating the QuerySet runs both queries; reading the books back
        # (``a["book_set"]``) is left out, as for every system.
        return await Author.vinyl.filter(id__gte=self.keys.author(i)).order_by("id")[:100].prefetch_related("book_set")

    async def txn10(self, i: int) -> None:
        a, b = self.keys.author(i), self.keys.book(i)
        async with vinyl.atomic():
            for j in range(5):
                await Author.vinyl.get(pk=a + j)
                await Book.vinyl.filter(pk=b + j).update(pages=F("pages") + 1)

    async def atomic_empty(self, i: int) -> None:
        async with vinyl.atomic():
            pass

    # -- reads of issue 17 (a datetime column, every prefetch kind) --

    def _authors(self, i: int) -> Any:
        return Author.vinyl.filter(id__gte=self.keys.author(i)).order_by("id")[:100]

    def _books(self, i: int) -> Any:
        return Book.vinyl.filter(id__gte=self.keys.book(i)).order_by("id")[:100]

    async def authors100(self, i: int) -> Any:
        return await Author.vinyl.filter(id__gte=self.keys.author(i), rating__gte=self.keys.rating(i)).order_by("id")[:100]

    async def since100(self, i: int) -> Any:
        return await Author.vinyl.filter(joined__gte=self.keys.since(i)).order_by("joined")[:100]

    async def prefetch_fk(self, i: int) -> Any:
        return await self._books(i).prefetch_related("author")

    async def prefetch_m2m(self, i: int) -> Any:
        return await self._books(i).prefetch_related("tags")

    async def prefetch_nested(self, i: int) -> Any:
        return await self._authors(i).prefetch_related("book_set__tags")

    async def prefetch_obj(self, i: int) -> Any:
        books = Book.vinyl.filter(pages__gte=self.keys.pages(i)).order_by("-pages")
        return await self._authors(i).prefetch_related(Prefetch("book_set", queryset=books))

    async def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        return await Book.vinyl.filter(author_id__gte=a, author_id__lt=a + IN_WINDOW, pages__in=self.keys.page_list(i))

    async def stream(self) -> int:
        n = 0
        async for _obj in Item.vinyl.iterator(chunk_size=CHUNK):
            n += 1
        return n
