"""Every public QuerySet method is reachable from the manager and the related managers.

Their method sets are derived from ``VinylQuerySet`` (``vinyl.proxies``), so a
method added to the QuerySet reaches them all without being listed again.
"""

from __future__ import annotations

import inspect

import pytest

from tests.nativeapp.models import Bookmark, TaggedItem
from tests.testapp.models import Author, Book, Tag
from vinyl.manager import BoundVinylManager
from vinyl.proxies import QUERYSET_ONLY, queryset_api
from vinyl.queryset import VinylQuerySet
from vinyl.related import VinylGenericRelatedManager, VinylRelatedManager
from vinyl.translate import shapes

pytestmark = pytest.mark.usefixtures("vinyl_db")

PUBLIC = sorted(
    name
    for name, member in inspect.getmembers(VinylQuerySet)
    if not name.startswith("_") and callable(member) and name not in QUERYSET_ONLY
)


def test_the_api_is_the_querysets_public_methods():
    assert {"filter", "get", "create", "iterator", "raw", "extra", "fetch_mode"} <= set(queryset_api())
    assert not set(queryset_api()) & {"as_django", "resolve_expression", "aget", "query", "db"}
    # The shape rules name QuerySet methods only.
    for name in shapes._LOOKUP_METHODS | shapes._STRUCTURE_METHODS:
        assert name in queryset_api(), name


@pytest.mark.parametrize("manager_class", [BoundVinylManager, VinylRelatedManager, VinylGenericRelatedManager])
def test_every_public_queryset_method_is_a_manager_method(manager_class):
    missing = [name for name in PUBLIC if not callable(getattr(manager_class, name, None))]
    assert not missing, f"{manager_class.__name__} lacks {missing}"


async def test_reached_on_instances_and_run_on_the_managers_queryset():
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    book = await Book.vinyl.create(title="a", author=ann)
    await Book.vinyl.create(title="b", author=bob)
    tag = await Tag.vinyl.create(name="t")
    await book.tags.add(tag)
    mark = await Bookmark.vinyl.create(url="u")
    await TaggedItem.vinyl.create(tag="x", content_object=mark)
    managers = [Author.vinyl, ann.book_set, book.tags, tag.book_set, mark.tags]
    for manager in managers:
        for name in PUBLIC:
            assert callable(getattr(manager, name)), (manager, name)
    # Methods the related managers once lacked start from the relation's QuerySet.
    assert [b.title for b in await ann.book_set.extra(where=["1=1"])] == ["a"]
    assert [t.name for t in await book.tags.complex_filter({"name": "t"})] == ["t"]
    assert await mark.tags.acount() == 1
    assert await Author.vinyl.aexists()
    assert inspect.iscoroutinefunction(BoundVinylManager.get)
    assert inspect.iscoroutinefunction(VinylRelatedManager.count)
