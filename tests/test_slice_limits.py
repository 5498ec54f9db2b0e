"""A slice's LIMIT is a literal in the SQL, its OFFSET a parameter (issue 17).

PostgreSQL plans a prepared statement once for all its executions only when
its generic plan costs no more than the plans made for each execution's
values: with ``LIMIT $n`` it costs the generic plan for 10% of the rows and
plans again at every execution. A literal limit has the SQL (and the plan)
of a query depend on it: one plan per limit, for the first limits a process
meets (``shapes.LITERAL_LIMITS``); every page of a query (its offsets) keeps
one plan and one statement. Results are compared with Django's sync ORM.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import NotSupportedError, connections
from django.db.models import Exists, OuterRef, Prefetch

import vinyl
from tests.testapp.models import Author, Book
from vinyl.translate import shapes
from vinyl.translate.plan_cache import plan_cache_for

pytestmark = pytest.mark.usefixtures("vinyl_db")


@pytest.fixture(autouse=True)
def no_literal_limits_yet(monkeypatch: pytest.MonkeyPatch) -> Iterator[set]:
    """The limits written as literals so far: none (other tests met some)."""
    fresh: set[int] = set()
    monkeypatch.setattr(shapes, "_literal_limits", fresh)
    yield fresh


async def django(backend: str, run: Callable[[Any], Any]) -> Any:
    """What Django's sync ORM returns for ``run(Author.objects)`` on ``backend``."""
    alias = settings.SYNC_ALIAS[backend]

    def oracle() -> Any:
        try:
            return run(Author.objects.using(alias))
        finally:
            connections[alias].close()

    return await sync_to_async(oracle)()


async def make_authors(n: int = 30) -> list[Author]:
    return [await Author.vinyl.create(name=f"a{i:02}", age=i % 7, email=f"a{i}@x") for i in range(n)]


def plans() -> int:
    return len(plan_cache_for("vinyl_default").plans())


def limits_in(sql: str) -> list[str]:
    return re.findall(r"\bLIMIT\s+(\S+)", sql, flags=re.IGNORECASE)


async def test_the_limit_is_a_literal_and_the_offset_a_parameter(backend):
    await make_authors(12)
    for _ in range(3):  # compiled, then from its plan
        async with vinyl.capture_queries() as q:
            first = await Author.vinyl.filter(age__gte=1).order_by("name").values_list("name", flat=True)[:7]
            page = await Author.vinyl.filter(age__gte=1).order_by("name").values_list("name", flat=True)[3:8]
        assert first == await django(backend, lambda m: list(m.filter(age__gte=1).order_by("name").values_list("name", flat=True)[:7]))
        assert page == await django(backend, lambda m: list(m.filter(age__gte=1).order_by("name").values_list("name", flat=True)[3:8]))
        (sql7, params7), (sql5, params5) = [(query.sql, tuple(query.params)) for query in q]
        assert limits_in(sql7) == ["7"] and params7 == (1,)
        assert limits_in(sql5) == ["5"] and params5 == (1, 3)
        assert re.search(r"OFFSET\s+(\$2|%s|\?)", sql5, flags=re.IGNORECASE), sql5


async def test_a_thousand_offsets_share_one_plan_and_one_statement(backend):
    names = [a.name for a in await make_authors(30)]
    before = plans()
    texts = set()
    async with vinyl.capture_queries() as q:
        for offset in range(1, 1001):
            got = await Author.vinyl.order_by("name").values_list("name", flat=True)[offset : offset + 20]
            assert got == names[offset : offset + 20]
    texts = {query.sql for query in q}
    assert len(q) == 1000
    assert len(texts) == 1, texts
    assert limits_in(texts.pop()) == ["20"]
    assert plans() == before + 1


async def test_many_limits_stay_bounded(backend, no_literal_limits_yet):
    names = [a.name for a in await make_authors(30)]
    before = plans()
    many = shapes.LITERAL_LIMITS + 40
    async with vinyl.capture_queries() as q:
        for size in range(1, many + 1):
            assert await Author.vinyl.order_by("name").values_list("name", flat=True)[:size] == names[:size]
        for size in range(1, many + 1):  # and again: from the plans kept
            assert await Author.vinyl.order_by("name").values_list("name", flat=True)[:size] == names[:size]
        for size in range(1, many + 1):  # pages of every size, past the literal ones too
            assert await Author.vinyl.order_by("name").values_list("name", flat=True)[2 : 2 + size] == names[2 : 2 + size]
    assert no_literal_limits_yet == set(range(1, shapes.LITERAL_LIMITS + 1))
    # One plan per literal limit, one for the limits past them (LIMIT a
    # parameter); the same for pages.
    assert plans() == before + 2 * (shapes.LITERAL_LIMITS + 1)
    assert len({query.sql for query in q}) == 2 * (shapes.LITERAL_LIMITS + 1)
    literal = [sql for sql in {query.sql for query in q} if limits_in(sql)[0].isdigit()]
    assert len(literal) == 2 * shapes.LITERAL_LIMITS


async def test_slices_answer_as_django_does(backend):
    authors = await make_authors(30)
    for author in authors[:12]:
        await Book.vinyl.create(title=f"t{author.name}", author=author, pages=author.age)
        await Book.vinyl.create(title=f"u{author.name}", author=author, pages=author.age + 1)
    ordered = lambda m: m.filter(age__gte=2).order_by("-age", "name")  # noqa: E731
    vordered = lambda: ordered(Author.vinyl)  # noqa: E731
    names = lambda qs: list(qs.values_list("name", flat=True))  # noqa: E731
    for _ in range(2):  # compiled, then from its plans
        for low, high in ((None, 5), (3, 9), (5, None), (0, 4), (1, 2), (20, 40), (40, 45), (None, 0), (3, 3), (6, 2)):
            got = await vordered().values_list("name", flat=True)[low:high]
            assert got == await django(backend, lambda m: names(ordered(m)[low:high])), (low, high)
            got_count = await vordered()[low:high].count()
            assert got_count == await django(backend, lambda m: ordered(m)[low:high].count()), (low, high)
            got_exists = await vordered()[low:high].exists()
            assert got_exists == await django(backend, lambda m: ordered(m)[low:high].exists()), (low, high)
            streamed = [a.name async for a in vordered()[low:high].iterator(chunk_size=2)]
            assert streamed == await django(backend, lambda m: names(ordered(m)[low:high])), (low, high)
        got_first = await vordered().first()
        assert got_first.name == (await django(backend, lambda m: ordered(m).first())).name
        got_get = await Author.vinyl.filter(age=3).order_by("name")[1:2].get()
        assert got_get.name == (await django(backend, lambda m: m.filter(age=3).order_by("name")[1:2].get())).name
        assert (await Author.vinyl.get(name="a05")).pk == authors[5].pk  # LIMIT 21
        with pytest.raises(Author.MultipleObjectsReturned):
            await Author.vinyl.get(age=3)
        # A slice in a subquery (MariaDB refuses LIMIT in an IN subquery, as for Django).
        in_slice = Author.vinyl.filter(pk__in=Author.vinyl.order_by("-name").values("pk")[:4]).values_list("name", flat=True)
        if connections["vinyl_default"].features.allow_sliced_subqueries_with_in:
            want = await django(backend, lambda m: names(m.filter(pk__in=m.order_by("-name").values("pk")[:4])))
            assert sorted(await in_slice) == sorted(want)
        else:
            with pytest.raises(NotSupportedError):
                await in_slice
        exists_slice = Author.vinyl.filter(Exists(Book.vinyl.filter(author=OuterRef("pk")).order_by("title")[1:2]))
        got_names = await exists_slice.order_by("name").values_list("name", flat=True)
        want = await django(backend, lambda m: names(m.filter(Exists(Book.objects.filter(author=OuterRef("pk")).order_by("title")[1:2])).order_by("name")))
        assert got_names == want and len(want) == 12
        # Prefetch of a sliced queryset (Django windows it per author).
        got_books = {
            a.name: [b.title for b in a.first_books]
            for a in await Author.vinyl.order_by("name")[:6].prefetch_related(
                Prefetch("book_set", queryset=Book.vinyl.order_by("-title")[:1], to_attr="first_books")
            )
        }

        def want_books(m: Any) -> dict:
            from tests.testapp.models import Book as SyncBook

            prefetch = Prefetch("book_set", queryset=SyncBook.objects.using(m.db).order_by("-title")[:1], to_attr="first_books")
            return {a.name: [b.title for b in a.first_books] for a in m.order_by("name")[:6].prefetch_related(prefetch)}

        assert got_books == await django(backend, want_books)
