"""Django's own async API (``aget``, ``acount``, ``async for`` ...).

Each call hops to Django's one sync thread (``sync_to_async``). Django has no
async ``atomic``: the transaction row runs the block with ``sync_to_async``,
as Django's documentation advises.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F, Prefetch

from benchmarks.benchapp.models import Author, Book, Entry, Item
from benchmarks.systems.base import AsyncSystem
from benchmarks.workloads import BULK, CHUNK, IN_WINDOW


class System(AsyncSystem):
    key = "django_async"

    async def get(self, i: int) -> Any:
        return await Author.objects.aget(pk=self.keys.author(i))

    async def filter100(self, i: int) -> Any:
        qs = Book.objects.filter(id__gte=self.keys.book(i), pages__gte=self.keys.pages(i)).order_by("id")[:100]
        return [b async for b in qs]

    async def join100(self, i: int) -> Any:
        qs = Book.objects.filter(id__gte=self.keys.book(i)).select_related("author").order_by("id")[:100]
        return [b async for b in qs]

    async def insert1(self, i: int) -> Any:
        return await Entry.objects.acreate(name=f"entry {i}", value=i)

    async def bulk1000(self, i: int) -> Any:
        return await Entry.objects.abulk_create([Entry(name=f"entry {i}.{j}", value=j) for j in range(BULK)])

    async def update_f(self, i: int) -> Any:
        b = self.keys.book(i)
        return await Book.objects.filter(id__gte=b, id__lt=b + 10).aupdate(pages=F("pages") + 1)

    async def count(self, i: int) -> Any:
        return await Book.objects.filter(author_id=self.keys.author(i)).acount()

    async def update_set(self, i: int) -> Any:
        return await Book.objects.filter(author_id=self.keys.author(i)).aupdate(title=f"title {i}")

    async def prefetch(self, i: int) -> Any:
        qs = Author.objects.filter(id__gte=self.keys.author(i)).order_by("id")[:100].prefetch_related("book_set")
        return [a async for a in qs]

    async def txn10(self, i: int) -> None:
        await _txn10(self.keys.author(i), self.keys.book(i))

    async def atomic_empty(self, i: int) -> None:
        await _atomic_empty()

    # -- reads of issue 17 (a datetime column, every prefetch kind) --

    def _authors(self, i: int) -> Any:
        return Author.objects.filter(id__gte=self.keys.author(i)).order_by("id")[:100]

    def _books(self, i: int) -> Any:
        return Book.objects.filter(id__gte=self.keys.book(i)).order_by("id")[:100]

    async def authors100(self, i: int) -> Any:
        qs = Author.objects.filter(id__gte=self.keys.author(i), rating__gte=self.keys.rating(i)).order_by("id")[:100]
        return [a async for a in qs]

    async def since100(self, i: int) -> Any:
        return [a async for a in Author.objects.filter(joined__gte=self.keys.since(i)).order_by("joined")[:100]]

    async def prefetch_fk(self, i: int) -> Any:
        return [b async for b in self._books(i).prefetch_related("author")]

    async def prefetch_m2m(self, i: int) -> Any:
        return [b async for b in self._books(i).prefetch_related("tags")]

    async def prefetch_nested(self, i: int) -> Any:
        return [a async for a in self._authors(i).prefetch_related("book_set__tags")]

    async def prefetch_obj(self, i: int) -> Any:
        books = Book.objects.filter(pages__gte=self.keys.pages(i)).order_by("-pages")
        return [a async for a in self._authors(i).prefetch_related(Prefetch("book_set", queryset=books))]

    async def in100(self, i: int) -> Any:
        a = self.keys.window(i)
        qs = Book.objects.filter(author_id__gte=a, author_id__lt=a + IN_WINDOW, pages__in=self.keys.page_list(i))
        return [b async for b in qs]

    async def stream(self) -> int:
        n = 0
        async for _obj in Item.objects.aiterator(chunk_size=CHUNK):
            n += 1
        return n


@sync_to_async
def _txn10(a: int, b: int) -> None:
    with transaction.atomic():
        for j in range(5):
            Author.objects.get(pk=a + j)
            Book.objects.filter(pk=b + j).update(pages=F("pages") + 1)


@sync_to_async
def _atomic_empty() -> None:
    with transaction.atomic():
        pass
