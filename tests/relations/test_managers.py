"""Related managers: reverse foreign keys and many-to-many, both sides."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError
from django.db.models import Count
from django.db.models.signals import m2m_changed

from tests.relapp.models import Club, Membership, Person
from tests.relations.counting import count_queries
from tests.testapp.models import Author, Book, Publisher, Tag
from vinyl.queryset import VinylQuerySet
from vinyl.related import VinylRelatedManager

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def titles(qs) -> list[str]:
    return sorted(b.title for b in await qs)


# -- reverse foreign key ---------------------------------------------------------


async def test_reverse_fk_manager_gives_vinyl_querysets():
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    await Book.vinyl.create(title="A1", author=ann, pages=10)
    await Book.vinyl.create(title="A2", author=ann, pages=300)
    await Book.vinyl.create(title="B1", author=bob)
    manager = ann.book_set
    assert isinstance(manager, VinylRelatedManager)
    assert manager.model is Book.vinyl.model
    assert isinstance(manager.all(), VinylQuerySet)
    assert await titles(manager.all()) == ["A1", "A2"]
    assert await titles(manager.filter(pages__gt=100)) == ["A2"]
    assert await manager.count() == 2
    assert await manager.exists() is True
    assert (await manager.get(pages=10)).title == "A1"
    assert (await manager.order_by("-pages").first()).title == "A2"
    assert await manager.aggregate(n=Count("id")) == {"n": 2}
    books = await manager.all()
    assert all(type(b) is Book.vinyl.model for b in books)
    # The manager's instance is known: reading it back needs no query.
    with count_queries() as queries:
        assert books[0]["author"] is ann
    assert queries == []


async def test_reverse_fk_create_sets_the_key():
    ann = await Author.vinyl.create(name="Ann")
    book = await ann.book_set.create(title="New")
    assert type(book) is Book.vinyl.model
    assert book.author_id == ann.pk
    assert (await Book.vinyl.get(pk=book.pk)).author_id == ann.pk
    got, created = await ann.book_set.get_or_create(title="New")
    assert (got.pk, created) == (book.pk, False)
    got, created = await ann.book_set.update_or_create(title="Other", defaults={"pages": 5})
    assert created and got.author_id == ann.pk and got.pages == 5


async def test_reverse_fk_add_moves_rows_and_accepts_plain_instances():
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    b1 = await Book.vinyl.create(title="B1", author=bob)
    b2 = await Book.vinyl.create(title="B2", author=bob)
    plain = Book.objects.db_manager("vinyl_default").model(pk=b2.pk, title="B2", author_id=bob.pk)
    plain._state.adding = False
    plain._state.db = "vinyl_default"
    assert type(plain) is Book
    await ann.book_set.add(b1, plain)
    assert b1.author_id == ann.pk and plain.author_id == ann.pk
    assert await titles(ann.book_set.all()) == ["B1", "B2"]
    with pytest.raises(TypeError, match="'Book' instance expected"):
        await ann.book_set.add(ann)


async def test_reverse_fk_add_bulk_false_saves_each_object():
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    book = await Book.vinyl.create(title="B1", author=bob)
    await ann.book_set.add(book, bulk=False)
    assert (await Book.vinyl.get(pk=book.pk)).author_id == ann.pk


async def test_reverse_fk_remove_clear_set_on_a_nullable_key():
    pub = await Publisher.vinyl.create(name="P")
    ann = await Author.vinyl.create(name="Ann")
    books = [await Book.vinyl.create(title=f"T{i}", author=ann, publisher=pub) for i in range(3)]
    await pub.book_set.remove(books[0])
    assert await pub.book_set.count() == 2
    await pub.book_set.set([books[0], books[1]])
    assert await titles(pub.book_set.all()) == ["T0", "T1"]
    await pub.book_set.set([books[2]], bulk=False)
    assert await titles(pub.book_set.all()) == ["T2"]
    await pub.book_set.clear()
    assert await pub.book_set.count() == 0
    assert await Book.vinyl.count() == 3


async def test_reverse_fk_remove_is_missing_for_a_non_null_key():
    ann = await Author.vinyl.create(name="Ann")
    with pytest.raises(AttributeError, match="null=False"):
        await ann.book_set.remove()
    with pytest.raises(AttributeError, match="null=False"):
        await ann.book_set.clear()


async def test_reverse_fk_set_is_all_or_nothing():
    pub = await Publisher.vinyl.create(name="P")
    ann = await Author.vinyl.create(name="Ann")
    kept = await Book.vinyl.create(title="Kept", author=ann, publisher=pub)
    new = await Book.vinyl.create(title="New", author=ann)
    unsaved = Book.vinyl.model(pk=10**6, title="Unsaved", author=ann)  # never saved
    with pytest.raises(ValueError, match="isn't saved"):
        await pub.book_set.set([new, unsaved])
    # The removal of "Kept" was rolled back with the failed add.
    assert await titles(pub.book_set.all()) == ["Kept"]
    assert kept.pk


# -- many-to-many --------------------------------------------------------------


async def test_m2m_add_remove_clear_set_both_sides():
    ann = await Author.vinyl.create(name="Ann")
    book = await Book.vinyl.create(title="B", author=ann)
    red, blue, green = [await Tag.vinyl.create(name=n) for n in ("red", "blue", "green")]
    await book.tags.add(red, blue.pk)
    assert sorted(t.name for t in await book.tags.all()) == ["blue", "red"]
    assert all(type(t) is Tag.vinyl.model for t in await book.tags.all())
    await book.tags.add(red)  # already there: no error, no duplicate
    assert await book.tags.count() == 2
    assert [b.title for b in await green.book_set.all()] == []
    await green.book_set.add(book)
    assert await book.tags.count() == 3
    await book.tags.remove(red)
    assert sorted(t.name for t in await book.tags.all()) == ["blue", "green"]
    await book.tags.set([red, green])
    assert sorted(t.name for t in await book.tags.all()) == ["green", "red"]
    await book.tags.set([blue], clear=True)
    assert [t.name for t in await book.tags.all()] == ["blue"]
    await blue.book_set.clear()
    assert await book.tags.count() == 0
    assert await Tag.vinyl.count() == 3


async def test_m2m_create_and_plain_instances_and_querysets():
    ann = await Author.vinyl.create(name="Ann")
    book = await Book.vinyl.create(title="B", author=ann)
    tag = await book.tags.create(name="made")
    assert type(tag) is Tag.vinyl.model
    assert [t.name for t in await book.tags.all()] == ["made"]
    other = await Tag.vinyl.create(name="other")
    plain = Tag(pk=other.pk, name="other")
    plain._state.db = "vinyl_default"
    await book.tags.add(plain)
    assert await book.tags.count() == 2
    await book.tags.set(Tag.vinyl.filter(name="other"))
    assert [t.name for t in await book.tags.all()] == ["other"]
    with pytest.raises(TypeError, match="'Tag' instance expected"):
        await book.tags.add(ann)


async def test_m2m_filters_chain_on_the_relation():
    ann = await Author.vinyl.create(name="Ann")
    b1 = await Book.vinyl.create(title="B1", author=ann)
    b2 = await Book.vinyl.create(title="B2", author=ann)
    red, blue = await Tag.vinyl.create(name="red"), await Tag.vinyl.create(name="blue")
    await b1.tags.add(red, blue)
    await b2.tags.add(red)
    assert [t.name for t in await b1.tags.filter(name__startswith="b")] == ["blue"]
    assert await red.book_set.filter(title="B2").exists()
    assert sorted(await red.book_set.values_list("title", flat=True)) == ["B1", "B2"]


async def test_m2m_on_unsaved_instance_raises_like_django():
    book = Book.vinyl.model(title="x")
    with pytest.raises(ValueError, match="before this many-to-many relationship"):
        book.tags


async def test_custom_through_model_with_through_defaults():
    club = await Club.vinyl.create(name="Chess")
    ann = await Person.vinyl.create(name="Ann")
    bob = await Person.vinyl.create(name="Bob")
    await club.members.add(ann)
    await club.members.add(bob, through_defaults={"role": "chair"})
    roles = dict(await Membership.vinyl.values_list("person__name", "role"))
    assert roles == {"Ann": "member", "Bob": "chair"}
    assert [c.name for c in await bob.clubs.all()] == ["Chess"]
    carl = await club.members.create(name="Carl", through_defaults={"role": "guest"})
    assert (await Membership.vinyl.get(person=carl)).role == "guest"
    await club.members.remove(ann)
    assert sorted(p.name for p in await club.members.all()) == ["Bob", "Carl"]
    await bob.clubs.clear()
    await club.members.set([ann], through_defaults={"role": "new"})
    assert dict(await Membership.vinyl.values_list("person__name", "role")) == {"Ann": "new"}
    with pytest.raises(IntegrityError):
        await Membership.vinyl.create(person=ann, club=club)


async def test_m2m_changed_is_sent_with_asend_and_async_receivers_are_awaited():
    events = []

    async def receiver(sender, action, instance, reverse, model, pk_set, using, **kwargs):
        events.append((sender, action, type(instance).__name__, reverse, model, None if pk_set is None else sorted(pk_set)))

    m2m_changed.connect(receiver, sender=Book.tags.through)
    try:
        ann = await Author.vinyl.create(name="Ann")
        book = await Book.vinyl.create(title="B", author=ann)
        red, blue = await Tag.vinyl.create(name="red"), await Tag.vinyl.create(name="blue")
        await book.tags.add(red, blue)
        await book.tags.add(red)
        await book.tags.remove(blue)
        await red.book_set.clear()
        await book.tags.set([blue])
    finally:
        m2m_changed.disconnect(receiver, sender=Book.tags.through)
    through = Book.tags.through
    ids = sorted([red.pk, blue.pk])
    assert events == [
        (through, "pre_add", "Book", False, Tag, ids),
        (through, "post_add", "Book", False, Tag, ids),
        (through, "pre_add", "Book", False, Tag, []),
        (through, "post_add", "Book", False, Tag, []),
        (through, "pre_remove", "Book", False, Tag, [blue.pk]),
        (through, "post_remove", "Book", False, Tag, [blue.pk]),
        (through, "pre_clear", "Tag", True, Book, None),
        (through, "post_clear", "Tag", True, Book, None),
        (through, "pre_add", "Book", False, Tag, [blue.pk]),
        (through, "post_add", "Book", False, Tag, [blue.pk]),
    ]


async def test_async_m2m_receiver_can_query_in_the_same_transaction():
    seen = []

    async def receiver(sender, action, instance, pk_set, **kwargs):
        if action == "post_add":
            seen.append(await instance.tags.count())

    m2m_changed.connect(receiver, sender=Book.tags.through)
    try:
        ann = await Author.vinyl.create(name="Ann")
        book = await Book.vinyl.create(title="B", author=ann)
        await book.tags.add(await Tag.vinyl.create(name="red"))
    finally:
        m2m_changed.disconnect(receiver, sender=Book.tags.through)
    assert seen == [1]


async def test_instances_of_djangos_alias_for_the_same_database_are_accepted(backend):
    from django.conf import settings

    ann = await Author.vinyl.create(name="Ann")
    book = await Book.vinyl.create(title="B", author=ann)
    tag = await Tag.vinyl.create(name="t")
    plain = Tag(pk=tag.pk, name="t")
    plain._state.adding = False
    plain._state.db = settings.SYNC_ALIAS[backend]  # as if Tag.objects loaded it
    await book.tags.add(plain)
    assert [t.name for t in await book.tags.all()] == ["t"]
    assert plain._state.db == settings.SYNC_ALIAS[backend]
    assert type(plain) is Tag


async def test_add_bulk_false_awaits_save_signals_for_plain_instances():
    from django.db.models.signals import post_save

    saved = []

    async def receiver(sender, instance, created, **kwargs):
        saved.append((sender, created, instance.author_id))

    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    book = await Book.vinyl.create(title="B", author=bob)
    plain = Book(pk=book.pk, title="B", author_id=bob.pk)
    plain._state.adding = False
    plain._state.db = "vinyl_default"
    post_save.connect(receiver, sender=Book)
    try:
        await ann.book_set.add(plain, bulk=False)
    finally:
        post_save.disconnect(receiver, sender=Book)
    assert saved == [(Book, False, ann.pk)]
    assert type(plain) is Book


# -- a related manager's own join is reused by the next filter, as Django's -----


async def test_a_many_to_many_managers_next_filter_reuses_its_join_as_djangos(backend):
    """``tag.book_set.filter(tags__name=...)`` filters on the same join row as the
    manager's own condition (Django's managers make their filter sticky), and a
    plan of the same chain on ``Book.vinyl`` (two joins) is not replayed for it."""
    ann = await Author.vinyl.create(name="Ann")
    red = await Tag.vinyl.create(name="red")
    blue = await Tag.vinyl.create(name="blue")
    both = await Book.vinyl.create(title="both", author=ann)
    only_blue = await Book.vinyl.create(title="blue", author=ann)
    await both.tags.add(red, blue)
    await only_blue.tags.add(blue)
    sync = settings.SYNC_ALIAS[backend]

    def django_titles(tag_name: str, lookup: str, value: str, exclude: bool = False) -> list[str]:
        tag = Tag.objects.using(sync).get(name=tag_name)
        manager = tag.book_set
        qs = manager.exclude(**{lookup: value}) if exclude else manager.filter(**{lookup: value})
        return sorted(b.title for b in qs)

    # A plan for the two-join chain first: the manager's query must not reuse it.
    assert await titles(Book.vinyl.filter(tags=blue).filter(tags__name="red")) == ["both"]
    for tag_name, tag in (("blue", blue), ("red", red)):
        for lookup, value in (("tags__name", "red"), ("tags__name", "blue"), ("tags__id", red.pk)):
            for exclude in (False, True):
                manager = tag.book_set
                qs = manager.exclude(**{lookup: value}) if exclude else manager.filter(**{lookup: value})
                expected = await sync_to_async(django_titles)(tag_name, lookup, value, exclude)
                assert await titles(qs) == expected, (tag_name, lookup, value, exclude)
                assert await qs.count() == len(expected)
    # The forward side: a book's tags filtered across the reverse join.
    assert await titles_of_tags(both.tags.filter(book__title="blue")) == await sync_to_async(
        lambda: sorted(t.name for t in Book.objects.using(sync).get(pk=both.pk).tags.filter(book__title="blue"))
    )()


async def titles_of_tags(qs) -> list[str]:
    return sorted(t.name for t in await qs)
