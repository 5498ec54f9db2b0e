"""Forward foreign keys and one-to-one relations, both directions."""

from __future__ import annotations

import pytest

from tests.relations.counting import count_queries
from tests.testapp.models import Author, Book, Profile, Publisher

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def make_book(**kwargs) -> Book:
    author = kwargs.pop("author", None) or await Author.vinyl.create(name="Ann")
    return await Book.vinyl.create(title="T", author=author, **kwargs)


async def test_await_forward_fk_queries_every_time():
    book = await make_book()
    with count_queries() as queries:
        first = await book.author
        second = await book.author
    assert len(queries) == 2
    assert first == second and first is not second
    assert type(first) is Author.vinyl.model
    assert first.name == "Ann"


async def test_await_forward_fk_sees_changes_made_elsewhere():
    book = await make_book()
    await Author.vinyl.filter(pk=book.author_id).update(name="Renamed")
    assert (await book.author).name == "Renamed"


async def test_await_null_forward_fk_gives_none_without_query():
    book = await make_book()
    assert book.publisher_id is None
    with count_queries() as queries:
        assert await book.publisher is None
    assert queries == []


async def test_forward_fk_is_not_cached_after_await():
    book = await Book.vinyl.get(pk=(await make_book()).pk)
    await book.author
    with pytest.raises(KeyError):
        book["author"]


async def test_assigning_an_instance_sets_the_key_and_the_loaded_value():
    book = await make_book()
    bob = await Author.vinyl.create(name="Bob")
    book.author = bob
    assert book.author_id == bob.pk
    assert book["author"] is bob
    await book.save()
    assert (await Book.vinyl.get(pk=book.pk)).author_id == bob.pk
    assert (await book.author).name == "Bob"


async def test_assigning_the_key_forgets_a_stale_loaded_value():
    book = await make_book()
    bob = await Author.vinyl.create(name="Bob")
    book = await Book.vinyl.select_related("author").get(pk=book.pk)
    assert book["author"].name == "Ann"
    book.author_id = bob.pk
    with pytest.raises(KeyError):
        book["author"]
    assert (await book.author).name == "Bob"


async def test_assigning_none_to_a_nullable_fk():
    publisher = await Publisher.vinyl.create(name="P")
    book = await make_book(publisher=publisher)
    book.publisher = None
    assert book.publisher_id is None
    assert book["publisher"] is None
    await book.save(update_fields=["publisher"])
    assert (await Book.vinyl.get(pk=book.pk)).publisher_id is None


async def test_assigning_a_wrong_type_raises_like_django():
    book = await make_book()
    with pytest.raises(ValueError, match="must be a \"Author\" instance"):
        book.author = await Publisher.vinyl.create(name="P")


async def test_plain_model_instance_can_be_assigned():
    book = await make_book()
    bob = await Author.vinyl.create(name="Bob")
    plain = Author(pk=bob.pk, name="Bob")
    book.author = plain
    await book.save()
    assert (await Book.vinyl.get(pk=book.pk)).author_id == bob.pk


async def test_await_reverse_one_to_one():
    ann = await Author.vinyl.create(name="Ann")
    await Profile.vinyl.create(author=ann, bio="hi")
    profile = await ann.profile
    assert type(profile) is Profile.vinyl.model
    assert profile.bio == "hi"
    assert (await profile.author) == ann


async def test_missing_reverse_one_to_one_raises_related_object_does_not_exist():
    ann = await Author.vinyl.create(name="Ann")
    with pytest.raises(Profile.DoesNotExist) as info:
        await ann.profile
    assert isinstance(info.value, Author.profile.RelatedObjectDoesNotExist)
    assert isinstance(info.value, Author.vinyl.model.profile.RelatedObjectDoesNotExist)
    assert "Author has no profile" in str(info.value)


async def test_reading_a_relation_without_await_gives_an_awaitable_and_no_query():
    book = await make_book()
    with count_queries() as queries:
        pending = book.author
        repr(pending)
    assert queries == []
    assert (await pending).name == "Ann"


async def test_django_model_descriptors_are_untouched():
    assert type(Book.__dict__["author"]).__module__.startswith("django.")
    assert type(Author.__dict__["profile"]).__module__.startswith("django.")
    assert type(Author.__dict__["book_set"]).__module__.startswith("django.")
