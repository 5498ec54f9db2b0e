"""Django's async names (aget, acount, asave, aadd...) on vinyl's classes.

Code written for ``Model.objects.a*`` and Django's async shortcuts run on
``Model.vinyl`` by changing only the manager.
"""

from __future__ import annotations

import pytest
from django.db.models import Count, Sum
from django.http import Http404
from django.shortcuts import aget_list_or_404, aget_object_or_404

from tests.testapp.models import Author, Book, Tag
from vinyl._aliases import INSTANCE_ALIASES, QUERYSET_ALIASES, RELATED_ALIASES
from vinyl.manager import BoundVinylManager
from vinyl.models import VinylInstance
from vinyl.queryset import VinylQuerySet
from vinyl.related import VinylRelatedManager

pytestmark = pytest.mark.usefixtures("vinyl_db")


def test_every_alias_is_the_plain_coroutine():
    for alias, plain in QUERYSET_ALIASES.items():
        assert getattr(VinylQuerySet, alias) is getattr(VinylQuerySet, plain), alias
        assert getattr(BoundVinylManager, alias) is getattr(BoundVinylManager, plain), alias
    for alias, plain in INSTANCE_ALIASES.items():
        assert getattr(VinylInstance, alias) is getattr(VinylInstance, plain), alias
    for alias in ("aadd", "aremove", "aset", "aclear", "acreate", "aget_or_create", "aupdate_or_create"):
        assert getattr(VinylRelatedManager, alias) is getattr(VinylRelatedManager, RELATED_ALIASES[alias])


async def test_code_written_for_objects_a_methods_runs_on_the_vinyl_manager():
    manager = Author.vinyl  # was: Author.objects
    ann = await manager.acreate(name="Ann", age=30)
    bob, created = await manager.aget_or_create(name="Bob", defaults={"age": 40})
    assert created
    _, created = await manager.aupdate_or_create(name="Bob", defaults={"age": 41})
    assert not created
    await manager.abulk_create([Author(name="Cy", age=20), Author(name="Di", age=50)])
    assert await manager.acount() == 4
    assert await manager.filter(age__gt=35).acount() == 2
    assert await manager.aexists()
    assert (await manager.aget(name="Ann")).pk == ann.pk
    assert (await manager.order_by("age").afirst()).name == "Cy"
    assert (await manager.order_by("age").alast()).name == "Di"
    assert (await manager.alatest()).name == "Di"  # get_latest_by = "age"
    assert (await manager.aearliest("age")).name == "Cy"
    assert await manager.aaggregate(total=Sum("age")) == {"total": 141}
    assert set(await manager.ain_bulk([ann.pk, bob.pk])) == {ann.pk, bob.pk}
    assert await manager.acontains(ann)
    assert isinstance(await manager.filter(age=1).aexplain(), str)
    names = [a.name async for a in manager.order_by("name").aiterator(chunk_size=2)]
    assert names == ["Ann", "Bob", "Cy", "Di"]
    assert await manager.filter(name="Cy").aupdate(age=21) == 1
    bob.age = 42
    await manager.abulk_update([bob], ["age"])
    assert (await manager.aget(pk=bob.pk)).age == 42
    assert await manager.filter(name="Di").adelete() == (1, {"testapp.Author": 1})


async def test_instance_aliases():
    ann = await Author.vinyl.create(name="Ann")
    ann.age = 7
    await ann.asave(update_fields=["age"])
    stale = await Author.vinyl.get(pk=ann.pk)
    await Author.vinyl.filter(pk=ann.pk).update(age=8)
    await stale.arefresh_from_db()
    assert stale.age == 8
    assert await ann.adelete() == (1, {"testapp.Author": 1})


async def test_related_manager_aliases():
    ann = await Author.vinyl.create(name="Ann")
    book = await ann.book_set.acreate(title="One")
    assert await ann.book_set.acount() == 1
    assert (await ann.book_set.aget()).pk == book.pk
    t1, t2 = await Tag.vinyl.acreate(name="t1"), await Tag.vinyl.acreate(name="t2")
    await book.tags.aadd(t1, t2)
    assert await book.tags.acount() == 2
    await book.tags.aremove(t1)
    assert [t.name async for t in book.tags.aiterator()] == ["t2"]
    await book.tags.aset([t1])
    assert [t.name for t in await book.tags.all()] == ["t1"]
    await book.tags.aclear()
    assert not await book.tags.aexists()
    tag, created = await book.tags.aget_or_create(name="t3")
    assert created and await book.tags.acontains(tag)


async def test_django_async_shortcuts_take_a_vinyl_manager_or_queryset():
    ann = await Author.vinyl.create(name="Ann")
    await Book.vinyl.create(title="One", author=ann)
    assert (await aget_object_or_404(Author.vinyl, name="Ann")).pk == ann.pk
    assert (await aget_object_or_404(Author.vinyl.filter(age=0), pk=ann.pk)).name == "Ann"
    with pytest.raises(Http404):
        await aget_object_or_404(Author.vinyl, name="nobody")
    books = await aget_list_or_404(Book.vinyl.annotate(n=Count("tags")), author=ann)
    assert [b.title for b in books] == ["One"]
    with pytest.raises(Http404):
        await aget_list_or_404(Book.vinyl, title="none")
