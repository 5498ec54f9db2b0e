"""Django's model API that queries, awaited on vinyl instances: validation,
get_next_by_FOO / get_previous_by_FOO, refresh_from_db(from_queryset=...)."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError

from tests.nativeapp.models import Slot
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")

NOON = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)


async def slot(code: str, room: str, day: int, **kwargs) -> Slot:
    return await Slot.vinyl.create(code=code, room=room, day=datetime.date(2024, 5, day), starts=NOON + datetime.timedelta(days=day), **kwargs)


async def test_full_clean_checks_uniqueness_and_constraints_on_vinyls_alias():
    first = await slot("a", "r1", 1)
    await first.full_clean()  # itself is no clash
    clash = Slot.vinyl.model(code="a", room="r1", day=datetime.date(2024, 5, 1), starts=NOON)
    with pytest.raises(ValidationError) as info:
        await clash.full_clean()
    errors = info.value.message_dict
    assert "code" in errors and "__all__" in errors  # unique field, unique_together
    with pytest.raises(ValidationError, match="code"):
        await clash.validate_unique()
    bad = Slot.vinyl.model(code="b", room="r2", day=datetime.date(2024, 5, 2), starts=NOON, seats=0)
    with pytest.raises(ValidationError, match="native_slot_seats"):
        await bad.validate_constraints()
    await Slot.vinyl.model(code="c", room="r3", day=datetime.date(2024, 5, 3), starts=NOON).full_clean()
    # The same answers as Django's sync full_clean.
    await slot("d", "r4", 4)
    assert await Slot.vinyl.count() == 2


async def test_validation_runs_in_the_enclosing_block():
    import vinyl

    async with vinyl.atomic():
        await slot("a", "r1", 1)
        with pytest.raises(ValidationError):
            await Slot.vinyl.model(code="a", room="x", day=datetime.date(2024, 1, 1), starts=NOON).validate_unique()


async def test_get_next_and_previous_by_date():
    one, two, three = await slot("1", "r", 1), await slot("2", "r", 2), await slot("3", "r", 3)
    assert (await two.get_next_by_day()).pk == three.pk
    assert (await two.get_previous_by_day()).pk == one.pk
    assert (await one.get_next_by_starts(room="r")).pk == two.pk
    with pytest.raises(Slot.DoesNotExist):
        await three.get_next_by_day()


async def test_refresh_from_db_from_a_vinyl_queryset():
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    book = await Book.vinyl.create(title="One", author=ann)
    await Book.vinyl.filter(pk=book.pk).update(title="Two", author=bob)
    await book.refresh_from_db(from_queryset=Book.vinyl.select_related("author"))
    assert book.title == "Two" and book["author"].name == "Bob"
    await book.arefresh_from_db(from_queryset=Book.objects.all(), fields=["title"])
    assert book.title == "Two"


def _django_6_1() -> bool:
    import django

    return django.VERSION >= (6, 1)


async def test_fetch_mode_where_django_has_it_and_nothing_is_fetched_on_access():
    """Django 6.1's fetch_mode(); before 6.1 neither Django's QuerySet nor vinyl's has it."""
    assert hasattr(Book.objects.all(), "fetch_mode") is _django_6_1()
    if not _django_6_1():
        with pytest.raises(AttributeError, match="fetch_mode"):
            Book.vinyl.fetch_mode(None)
        return
    from django.core.exceptions import FieldFetchBlocked
    from django.db.models import FETCH_PEERS

    ann = await Author.vinyl.create(name="Ann")
    await Book.vinyl.create(title="One", author=ann)
    books = await Book.vinyl.fetch_mode(FETCH_PEERS).only("title")
    assert books[0]._state.fetch_mode is FETCH_PEERS
    with pytest.raises(FieldFetchBlocked, match="refresh_from_db"):
        books[0].pages  # noqa: B018
    with pytest.raises(FieldFetchBlocked, match="select_related"):
        books[0].author.name  # noqa: B018
    assert (await Book.vinyl.fetch_mode(FETCH_PEERS).select_related("author").get())["author"].name == "Ann"
