"""Pickling what vinyl hands out, as Django pickles its own: a query (the way
Django's docs keep a queryset), an instance (a cache backend stores it), a
model class."""

from __future__ import annotations

import copy
import pickle

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Count

from tests.testapp.models import Author, Book, Tag
from vinyl._vinylize import is_vinyl_model, vinyl_model
from vinyl.translate.plan_cache import plan_cache_for

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def _library() -> tuple[Author, Book]:
    ann = await Author.vinyl.create(name="Ann", age=40)
    await Author.vinyl.create(name="Bob", age=30)
    book = await Book.vinyl.create(title="Dune", author=ann, pages=412)
    await Book.vinyl.create(title="Emma", author=ann, pages=300)
    return ann, book


async def test_a_query_pickles_and_a_queryset_built_on_it_answers_as_the_original(backend: str) -> None:
    await _library()
    original = Author.vinyl.filter(age__gte=20).annotate(n=Count("book")).order_by("-n", "name")
    rebuilt = Author.vinyl.all()
    rebuilt.query = pickle.loads(pickle.dumps(original.query))
    rows = await rebuilt
    assert [(a.name, a.n) for a in rows] == [(a.name, a.n) for a in await original] == [("Ann", 2), ("Bob", 0)]
    assert all(is_vinyl_model(type(a)) for a in rows)
    # Django's own answer to the same query, kept the same way.
    sync = settings.SYNC_ALIAS[backend]

    def on_django() -> list:
        qs = Author.objects.using(sync).all()
        qs.query = pickle.loads(pickle.dumps(Author.objects.filter(age__gte=20).annotate(n=Count("book")).order_by("-n", "name").query))
        return [(a.name, a.n) for a in qs]

    assert await sync_to_async(on_django)() == [("Ann", 2), ("Bob", 0)]


async def test_a_queryset_copied_or_pickled_answers_through_the_originals_plan(backend: str) -> None:
    await _library()
    original = Author.vinyl.filter(age__gte=20).order_by("name")
    assert [a.name for a in await original] == ["Ann", "Bob"]
    cache = plan_cache_for("vinyl_default")
    plans, hits = len(cache.plans()), cache.hits
    # (Pickled unbuilt, as a shape Django accepted before leaves it: a built
    # one holds Django's QuerySet, which runs its query to pickle itself.)
    again = Author.vinyl.filter(age__gte=20).order_by("name")
    assert again._built is None
    for copied in (copy.copy(original), copy.deepcopy(original), pickle.loads(pickle.dumps(again))):
        # The same recipe object (vinyl.translate.recipes): its plan's key.
        assert copied._recipe is original._recipe
        assert [a.name for a in await copied] == ["Ann", "Bob"]
        assert [a.name for a in await copied.filter(age__lt=35)] == ["Bob"]
    assert len(cache.plans()) == plans + 1  # (the filter(age__lt) shape's)
    assert cache.hits == hits + 5


async def test_an_instance_comes_back_as_a_vinyl_instance_with_its_state_and_loaded_relations(backend: str) -> None:
    ann, _ = await _library()
    book = await Book.vinyl.select_related("author").get(title="Dune")
    loaded = pickle.loads(pickle.dumps(book))
    assert type(loaded) is type(book) is vinyl_model(Book)
    assert (loaded.pk, loaded.title, loaded.pages, loaded.author_id) == (book.pk, "Dune", 412, ann.pk)
    assert (loaded._state.db, loaded._state.adding) == (book._state.db, False)
    assert type(loaded["author"]) is vinyl_model(Author) and loaded["author"].name == "Ann"
    assert (await loaded.author).name == "Ann"  # a query, as on any vinyl instance
    loaded.pages = 500
    await loaded.save(update_fields=["pages"])
    assert (await Book.vinyl.get(pk=book.pk)).pages == 500
    # A new, unsaved instance stays one.
    fresh = pickle.loads(pickle.dumps(vinyl_model(Tag)(name="x")))
    assert type(fresh) is vinyl_model(Tag) and fresh._state.adding and fresh.pk is None


def test_a_vinyl_class_pickles_as_itself_and_the_models_class_as_the_models() -> None:
    assert pickle.loads(pickle.dumps(vinyl_model(Author))) is vinyl_model(Author)
    assert pickle.loads(pickle.dumps(Author)) is Author
    instance = pickle.loads(pickle.dumps(Author(name="plain")))
    assert type(instance) is Author and instance.name == "plain"
