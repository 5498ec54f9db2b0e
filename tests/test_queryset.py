"""QuerySet evaluation and terminal methods, on every backend."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import django
import pytest

import vinyl
from django.core.exceptions import FieldError
from django.db.models import Count, F, Max, Q, Sum

from tests.testapp.models import Author, Book
from tests.txhelpers import returned

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def make_authors(*names: str) -> list[Author]:
    return [await Author.vinyl.create(name=name, age=i * 10) for i, name in enumerate(names, 1)]


async def test_create_returns_a_saved_vinyl_instance():
    ann = await Author.vinyl.create(name="Ann", age=30)
    assert ann.pk is not None
    assert isinstance(ann, Author)
    assert type(ann) is Author.vinyl.model
    assert ann._state.adding is False
    assert (await Author.vinyl.get(pk=ann.pk)).name == "Ann"


async def test_await_queryset_gives_a_list_of_instances():
    await make_authors("Ann", "Bob", "Cy")
    result = await Author.vinyl.filter(name__startswith="A").order_by("-id")
    assert isinstance(result, list)
    assert [a.name for a in result] == ["Ann"]
    assert all(type(a) is Author.vinyl.model for a in await Author.vinyl.all())


async def test_filter_exclude_order_and_slice():
    await make_authors("Ann", "Bob", "Cy", "Dee")
    names = [a.name for a in await Author.vinyl.exclude(name="Bob").order_by("-name")[:2]]
    assert names == ["Dee", "Cy"]
    names = [a.name for a in await Author.vinyl.order_by("name")[1:3]]
    assert names == ["Bob", "Cy"]
    assert [a.name for a in await Author.vinyl.filter(Q(name="Ann") | Q(age__gte=40))] == ["Ann", "Dee"]
    assert [a.name for a in await Author.vinyl.order_by("name").reverse()[:1]] == ["Dee"]


async def test_chained_calls_of_shapes_accepted_before_are_new_querysets_checked_as_django():
    # The second round finds each call's shape accepted before (no Django
    # query built at the call): the answers, the new QuerySet per call and
    # the errors at the call are the first round's.
    await make_authors("Ann", "Bob", "Cy")
    for _ in range(2):
        base = Author.vinyl.filter(age__gte=10)
        ordered = base.order_by("name")
        assert ordered is not base and base.order_by("name") is not ordered
        first = ordered[:2]
        assert first is not ordered and ordered[:2] is not first
        assert [a.name for a in await first] == ["Ann", "Bob"]
        assert [a.name for a in await ordered] == ["Ann", "Bob", "Cy"]
        assert [a.name for a in await base] == ["Ann", "Bob", "Cy"]
        assert [a.name for a in await base.select_related().order_by("-name")[:2]] == ["Cy", "Bob"]
        assert (await Author.vinyl.get(name="Bob")).name == "Bob"
        assert await Author.vinyl.filter(age__gte=20).count() == 2
        with pytest.raises(FieldError):
            base.order_by("nope")
        with pytest.raises(FieldError):
            Author.vinyl.filter(nope=1)
        with pytest.raises(Author.DoesNotExist):
            await Author.vinyl.get(name="nobody")


async def test_index_is_awaitable_and_raises_index_error_out_of_range():
    await make_authors("Ann", "Bob")
    assert (await Author.vinyl.order_by("name")[1]).name == "Bob"
    with pytest.raises(IndexError):
        await Author.vinyl.order_by("name")[5]


async def test_get_raises_does_not_exist_and_multiple_objects_returned():
    await make_authors("Ann", "Ann2")
    with pytest.raises(Author.DoesNotExist):
        await Author.vinyl.get(name="nobody")
    with pytest.raises(Author.MultipleObjectsReturned):
        await Author.vinyl.get(name__startswith="Ann")


async def test_first_last_latest_earliest():
    await make_authors("Ann", "Bob", "Cy")
    assert (await Author.vinyl.first()).name == "Ann"
    assert (await Author.vinyl.last()).name == "Cy"
    assert (await Author.vinyl.latest()).name == "Cy"
    assert (await Author.vinyl.earliest("age")).name == "Ann"
    assert await Author.vinyl.filter(name="zz").first() is None


async def test_count_exists_contains():
    ann, _ = await make_authors("Ann", "Bob")
    assert await Author.vinyl.count() == 2
    assert await Author.vinyl.filter(name="Bob").count() == 1
    assert await Author.vinyl.exists() is True
    assert await Author.vinyl.filter(name="zz").exists() is False
    assert await Author.vinyl.contains(ann) is True
    assert await Author.vinyl.exclude(pk=ann.pk).contains(ann) is False


async def test_aggregate_and_annotate():
    ann, bob = await make_authors("Ann", "Bob")
    await Book.vinyl.create(title="a", author=ann, pages=10)
    await Book.vinyl.create(title="b", author=ann, pages=20)
    await Book.vinyl.create(title="c", author=bob, pages=5)
    assert await Book.vinyl.aggregate(total=Sum("pages"), most=Max("pages")) == {"total": 35, "most": 20}
    counted = await Author.vinyl.annotate(n=Count("book")).order_by("name").values_list("name", "n")
    assert counted == [("Ann", 2), ("Bob", 1)]


async def test_values_and_values_list():
    await make_authors("Ann", "Bob")
    assert await Author.vinyl.order_by("name").values("name") == [{"name": "Ann"}, {"name": "Bob"}]
    assert await Author.vinyl.order_by("name").values_list("name", flat=True) == ["Ann", "Bob"]
    rows = await Author.vinyl.order_by("name").values_list("name", "age", named=True)
    assert rows[0].name == "Ann" and rows[0].age == 10


async def test_in_bulk():
    ann, bob = await make_authors("Ann", "Bob")
    found = await Author.vinyl.in_bulk([ann.pk, bob.pk])
    assert {k: v.name for k, v in found.items()} == {ann.pk: "Ann", bob.pk: "Bob"}
    by_name = await Author.vinyl.in_bulk(["Ann"], field_name="email")
    assert by_name == {}


async def test_update_returns_rows_matched_and_accepts_f():
    await make_authors("Ann", "Bob")
    assert await Author.vinyl.filter(name="Ann").update(age=F("age") + 1) == 1
    # Rows matched, not rows changed: a no-op update still counts.
    assert await Author.vinyl.update(name="Same") == 2
    assert await Author.vinyl.update(name="Same") == 2
    assert (await Author.vinyl.order_by("id").first()).age == 11


async def test_queryset_delete_returns_django_counts():
    ann, bob = await make_authors("Ann", "Bob")
    await Book.vinyl.create(title="a", author=ann)
    count, per_model = await Author.vinyl.filter(name="Ann").delete()
    assert count == 2
    assert per_model == {"testapp.Author": 1, "testapp.Book": 1}
    assert await Author.vinyl.count() == 1


async def test_instance_save_updates_and_update_fields():
    ann = await Author.vinyl.create(name="Ann", age=1)
    ann.name = "Anne"
    ann.age = 2
    await ann.save(update_fields=["name"])
    fresh = await Author.vinyl.get(pk=ann.pk)
    assert (fresh.name, fresh.age) == ("Anne", 1)
    await ann.save()
    assert (await Author.vinyl.get(pk=ann.pk)).age == 2


async def test_save_of_a_deleted_row_raises_database_error():
    from django.db import DatabaseError

    ann = await Author.vinyl.create(name="Ann")
    await Author.vinyl.filter(pk=ann.pk).delete()
    with pytest.raises(DatabaseError):
        await ann.save()


async def test_save_of_an_unsaved_instance_says_to_use_create():
    with pytest.raises(ValueError, match="create"):
        await Author.vinyl.model(name="x").save()


async def test_instance_delete_and_refresh_from_db():
    ann = await Author.vinyl.create(name="Ann", age=5)
    await Author.vinyl.filter(pk=ann.pk).update(age=6)
    await ann.refresh_from_db()
    assert ann.age == 6
    await Author.vinyl.filter(pk=ann.pk).update(age=7, name="X")
    await ann.refresh_from_db(fields=["age"])
    assert (ann.age, ann.name) == (7, "Ann")
    assert await ann.delete() == (1, {"testapp.Author": 1})
    assert await Author.vinyl.count() == 0


async def test_async_for_and_iterator_stream_every_row():
    await Author.vinyl.bulk_create([Author.vinyl.model(name=f"a{i}") for i in range(25)])
    names = [a.name async for a in Author.vinyl.order_by("id")]
    assert names == [f"a{i}" for i in range(25)]
    chunked = [a.name async for a in Author.vinyl.order_by("id").iterator(chunk_size=4)]
    assert chunked == names
    values = [v async for v in Author.vinyl.order_by("id").values_list("name", flat=True).iterator(chunk_size=7)]
    assert values == names


async def test_breaking_out_of_async_for_releases_the_connection():
    await make_authors("Ann", "Bob", "Cy")
    async with aclosing(Author.vinyl.iterator(chunk_size=1)) as rows:
        async for _ in rows:
            break
    # (Its connection, idle again, may be kept as a spare for the next
    # statement: returned() gives spares back, what is left is held.)
    assert await returned() == 0
    # Without aclosing, the event loop finalizes the generator soon after.
    async for _ in Author.vinyl.iterator(chunk_size=1):
        break
    for _ in range(500):
        if await returned() == 0:
            break
        await asyncio.sleep(0.01)
    assert await returned() == 0
    assert await Author.vinyl.count() == 3


async def test_none_returns_nothing_without_sql():
    await make_authors("Ann")
    assert await Author.vinyl.none() == []
    assert await Author.vinyl.none().count() == 0
    assert await Author.vinyl.none().exists() is False


async def test_distinct_dates_and_union():
    import datetime

    ann = await Author.vinyl.create(name="Ann")
    for day in (1, 1, 2):
        await Book.vinyl.create(title=f"b{day}", author=ann, published=datetime.date(2024, 3, day))
    titles = await Book.vinyl.values_list("title", flat=True).distinct().order_by("title")
    assert titles == ["b1", "b2"]
    days = await Book.vinyl.dates("published", "day")
    assert days == [datetime.date(2024, 3, 1), datetime.date(2024, 3, 2)]
    both = await Book.vinyl.filter(title="b1").order_by().values_list("title", flat=True).union(
        Book.vinyl.filter(title="b2").order_by().values_list("title", flat=True)
    ).order_by("title")
    assert both == ["b1", "b2"]


async def test_vinyl_querysets_work_as_subqueries_and_in_lookups():
    from django.db.models import Exists, OuterRef, Subquery

    ann, bob = await make_authors("Ann", "Bob")
    await Book.vinyl.create(title="a", author=ann)
    with_books = await Author.vinyl.filter(pk__in=Book.vinyl.values("author"))
    assert [a.name for a in with_books] == ["Ann"]
    flagged = await Author.vinyl.annotate(
        has=Exists(Book.vinyl.filter(author=OuterRef("pk")))
    ).order_by("name").values_list("name", "has")
    assert flagged == [("Ann", True), ("Bob", False)]
    latest = await Author.vinyl.annotate(
        t=Subquery(Book.objects.filter(author=OuterRef("pk")).values("title")[:1])
    ).order_by("name").values_list("t", flat=True)
    assert latest == ["a", None]


async def test_explain_returns_the_plan():
    await make_authors("Ann")
    plan = await Author.vinyl.filter(name="Ann").explain()
    assert isinstance(plan, str) and plan


async def test_select_related_value_is_read_with_item_access():
    ann = await Author.vinyl.create(name="Ann")
    book = await Book.vinyl.create(title="a", author=ann)
    loaded = await Book.vinyl.select_related("author").get(pk=book.pk)
    assert loaded["author"].name == "Ann"


async def test_a_save_override_using_django_atomic_keeps_working():
    from tests.testapp.models import Ledger

    entry = await Ledger.vinyl.create(label="a")
    assert entry.saves == 1
    entry.label = "b"
    await entry.save()
    fresh = await Ledger.vinyl.get(pk=entry.pk)
    assert (fresh.label, fresh.saves) == ("b", 2)


async def test_reads_from_managers_and_related_managers_run_on_their_querysets():
    # get/count/exists run from the manager's get_queryset(): a related
    # manager's relation filter applies, plan served or not.
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    await Book.vinyl.create(title="a", author=ann)
    await Book.vinyl.create(title="b", author=bob)
    for _ in range(3):  # compiled, then served by the plan
        assert await ann.book_set.count() == 1
        assert await ann.book_set.exists()
        assert (await ann.book_set.get(title="a")).title == "a"
        with pytest.raises(Book.DoesNotExist):
            await ann.book_set.get(title="b")
        assert (await Author.vinyl.get(name="Bob")).pk == bob.pk
        assert await Author.vinyl.count() == 2
        assert await Author.vinyl.filter(name="Cy").exists() is False


async def test_select_related_without_fields_warns_at_the_call_as_django():
    # Django 6.1 deprecates it: one warning per call, pointing at the caller.
    # vinyl runs the step on Django's QuerySet at the call and again when it
    # rebuilds it; the application sees Django's warnings, no more.
    import warnings

    author = await Author.vinyl.create(name="Ann")
    await Book.vinyl.create(title="x", author=author)

    def calls(manager_of) -> list:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            first = manager_of(Book).select_related()
            second = manager_of(Book).filter(title="x").select_related()
            third = manager_of(Book).select_related()  # a shape seen before
        return [first, second, third], [(w.category, str(w.message), w.filename) for w in seen]

    django_querysets, django_warnings = calls(lambda model: model.objects)
    vinyl_querysets, vinyl_warnings = calls(lambda model: model.vinyl)
    assert vinyl_warnings == django_warnings
    assert len(vinyl_warnings) == (3 if django.VERSION >= (6, 1) else 0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for qs in vinyl_querysets:
            assert [(book.title, book["author"].name) for book in await qs] == [("x", "Ann")]
    assert seen == []  # reading them warns no more
