"""Generic relations (contenttypes): GenericForeignKey, GenericRelation, prefetch."""

from __future__ import annotations

import pytest
from django.db.models import Prefetch

import vinyl
from tests.nativeapp.models import Bookmark, Note, TaggedItem
from tests.relations.counting import count_queries

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_create_with_content_object_and_await_it():
    mark = await Bookmark.vinyl.create(url="u1")
    item = await TaggedItem.vinyl.create(tag="t", content_object=mark)
    assert item.object_id == mark.pk
    target = await item.content_object
    assert isinstance(target, Bookmark.vinyl.model) and target.url == "u1"
    fresh = await TaggedItem.vinyl.get(pk=item.pk)
    assert (await fresh.content_object).pk == mark.pk  # a query, from the row
    await Bookmark.vinyl.filter(pk=mark.pk).delete()
    assert await fresh.content_object is None  # the target is gone, as in Django


async def test_assignment_is_completed_by_save():
    mark = await Bookmark.vinyl.create(url="u1")
    note = await Note.vinyl.create(text="n1")
    item = await TaggedItem.vinyl.create(tag="t", content_object=mark)
    item.content_object = note
    await item.save()
    again = await TaggedItem.vinyl.get(pk=item.pk)
    target = await again.content_object
    assert isinstance(target, Note) and target.pk == note.pk
    assert item.object_id == note.pk


async def test_generic_relation_manager_queries_and_writes():
    mark = await Bookmark.vinyl.create(url="u1")
    other = await Bookmark.vinyl.create(url="u2")
    note = await Note.vinyl.create(text="n")
    await mark.tags.create(tag="a")
    await mark.tags.acreate(tag="b")
    await note.tags.create(tag="a")  # same object id space, other content type
    assert sorted(t.tag for t in await mark.tags.all()) == ["a", "b"]
    assert await mark.tags.filter(tag="a").count() == 1
    assert await other.tags.count() == 0
    moved = await mark.tags.get(tag="b")
    await other.tags.add(moved)
    assert [t.tag for t in await other.tags.all()] == ["b"]
    assert await mark.tags.count() == 1
    await other.tags.remove(moved)  # deletes it: a tag cannot exist unrelated
    assert not await TaggedItem.vinyl.filter(pk=moved.pk).exists()
    c = await TaggedItem.vinyl.create(tag="c", content_object=note)
    await mark.tags.set([c])
    assert [t.tag for t in await mark.tags.all()] == ["c"]
    tag, created = await mark.tags.get_or_create(tag="d")
    assert created and await mark.tags.acount() == 2
    await mark.tags.clear()
    assert await mark.tags.count() == 0
    assert [t.tag for t in await note.tags.all()] == ["a"]


async def test_prefetch_of_generic_foreign_keys_and_relations():
    mark = await Bookmark.vinyl.create(url="u1")
    note = await Note.vinyl.create(text="n1")
    await TaggedItem.vinyl.create(tag="on-mark", content_object=mark)
    await TaggedItem.vinyl.create(tag="on-note", content_object=note)
    with count_queries() as queries:
        items = await TaggedItem.vinyl.order_by("tag").prefetch_related("content_object")
        targets = [item["content_object"] for item in items]
    assert [type(t).__name__ for t in targets] == ["Bookmark", "Note"]
    assert isinstance(targets[0], Bookmark.vinyl.model) and targets[1].text == "n1"
    assert len(queries) <= 4  # items, and one query per content type (+ content types)
    marks = await Bookmark.vinyl.prefetch_related("tags")
    assert [t.tag for t in marks[0]["tags"]] == ["on-mark"]
    marks = await Bookmark.vinyl.prefetch_related(Prefetch("tags", queryset=TaggedItem.vinyl.filter(tag="x"), to_attr="xs"))
    assert marks[0]["xs"] == []
    with pytest.raises(KeyError, match="content_object"):
        (await TaggedItem.vinyl.order_by("tag"))[0]["content_object"]


async def test_generic_relations_inside_a_block():
    async with vinyl.atomic():
        mark = await Bookmark.vinyl.create(url="u1")
        await mark.tags.create(tag="a")
        item = await TaggedItem.vinyl.get()
        assert (await item.content_object).pk == mark.pk
    assert await TaggedItem.vinyl.count() == 1


@pytest.fixture(autouse=True)
def _content_types_of_this_backend():
    # The suite points vinyl_default at each backend in turn; content type
    # ids differ between them, so the alias's cache starts empty each time.
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()
