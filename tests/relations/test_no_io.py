"""Reading any attribute of a vinyl instance never runs a query."""

from __future__ import annotations

import inspect

import pytest

from tests.relapp.models import Club, Pizzeria, Person
from tests.relations.counting import count_queries
from tests.testapp.models import Author, Book, Profile, Publisher, Tag
from vinyl.descriptors import Fetch
from vinyl.exceptions import DeferredFieldError
from vinyl.related import VinylRelatedManager

pytestmark = pytest.mark.usefixtures("vinyl_db")


def read_every_attribute(obj: object) -> dict[str, object]:
    """getattr() every name dir() lists; return what came back (or raised)."""
    seen: dict[str, object] = {}
    for name in dir(obj):
        try:
            seen[name] = getattr(obj, name)
        except Exception as exc:  # noqa: BLE001 - errors are fine, I/O is not
            seen[name] = exc
    return seen


async def loaded_instances() -> list[object]:
    ann = await Author.vinyl.create(name="Ann")
    await Profile.vinyl.create(author=ann)
    pub = await Publisher.vinyl.create(name="P")
    book = await Book.vinyl.create(title="B", author=ann, publisher=pub)
    await book.tags.add(await Tag.vinyl.create(name="t"))
    club = await Club.vinyl.create(name="c")
    await club.members.add(await Person.vinyl.create(name="p"))
    await Pizzeria.vinyl.create(name="Luigi")
    return [
        *await Book.vinyl.all(),
        *await Book.vinyl.only("title"),
        *await Book.vinyl.select_related("author"),
        *await Author.vinyl.prefetch_related("book_set"),
        *await Author.vinyl.all(),
        *await Tag.vinyl.all(),
        *await Profile.vinyl.all(),
        *await Club.vinyl.all(),
        *await Person.vinyl.all(),
        *await Pizzeria.vinyl.all(),
        *await Pizzeria.vinyl.defer("name"),
    ]


async def test_no_attribute_access_performs_io():
    instances = await loaded_instances()
    with count_queries() as queries:
        results = [read_every_attribute(obj) for obj in instances]
    assert queries == []
    for seen in results:
        for name, value in seen.items():
            assert not inspect.iscoroutine(value), name
    book = results[0]
    assert isinstance(book["author"], Fetch)
    assert isinstance(book["publisher"], Fetch)
    assert isinstance(book["tags"], VinylRelatedManager)
    assert isinstance(results[0]["objects"], AttributeError)
    assert isinstance(results[0]["vinyl"], AttributeError)
    only_title = results[1]
    assert isinstance(only_title["pages"], DeferredFieldError)
    assert isinstance(only_title["author_id"], DeferredFieldError)
    deferred_pizzeria = results[-1]
    assert isinstance(deferred_pizzeria["name"], DeferredFieldError)


async def test_reading_relations_then_awaiting_them_queries_only_on_await():
    instances = await loaded_instances()
    book = instances[0]
    with count_queries() as queries:
        pending_author = book.author
        pending_tags = book.tags.all()
    assert queries == []
    with count_queries() as queries:
        assert (await pending_author).name == "Ann"
        assert [t.name for t in await pending_tags] == ["t"]
    assert len(queries) == 2
