"""Deletion: Django's on_delete rules, counts, one transaction, awaited signals."""

from __future__ import annotations

import pytest
from django.db.models import ProtectedError, RestrictedError
from django.db.models.signals import post_delete, pre_delete

from tests.relapp.models import Club, Item, Membership, Owner, Person
from tests.testapp.models import Author, Book, Profile, Publisher, Tag

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_cascade_counts_by_user_model_label():
    ann = await Author.vinyl.create(name="Ann")
    await Profile.vinyl.create(author=ann)
    book = await Book.vinyl.create(title="B", author=ann)
    await book.tags.add(await Tag.vinyl.create(name="t"))
    count, per_model = await ann.delete()
    assert per_model == {
        "testapp.Author": 1,
        "testapp.Book": 1,
        "testapp.Profile": 1,
        "testapp.Book_tags": 1,
    }
    assert count == 4
    assert ann.pk is None
    assert await Book.vinyl.count() == 0
    assert await Tag.vinyl.count() == 1  # m2m rows go, the other side stays


async def test_set_null_set_default_and_do_nothing():
    owner = await Owner.vinyl.create(name="o")
    nulled = await Item.vinyl.create(label="n", set_null=owner)
    defaulted = await Item.vinyl.create(label="d", set_default=owner)
    ignored = await Item.vinyl.create(label="i", do_nothing=owner)
    owner_pk = owner.pk
    assert await owner.delete() == (1, {"relapp.Owner": 1})
    assert (await Item.vinyl.get(pk=nulled.pk)).set_null_id is None
    assert (await Item.vinyl.get(pk=defaulted.pk)).set_default_id is None
    # DO_NOTHING leaves the dangling key (no database constraint here).
    assert (await Item.vinyl.get(pk=ignored.pk)).do_nothing_id == owner_pk


async def test_protect_raises_protected_error_and_deletes_nothing():
    owner = await Owner.vinyl.create(name="o")
    await Item.vinyl.create(label="c", cascade=owner)
    await Item.vinyl.create(label="p", protect=owner)
    with pytest.raises(ProtectedError) as info:
        await owner.delete()
    assert [i.label for i in info.value.protected_objects] == ["p"]
    assert await Owner.vinyl.count() == 1
    assert await Item.vinyl.count() == 2


async def test_restrict_raises_restricted_error_unless_cascaded_too():
    owner = await Owner.vinyl.create(name="o")
    await Item.vinyl.create(label="r", restrict=owner)
    with pytest.raises(RestrictedError):
        await owner.delete()
    # RESTRICT allows the delete when the item also goes through a CASCADE
    # from the same delete.
    await Item.vinyl.filter(label="r").update(cascade=owner)
    count, per_model = await owner.delete()
    assert per_model == {"relapp.Owner": 1, "relapp.Item": 1}


async def test_queryset_delete_with_cascades_returns_counts():
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    pub = await Publisher.vinyl.create(name="P")
    for author in (ann, ann, bob):
        await Book.vinyl.create(title="x", author=author, publisher=pub)
    assert await Author.vinyl.filter(name="Ann").delete() == (3, {"testapp.Author": 1, "testapp.Book": 2})
    assert await Publisher.vinyl.all().delete() == (1, {"testapp.Publisher": 1})
    assert (await Book.vinyl.get()).publisher_id is None
    assert await Author.vinyl.filter(name="nobody").delete() == (0, {})


async def test_queryset_delete_rejects_what_django_rejects():
    with pytest.raises(TypeError, match="limit"):
        await Author.vinyl.all()[:1].delete()
    with pytest.raises(TypeError, match="values"):
        await Author.vinyl.values("id").delete()


async def test_delete_signals_are_awaited_with_the_user_model_as_sender():
    events = []

    async def before(sender, instance, using, origin, **kwargs):
        # Inside the transaction: the row still exists.
        events.append(("pre", sender, type(instance), await Book.vinyl.filter(pk=instance.pk).exists()))

    async def after(sender, instance, using, origin, **kwargs):
        events.append(("post", sender, type(instance), await Book.vinyl.filter(pk=instance.pk).exists()))

    def sync_after(sender, instance, **kwargs):
        events.append(("sync", sender))

    pre_delete.connect(before, sender=Book)
    post_delete.connect(after, sender=Book)
    post_delete.connect(sync_after, sender=Author)
    try:
        ann = await Author.vinyl.create(name="Ann")
        await Book.vinyl.create(title="B", author=ann)
        await ann.delete()
    finally:
        pre_delete.disconnect(before, sender=Book)
        post_delete.disconnect(after, sender=Book)
        post_delete.disconnect(sync_after, sender=Author)
    assert events == [
        ("pre", Book, Book.vinyl.model, True),
        ("post", Book, Book.vinyl.model, False),
        ("sync", Author),
    ]


async def test_failing_receiver_rolls_the_whole_delete_back():
    async def boom(sender, instance, **kwargs):
        raise RuntimeError("no")

    post_delete.connect(boom, sender=Author)
    try:
        ann = await Author.vinyl.create(name="Ann")
        await Book.vinyl.create(title="B", author=ann)
        with pytest.raises(RuntimeError):
            await ann.delete()
    finally:
        post_delete.disconnect(boom, sender=Author)
    assert await Author.vinyl.count() == 1
    assert await Book.vinyl.count() == 1


async def test_queryset_delete_sends_signals_with_queryset_origin():
    origins = []

    async def receiver(sender, instance, origin, **kwargs):
        origins.append(origin)

    pre_delete.connect(receiver, sender=Tag)
    try:
        await Tag.vinyl.create(name="a")
        qs = Tag.vinyl.all()
        await qs.delete()
    finally:
        pre_delete.disconnect(receiver, sender=Tag)
    assert origins == [qs]


async def test_custom_through_rows_are_deleted_with_either_side():
    club = await Club.vinyl.create(name="c")
    ann = await Person.vinyl.create(name="Ann")
    await club.members.add(ann)
    assert await ann.delete() == (2, {"relapp.Person": 1, "relapp.Membership": 1})
    assert await Membership.vinyl.count() == 0


async def test_unsaved_instance_cannot_be_deleted():
    with pytest.raises(ValueError, match="id attribute is set to None"):
        await Author.vinyl.model(name="x").delete()


async def test_delete_inside_atomic_rolls_back_with_the_block():
    import vinyl

    seen = []

    async def receiver(sender, instance, **kwargs):
        seen.append(await Book.vinyl.filter(author_id=instance.pk).count())

    ann = await Author.vinyl.create(name="Ann")
    await Book.vinyl.create(title="B", author=ann)
    pre_delete.connect(receiver, sender=Author)
    try:
        with pytest.raises(LookupError):
            async with vinyl.atomic():
                assert (await ann.delete())[0] == 2
                assert await Author.vinyl.count() == 0
                raise LookupError
    finally:
        pre_delete.disconnect(receiver, sender=Author)
    assert seen == [1]
    assert await Author.vinyl.count() == 1 and await Book.vinyl.count() == 1
