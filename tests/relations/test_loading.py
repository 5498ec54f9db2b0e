"""select_related and prefetch_related, read through item access."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Prefetch

import vinyl

from tests.relations.counting import count_queries
from tests.testapp.models import Author, Book, Profile, Publisher, Tag
from vinyl.exceptions import RelationNotLoaded

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def library() -> dict:
    """Two authors (one with a profile), three books, tags, one publisher."""
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    await Profile.vinyl.create(author=ann, bio="ann's")
    pub = await Publisher.vinyl.create(name="Pub")
    b1 = await Book.vinyl.create(title="A1", author=ann, publisher=pub)
    b2 = await Book.vinyl.create(title="A2", author=ann)
    b3 = await Book.vinyl.create(title="B1", author=bob)
    red, blue = await Tag.vinyl.create(name="red"), await Tag.vinyl.create(name="blue")
    await b1.tags.add(red, blue)
    await b3.tags.add(blue)
    return {"ann": ann, "bob": bob, "pub": pub, "books": [b1, b2, b3], "red": red, "blue": blue}


async def test_select_related_is_one_query_and_nested_and_nullable():
    await library()
    with count_queries() as queries:
        books = await Book.vinyl.select_related("author__profile", "publisher").order_by("id")
    assert len(queries) == 1
    with count_queries() as queries:
        assert [b["author"].name for b in books] == ["Ann", "Ann", "Bob"]
        assert books[0]["author"]["profile"].bio == "ann's"
        assert books[2]["author"]["profile"] is None  # loaded, and null
        assert books[0]["publisher"].name == "Pub"
        assert books[1]["publisher"] is None
    assert queries == []
    assert type(books[0]["author"]) is Author.vinyl.model
    assert type(books[0]["author"]["profile"]) is Profile.vinyl.model


async def test_select_related_reverse_one_to_one():
    await library()
    with count_queries() as queries:
        authors = await Author.vinyl.select_related("profile").order_by("id")
    assert len(queries) == 1
    assert authors[0]["profile"].bio == "ann's"
    assert authors[1]["profile"] is None


def _joined_state(obj, parent=None) -> tuple:
    """An instance as select_related left it: its class's model, its loaded
    values, and the same for each object in its related-object cache (the
    object it was joined from named as such)."""
    values = {k: v for k, v in obj.__dict__.items() if k != "_state"}
    cache = {
        name: "<parent>" if other is not None and other is parent else None if other is None else _joined_state(other, obj)
        for name, other in obj._state.fields_cache.items()
    }
    return (obj._meta.concrete_model._meta.label, obj._state.adding, values, cache)


@pytest.mark.parametrize(
    "model, related, only",
    [
        (Book, ("author__profile", "publisher"), ()),
        (Author, ("profile",), ()),
        (Profile, ("author",), ()),
        (Book, ("author",), ("title", "author__name")),
    ],
    ids=["nested-and-nullable", "reverse-one-to-one", "one-to-one", "only"],
)
async def test_select_related_rows_are_built_as_djangos_every_time(backend, model, related, only):
    # The first query of a shape compiles it, the next ones run its plan,
    # whose builder makes each row's objects in one generated loop.
    await library()
    sync = settings.SYNC_ALIAS[backend]

    def django_rows() -> list:
        qs = model.objects.using(sync).select_related(*related).order_by("id")
        return [_joined_state(obj) for obj in (qs.only(*only) if only else qs)]

    expected = await sync_to_async(django_rows)()
    for _ in range(3):
        qs = model.vinyl.select_related(*related).order_by("id")
        got = [_joined_state(obj) for obj in await (qs.only(*only) if only else qs)]
        assert got == expected


def _state_as_left(obj, db: str, parent=None) -> tuple:
    """An instance exactly as it was built, read without creating anything:
    its attributes in order, its state's attributes (a related-object cache
    only where one was made; the alias as whether it is ``db``), and the
    same for each cached object."""
    state = dict(vars(obj._state))
    state["db"] = state["db"] == db
    cache = state.pop("fields_cache", None)
    state.pop("fetch_mode", None)  # (Django 6.1: an object per queryset)
    values = [(k, v) for k, v in vars(obj).items() if k != "_state"]
    cached = None
    if cache is not None:
        cached = {
            name: "<parent>" if other is not None and other is parent else None if other is None else _state_as_left(other, db, obj)
            for name, other in cache.items()
        }
    return (type(obj)._meta.concrete_model._meta.label, values, state, cached)


QUERIES = {
    "select-related": lambda m: m.select_related("author", "publisher").order_by("id"),
    "select-related-nested": lambda m: m.select_related("author__profile").order_by("id"),
    "reverse-one-to-one": lambda m: m.select_related("author").order_by("-id"),
    # DISTINCT ordered by a column it does not select: the compiler adds
    # that column after the selected ones (rows wider than the model's).
    "distinct-ordered-by-related": lambda m: m.distinct().order_by("author__name", "id"),
    "distinct-select-related-ordered-by-related": lambda m: m.select_related("author").distinct().order_by("publisher__name", "id"),
    "only": lambda m: m.only("title", "author_id").order_by("id"),
}


@pytest.mark.parametrize("shape", list(QUERIES))
async def test_planned_rows_leave_instances_and_states_exactly_as_django(backend, shape):
    # Each attribute in Django's order, and no state attribute Django's
    # from_db and populators leave out (a joined object that caches nothing
    # has no related-object cache until one is read), on the plan's path
    # (every call after the first) as on the first.
    await library()
    sync = settings.SYNC_ALIAS[backend]
    model = Profile if shape == "reverse-one-to-one" else Book
    expected = await sync_to_async(lambda: [_state_as_left(o, sync) for o in QUERIES[shape](model.objects.using(sync))])()
    assert expected
    for _ in range(3):
        qs = QUERIES[shape](model.vinyl)
        got = [_state_as_left(o, qs.db) for o in await qs]
        assert got == expected


async def test_select_related_plans_build_rows_without_djangos_populators(monkeypatch):
    await library()
    for _ in range(2):  # the shape's plan is made
        await Book.vinyl.select_related("author__profile", "publisher").order_by("id")
    from django.db.models import query

    def populate(*args: object) -> None:
        raise AssertionError("a plan built a joined object through RelatedPopulator.populate")

    monkeypatch.setattr(query.RelatedPopulator, "populate", populate)
    hits = vinyl.plan_cache_info().hits
    books = await Book.vinyl.select_related("author__profile", "publisher").order_by("id")
    assert vinyl.plan_cache_info().hits == hits + 1
    assert books[0]["author"]["profile"].bio == "ann's" and books[1]["publisher"] is None


async def test_select_related_objects_are_vinyl_so_awaiting_works():
    lib = await library()
    book = await Book.vinyl.select_related("author").get(pk=lib["books"][0].pk)
    profile = await book["author"].profile
    assert profile.bio == "ann's"


async def test_prefetch_reverse_fk_is_two_queries_and_a_list():
    await library()
    with count_queries() as queries:
        authors = await Author.vinyl.prefetch_related("book_set").order_by("id")
    assert len(queries) == 2
    with count_queries() as queries:
        books = authors[0]["book_set"]
        assert isinstance(books, list)
        assert sorted(b.title for b in books) == ["A1", "A2"]
        assert [b.title for b in authors[1]["book_set"]] == ["B1"]
        assert books[0]["author"] is authors[0]
    assert queries == []
    assert type(books[0]) is Book.vinyl.model


async def test_prefetch_forward_fk_is_two_queries_through_plans(backend):
    lib = await library()
    for _ in range(2):  # the second time through the plans of the first
        hits = vinyl.plan_cache_info().hits
        with count_queries() as queries:
            books = await Book.vinyl.prefetch_related("author", "publisher").order_by("id")
        assert len(queries) == 3
    assert vinyl.plan_cache_info().hits - hits == 3
    with count_queries() as queries:
        assert [b["author"].name for b in books] == ["Ann", "Ann", "Bob"]
        assert books[0]["author"] is books[1]["author"]  # one instance per row, as Django's
        assert books[0]["publisher"].name == "Pub"
        assert books[1]["publisher"] is None  # loaded, and null
    assert queries == []
    assert type(books[0]["author"]) is Book.vinyl.model._meta.get_field("author").related_model.vinyl.model
    sync = settings.SYNC_ALIAS[backend]
    django_books = await sync_to_async(
        lambda: list(Book.objects.using(sync).prefetch_related("author", "publisher").order_by("id"))
    )()
    for mine, theirs in zip(books, django_books):
        assert mine._state.fields_cache.keys() == theirs._state.fields_cache.keys()
        assert mine["author"].pk == theirs.author.pk and mine["author"].name == theirs.author.name
    assert books[2]["author"].pk == lib["bob"].pk


async def test_prefetch_many_to_many_both_sides():
    await library()
    with count_queries() as queries:
        books = await Book.vinyl.prefetch_related("tags").order_by("id")
        tags = await Tag.vinyl.prefetch_related("book_set").order_by("name")
    assert len(queries) == 4
    assert sorted(t.name for t in books[0]["tags"]) == ["blue", "red"]
    assert books[1]["tags"] == []
    assert [t.name for t in tags] == ["blue", "red"]
    assert sorted(b.title for b in tags[0]["book_set"]) == ["A1", "B1"]
    assert [b.title for b in tags[1]["book_set"]] == ["A1"]


async def test_nested_prefetch_is_one_query_per_level():
    await library()
    with count_queries() as queries:
        authors = await Author.vinyl.prefetch_related("book_set__tags").order_by("id")
    assert len(queries) == 3
    with count_queries() as queries:
        first = sorted(authors[0]["book_set"], key=lambda b: b.title)
        assert sorted(t.name for t in first[0]["tags"]) == ["blue", "red"]
        assert first[1]["tags"] == []
        assert [t.name for t in authors[1]["book_set"][0]["tags"]] == ["blue"]
    assert queries == []


async def test_many_to_many_and_nested_prefetches_run_through_plans(backend):
    await library()
    sync = settings.SYNC_ALIAS[backend]
    lookups = [("tags",), ("book_set__tags", "book_set__author")]
    for _ in range(2):  # the second time through the plans of the first
        hits = vinyl.plan_cache_info().hits
        books = await Book.vinyl.prefetch_related(*lookups[0]).order_by("id")
        authors = await Author.vinyl.prefetch_related(*lookups[1]).order_by("id")
        tags = await Tag.vinyl.prefetch_related("book_set").order_by("name")
    assert vinyl.plan_cache_info().hits - hits == 2 + 3 + 2  # book_set holds each book's author

    def as_django() -> tuple:
        return (
            list(Book.objects.using(sync).prefetch_related(*lookups[0]).order_by("id")),
            list(Author.objects.using(sync).prefetch_related(*lookups[1]).order_by("id")),
            list(Tag.objects.using(sync).prefetch_related("book_set").order_by("name")),
        )

    django_books, django_authors, django_tags = await sync_to_async(as_django)()

    def names(objs: list) -> list:
        return sorted((o.pk, getattr(o, "name", None) or getattr(o, "title", None)) for o in objs)

    for mine, theirs in zip(books, django_books):
        assert names(mine["tags"]) == names(theirs.tags.all())
        assert [t.__dict__.get("_prefetch_related_val_book_id") for t in mine["tags"]] == [
            t.__dict__.get("_prefetch_related_val_book_id") for t in theirs.tags.all()
        ]
    for mine, theirs in zip(authors, django_authors):
        assert names(mine["book_set"]) == names(theirs.book_set.all())
        for book, django_book in zip(
            sorted(mine["book_set"], key=lambda b: b.pk), sorted(theirs.book_set.all(), key=lambda b: b.pk)
        ):
            assert names(book["tags"]) == names(django_book.tags.all())
            assert book["author"] is mine
    for mine, theirs in zip(tags, django_tags):
        assert names(mine["book_set"]) == names(theirs.book_set.all())
    # Chaining on a prefetched relation queries with Django's filter on the owner.
    for mine, theirs in zip(books, django_books):
        got = await mine.tags.filter(name__in=["red", "blue"]).order_by("name").values_list("name", flat=True)
        assert got == await sync_to_async(
            lambda: list(theirs.tags.filter(name__in=["red", "blue"]).order_by("name").values_list("name", flat=True))
        )()


async def test_a_nested_prefetch_back_to_instances_prefetched_before_reads_no_more(backend):
    # book_set__author__book_set: the books' authors are the instances read
    # first, whose book_set is prefetched already: Django's prefetcher reads
    # neither level again (its query count), and neither does vinyl, though
    # the instances of a first level and of a reverse relation's rows are
    # not looked at for a prefetched relation (all built by the read).
    await library()
    sync = settings.SYNC_ALIAS[backend]
    lookups = ("book_set__author__book_set", "book_set__tags__book_set")
    with count_queries() as queries:
        authors = await Author.vinyl.prefetch_related(*lookups).order_by("id")

    def as_django() -> tuple:
        from django.db import connections
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connections[sync]) as captured:
            found = list(Author.objects.using(sync).prefetch_related(*lookups).order_by("id"))
        return found, len(captured)

    theirs, count = await sync_to_async(as_django)()
    assert len(queries) == count == 4  # authors, books, tags, the tags' books
    for mine, django_author in zip(authors, theirs):
        books = mine["book_set"]
        assert sorted(b.pk for b in books) == sorted(b.pk for b in django_author.book_set.all())
        for book in books:
            assert book["author"] is mine
            assert book["author"]._prefetched_objects_cache["book_set"] is mine._prefetched_objects_cache["book_set"]
            for tag in book["tags"]:
                django_tag = next(t for b in django_author.book_set.all() if b.pk == book.pk for t in b.tags.all() if t.pk == tag.pk)
                assert sorted(b.pk for b in tag["book_set"]) == sorted(b.pk for b in django_tag.book_set.all())


async def test_prefetch_forward_fk_and_reverse_one_to_one():
    await library()
    with count_queries() as queries:
        books = await Book.vinyl.prefetch_related("author__profile", "publisher").order_by("id")
    assert len(queries) == 4
    assert books[0]["author"].name == "Ann"
    assert books[0]["author"]["profile"].bio == "ann's"
    assert books[2]["author"]["profile"] is None
    assert books[1]["publisher"] is None


@pytest.mark.parametrize("manager", ["vinyl", "objects"])
async def test_prefetch_object_with_queryset_and_to_attr(manager):
    await library()
    source = getattr(Book, manager)
    long_titles = Prefetch("book_set", queryset=source.filter(title__endswith="1"), to_attr="firsts")
    with count_queries() as queries:
        authors = await Author.vinyl.prefetch_related(long_titles).order_by("id")
    assert len(queries) == 2
    assert [b.title for b in authors[0]["firsts"]] == ["A1"]
    assert [b.title for b in authors[1]["firsts"]] == ["B1"]
    assert type(authors[0]["firsts"][0]) is Book.vinyl.model
    with pytest.raises(KeyError):
        authors[0]["book_set"]


async def test_prefetch_object_with_queryset_into_the_relation_and_nested():
    await library()
    tags = Prefetch("tags", queryset=Tag.objects.filter(name="red"))
    books = await Book.vinyl.prefetch_related(tags).order_by("id")
    assert [t.name for t in books[0]["tags"]] == ["red"]
    assert books[2]["tags"] == []
    assert type(books[0]["tags"][0]) is Tag.vinyl.model
    authors = await Author.vinyl.prefetch_related(
        Prefetch("book_set", queryset=Book.vinyl.order_by("-title")), "book_set__tags"
    ).order_by("id")
    assert [b.title for b in authors[0]["book_set"]] == ["A2", "A1"]
    assert sorted(t.name for t in authors[0]["book_set"][1]["tags"]) == ["blue", "red"]


async def test_prefetch_objects_with_a_vinyl_queryset_run_through_plans(backend):
    lib = await library()
    sync = settings.SYNC_ALIAS[backend]
    for title in ("A", "B", "A"):  # other values, the same plans
        hits = vinyl.plan_cache_info().hits
        books = Prefetch("book_set", queryset=Book.vinyl.filter(title__gte=title).order_by("-title"))
        tags = Prefetch("book_set__tags", queryset=Tag.vinyl.exclude(name="blue"))
        authors = await Author.vinyl.prefetch_related(books, tags).order_by("id")

        def as_django() -> list:
            return list(
                Author.objects.using(sync)
                .prefetch_related(
                    Prefetch("book_set", queryset=Book.objects.filter(title__gte=title).order_by("-title")),
                    Prefetch("book_set__tags", queryset=Tag.objects.exclude(name="blue")),
                )
                .order_by("id")
            )

        expected = await sync_to_async(as_django)()
        for mine, theirs in zip(authors, expected):
            assert [b.title for b in mine["book_set"]] == [b.title for b in theirs.book_set.all()]
            for book, django_book in zip(mine["book_set"], theirs.book_set.all()):
                assert [t.name for t in book["tags"]] == [t.name for t in django_book.tags.all()]
                assert book["author"] is mine
    assert vinyl.plan_cache_info().hits - hits == 3
    # Chaining on the prefetched relation starts from the Prefetch's queryset, as Django's does.
    got = await authors[0].book_set.filter(title__lt="A2").values_list("title", flat=True)
    assert list(got) == await sync_to_async(
        lambda: list(expected[0].book_set.filter(title__lt="A2").values_list("title", flat=True))
    )()
    assert lib["ann"].pk == authors[0].pk


async def test_prefetch_to_attr_single_valued():
    await library()
    books = await Book.vinyl.prefetch_related(Prefetch("author", to_attr="writer")).order_by("id")
    assert books[0]["writer"].name == "Ann"


async def test_item_access_to_an_unloaded_relation_raises_key_error_saying_how():
    lib = await library()
    book = await Book.vinyl.get(pk=lib["books"][0].pk)
    with pytest.raises(KeyError) as info:
        book["author"]
    assert isinstance(info.value, RelationNotLoaded)
    message = str(info.value)
    assert "'author'" in message and "select_related('author')" in message
    assert "await obj.author" in message
    author = await Author.vinyl.get(pk=lib["ann"].pk)
    with pytest.raises(RelationNotLoaded, match=r"prefetch_related\('book_set'\)"):
        author["book_set"]
    with pytest.raises(RelationNotLoaded, match="profile"):
        author["profile"]
    with pytest.raises(KeyError):
        book["title"]  # a field, not a relation
    with pytest.raises(KeyError):
        book["_state"]
    with pytest.raises(TypeError):
        book[0]


async def test_related_manager_all_queries_fresh_even_after_prefetch():
    lib = await library()
    author = await Author.vinyl.prefetch_related("book_set").get(pk=lib["ann"].pk)
    await Book.vinyl.create(title="A3", author=lib["ann"])
    assert len(author["book_set"]) == 2
    with count_queries() as queries:
        assert len(await author.book_set.all()) == 3
    assert len(queries) == 1


async def test_streaming_with_prefetch_and_select_related():
    await library()
    seen = []
    async for author in Author.vinyl.select_related("profile").prefetch_related("book_set").order_by("id"):
        seen.append((author.name, len(author["book_set"]), author["profile"] is None))
    assert seen == [("Ann", 2, False), ("Bob", 1, True)]


async def test_prefetched_querysets_hold_what_djangos_related_managers_give(backend):
    """Each owner's cached queryset (vinyl's one loop over the owners) as Django's
    prefetcher leaves it: its rows, its known owner, the filter a chained call adds,
    counted and listed without a query; owners repeated by a join, and a book with
    no tag, too."""
    lib = await library()
    sync = settings.SYNC_ALIAS[backend]
    authors = await Author.vinyl.filter(book__title__in=["A1", "A2", "B1"]).order_by("name", "book__title").prefetch_related("book_set")
    books = await Book.vinyl.order_by("title").prefetch_related("tags")

    def as_django() -> tuple:
        d_authors = list(
            Author.objects.using(sync).filter(book__title__in=["A1", "A2", "B1"]).order_by("name", "book__title").prefetch_related("book_set")
        )
        d_books = list(Book.objects.using(sync).order_by("title").prefetch_related("tags"))
        def state(owners: list, name: str) -> list:
            out = []
            for owner in owners:
                qs = owner._prefetched_objects_cache[name]
                known = {field.name: {key: obj.pk for key, obj in objs.items()} for field, objs in qs._known_related_objects.items()}
                out.append(([o.pk for o in qs._result_cache], known, qs._prefetch_done, qs._deferred_filter[2] if qs._deferred_filter else None))
            return out
        # Which owner instance each book caches (the last of a repeated owner's).
        cached = [[next(i for i, a in enumerate(d_authors) if a is b._state.fields_cache["author"]) for b in owner.book_set.all()] for owner in d_authors]
        return state(d_authors, "book_set"), state(d_books, "tags"), str(d_authors[0].book_set.filter(title__gt="").query), str(d_books[0].tags.filter(name__gt="").query), cached

    d_authors, d_books, d_author_sql, d_book_sql, d_cached = await sync_to_async(as_django)()
    assert len(authors) == 3 and authors[0].pk == authors[1].pk
    mine = []
    for owner in authors:
        qs = owner._prefetched_objects_cache["book_set"]
        [(field, objs)] = qs._known_related_objects.items()
        assert field is Book._meta.get_field("author") and all(obj is owner for obj in objs.values())
        mine.append(([o.pk for o in qs._result_cache], {field.name: {k: o.pk for k, o in objs.items()}}, qs._prefetch_done, qs._deferred_filter[2]))
    assert [(rows, known, done) for rows, known, done, _ in mine] == [(rows, known, done) for rows, known, done, _ in d_authors]
    assert all(f["author"] is owner for (*_, f), owner in zip(mine, authors))
    cached = [[next(i for i, a in enumerate(authors) if a is b._state.fields_cache["author"]) for b in owner["book_set"]] for owner in authors]
    assert cached == d_cached
    assert [
        ([o.pk for o in b._prefetched_objects_cache["tags"]._result_cache], {}, True, b._prefetched_objects_cache["tags"]._deferred_filter[2])
        for b in books
    ] == d_books
    assert [len(b["tags"]) for b in books] == [2, 0, 1]
    with count_queries() as queries:
        counts = [owner._prefetched_objects_cache["book_set"].count() for owner in authors]
        listed = [list(b._prefetched_objects_cache["tags"]) for b in books]
    assert queries == [] and counts == [2, 2, 1] and [len(t) for t in listed] == [2, 0, 1]
    # A chained call filters on the owner, as the related manager's would.
    assert str(authors[0]._prefetched_objects_cache["book_set"].filter(title__gt="").query) == d_author_sql
    assert str(books[0]._prefetched_objects_cache["tags"].filter(name__gt="").query) == d_book_sql
    assert lib["books"][0].title == "A1"


async def test_prefetched_querysets_copy_and_combine_as_djangos(backend):
    """A prefetched queryset's state that vinyl makes only when read (the
    owner filter, the known owner) is there in a deepcopy and a combined
    queryset, as in Django's."""
    import copy

    await library()
    sync = settings.SYNC_ALIAS[backend]
    authors = await Author.vinyl.order_by("name").prefetch_related("book_set")
    books = await Book.vinyl.order_by("title").prefetch_related("tags")

    def seen(authors: list, books: list) -> list:
        out = []
        for author in authors:
            qs = author._prefetched_objects_cache["book_set"]
            for other in (copy.deepcopy(qs),):
                known = {f.name: sorted(objs) for f, objs in other._known_related_objects.items()}
                out.append(([b.pk for b in other._result_cache or ()], known, str(other.filter(title__gt="").query)))
            combined = qs.all() | qs.all()
            out.append((str(combined.query), {f.name: sorted(objs) for f, objs in combined._known_related_objects.items()}))
        for book in books:
            qs = book._prefetched_objects_cache["tags"]
            for other in (copy.deepcopy(qs),):
                out.append(([t.pk for t in other._result_cache or ()], other._deferred_filter[2] if other._deferred_filter else None, str(other.filter(name__gt="").query)))
        return out

    def as_django() -> list:
        d_authors = list(Author.objects.using(sync).order_by("name").prefetch_related("book_set"))
        d_books = list(Book.objects.using(sync).order_by("title").prefetch_related("tags"))
        return seen(d_authors, d_books)

    expected = await sync_to_async(as_django)()
    with count_queries() as queries:
        assert seen(authors, books) == expected
    assert queries == []


async def test_prefetched_rows_keep_what_their_caches_held_before(backend):
    """The owner is added to each row's related-object cache: a row that
    select_related filled keeps its joined objects (a Prefetch queryset's),
    and a model whose instances run code of their own when built (an init
    signal receiver) keeps what that code cached."""
    lib = await library()
    books = Book.vinyl.select_related("publisher").order_by("title")
    [ann] = await Author.vinyl.filter(name="Ann").prefetch_related(Prefetch("book_set", queryset=books))
    assert [(b["author"] is ann, b["publisher"] and b["publisher"].name) for b in ann["book_set"]] == [(True, "Pub"), (True, None)]
    with _books_marked_when_built(lib) as marker:
        [ann] = await Author.vinyl.filter(name="Ann").prefetch_related("book_set")
    assert [(b["author"] is ann, b._state.fields_cache["marker"] is marker) for b in ann["book_set"]] == [(True, True), (True, True)]
    [ann] = await Author.vinyl.filter(name="Ann").prefetch_related("book_set")
    assert [sorted(b._state.fields_cache) for b in ann["book_set"]] == [["author"], ["author"]]


async def test_forward_fk_prefetch_keeps_what_the_owners_caches_held_before(backend):
    """A forward foreign key's object joins what each instance's cache held:
    nothing for instances built as Django builds them, what an init signal
    receiver cached otherwise; two forward keys both stay."""
    lib = await library()
    with _books_marked_when_built(lib) as marker:
        books = await Book.vinyl.prefetch_related("author").order_by("id")
    assert [(b["author"].name, b._state.fields_cache["marker"] is marker) for b in books] == [("Ann", True), ("Ann", True), ("Bob", True)]
    books = await Book.vinyl.prefetch_related("author", "publisher").order_by("id")
    assert [sorted(b._state.fields_cache) for b in books] == [["author", "publisher"]] * 3
    assert books[0]["author"] is books[1]["author"]


async def test_many_to_many_rows_lists_are_shared_as_djangos(backend):
    """Each owner's many-to-many rows in the list Django's prefetcher gives it:
    owners repeated by a join share one list, in the related rows' order;
    owners without rows get an empty list each."""
    await library()
    sync = settings.SYNC_ALIAS[backend]

    def shape(books: list) -> list:
        lists = [b._prefetched_objects_cache["tags"]._result_cache for b in books]
        return [(b.title, sorted(t.name for t in rows), [j for j, other in enumerate(lists) if other is rows]) for b, rows in zip(books, lists)]

    def as_django() -> list:
        repeated = list(Book.objects.using(sync).filter(tags__name__in=["red", "blue"]).order_by("title", "tags__name").prefetch_related("tags"))
        empty = list(Book.objects.using(sync).filter(title="A2", author__book__title__in=["A1", "A2"]).prefetch_related("tags"))
        return [shape(repeated), shape(empty)]

    expected = await sync_to_async(as_django)()
    repeated = await Book.vinyl.filter(tags__name__in=["red", "blue"]).order_by("title", "tags__name").prefetch_related("tags")
    empty = await Book.vinyl.filter(title="A2", author__book__title__in=["A1", "A2"]).prefetch_related("tags")
    assert [shape(repeated), shape(empty)] == expected
    assert [len(rows) for _, rows, _ in shape(empty)] == [0, 0]
    assert [len(rows) for _, rows, _ in shape(repeated)] == [2, 2, 1]


@contextlib.contextmanager
def _books_marked_when_built(lib: dict) -> Iterator[object]:
    """Inside: a post_init receiver puts a marker (given) in the cache of every vinyl Book built."""
    from django.db.models.signals import post_init

    marker = object()

    def remember(sender: type, instance: Any, **kwargs: Any) -> None:
        instance._state.fields_cache["marker"] = marker

    vinyl_book = type(lib["books"][0])
    post_init.connect(remember, sender=vinyl_book)
    try:
        yield marker
    finally:
        post_init.disconnect(remember, sender=vinyl_book)


@contextlib.contextmanager
def _django_filters() -> Iterator[list]:
    """Record each filter Django's Query is given (vinyl builds one only for a query it must build)."""
    from django.db.models.sql import Query

    given: list = []
    add_q = Query.add_q

    def counted(self: Any, q_object: Any, *args: Any, **kwargs: Any) -> Any:
        given.append(q_object)
        return add_q(self, q_object, *args, **kwargs)

    Query.add_q = counted  # type: ignore[method-assign]
    try:
        yield given
    finally:
        Query.add_q = add_q  # type: ignore[method-assign]


async def test_a_planned_prefetch_object_builds_no_django_query_of_its_queryset(backend):
    """vinyl prefetches with a Prefetch's vinyl queryset: the Django query of
    that queryset, which Django's Prefetch() and prefetch_related() are
    given, is built only if something reads it (Django's prefetcher)."""
    await library()
    for title, expected in (("A", [["A2", "A1"], ["B1"]]), ("B", [[], ["B1"]]), ("A2", [["A2"], ["B1"]])):
        with _django_filters() as built:
            books = Prefetch("book_set", queryset=Book.vinyl.filter(title__gte=title).order_by("-title"))
            authors = await Author.vinyl.prefetch_related(books).order_by("id")
        assert [[b.title for b in a["book_set"]] for a in authors] == expected
        assert all(b["author"] is a for a in authors for b in a["book_set"])
        if title != "A":  # (the first call of each shape has Django check it)
            assert built == []
    # Read, the Django queryset is the vinyl one's, on its alias.
    books = Prefetch("book_set", queryset=Book.vinyl.filter(title__gte="B").order_by("-title"))
    given = Author.vinyl.prefetch_related(books).as_django()._prefetch_related_lookups[0]
    assert given.prefetch_to == "book_set" and given.to_attr is None
    assert given.queryset.db == "vinyl_default"
    assert str(given.queryset.query) == str(Book.objects.filter(title__gte="B").order_by("-title").query)


async def test_a_prefetch_object_of_values_is_refused_as_django_refuses_it():
    with pytest.raises(ValueError, match="Prefetch querysets cannot use raw"):
        Prefetch("book_set", queryset=Book.vinyl.filter(title="A").values("id"))
    with pytest.raises(ValueError, match="Prefetch querysets cannot use raw"):
        Prefetch("book_set", queryset=Book.vinyl.order_by("id").values_list("id", flat=True))
    Prefetch("book_set", queryset=Book.vinyl.filter(title="A").order_by("id")[:2])  # accepted
