"""Checked by mypy (``make typecheck``), never run: what an editor infers."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from tests.testapp.models import Author, Book
from vinyl.manager import BoundVinylManager
from vinyl.queryset import VinylQuerySet


async def manager_and_queryset_are_typed_by_model() -> None:
    assert_type(Book.vinyl, BoundVinylManager[Book])
    assert_type(await Book.vinyl.get(pk=1), Book)
    assert_type(await Book.vinyl.all(), list[Book])
    assert_type(Book.vinyl.filter(title="x").order_by("-id"), VinylQuerySet[Book])
    assert_type(await Book.vinyl.filter(title="x")[:3], list[Book])
    assert_type(await Book.vinyl.order_by("id")[0], Book)
    assert_type(await Author.vinyl.first(), Author | None)
    assert_type(await Author.vinyl.create(name="Ann"), Author)
    assert_type(await Author.vinyl.get_or_create(name="Ann"), tuple[Author, bool])
    assert_type(await Author.vinyl.bulk_create([]), list[Author])
    assert_type(await Author.vinyl.count(), int)
    assert_type(await Author.vinyl.values("name"), list[Any])
    async for author in Author.vinyl.filter(age__gt=3):
        assert_type(author, Author)
    async for book in Book.vinyl.iterator(chunk_size=10):
        assert_type(book, Book)
