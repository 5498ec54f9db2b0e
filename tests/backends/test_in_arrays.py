"""``__in`` lists answer as Django's, on PostgreSQL sent as one array.

On PostgreSQL vinyl sends each ``IN`` list of two or more plain values as
``= ANY($k)`` (``NOT IN``: ``<> ALL($k)``) with one array parameter, whatever
the list's length (vinyl/postgresql_backend/manyparams.py, ``as_arrays``).
The rows must be Django's for every field type, with None in the list,
duplicates, exclude() and NULL columns, subqueries, related lookups, values
asyncpg refuses in an array (sent as the list it was) and lists longer than
asyncpg binds. MariaDB and SQLite send Django's SQL: the same rows.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import CharField, F, IntegerField, Q, Value
from django.db.models.functions import Cast, Coalesce, Concat, Length, Lower, Upper

import vinyl
from tests.testapp.models import AllTypes, Author, Book, Tag
from vinyl.postgresql_backend.manyparams import as_arrays

pytestmark = pytest.mark.usefixtures("vinyl_db")

UTC = datetime.timezone.utc

ROWS = [
    dict(big=2**40, small=-3, positive=7, flag=True, text="a", char="x%_", decimal=decimal.Decimal("1.5000"),
         floating=1.5, day=datetime.date(2024, 2, 29), moment=datetime.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=UTC),
         clock=datetime.time(23, 59, 58, 500), span=datetime.timedelta(days=2), uid=uuid.UUID(int=1),
         data={"k": 1}, ip="192.168.0.1", slug="s-1", email="a@example.org", url="https://example.org/a"),
    dict(big=-(2**62), small=32767, positive=0, flag=False, text="É b", char="y", decimal=decimal.Decimal("-2.0001"),
         floating=-0.25, day=datetime.date(1, 1, 1), moment=datetime.datetime(2000, 1, 1, tzinfo=UTC),
         clock=datetime.time(0, 0), span=datetime.timedelta(seconds=5), uid=uuid.UUID(int=2),
         data=[1, 2], ip="::1", slug="s-2", email="b@example.org", url="https://example.org/b"),
    dict(big=5, small=1, positive=2**31 - 1, flag=True, text="", char="", decimal=decimal.Decimal("0"),
         floating=0.0, day=datetime.date(9999, 12, 31), moment=datetime.datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
         clock=datetime.time(12, 0, 0, 1), span=datetime.timedelta(0), uid=uuid.UUID(int=3),
         data="text", ip="10.0.0.1", slug="s-3", email="c@example.org", url="https://example.org/c"),
    {},  # every column NULL
]

# Per field: values in the table, values not in it, None and a repeat.
LISTS = {
    "big": [2**40, 5, 6, 2**40, None, 2**63 - 1],
    "small": [-3, 1, 2, None],
    "positive": [0, 7, 8, 2**31 - 1],
    "flag": [True, False],
    "text": ["a", "É b", "zz", None, "a"],
    "char": ["x%_", "", "%"],
    "decimal": [decimal.Decimal("1.5"), decimal.Decimal("-2.0001"), decimal.Decimal("9")],
    "floating": [1.5, -0.25, 0.0, 7.0],
    "day": [datetime.date(2024, 2, 29), datetime.date(1, 1, 1), datetime.date(9999, 12, 31), datetime.date(2020, 1, 1)],
    "moment": [datetime.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=UTC), datetime.datetime(2000, 1, 1, tzinfo=UTC),
               datetime.datetime(2000, 1, 1, 1, tzinfo=UTC)],
    "clock": [datetime.time(23, 59, 58, 500), datetime.time(0, 0), datetime.time(1, 2)],
    "span": [datetime.timedelta(days=2), datetime.timedelta(seconds=5), datetime.timedelta(days=9)],
    "uid": [uuid.UUID(int=1), uuid.UUID(int=3), uuid.UUID(int=9), None],
    "ip": ["192.168.0.1", "::1", "10.9.9.9"],
    "slug": ["s-1", "s-3", "s-9"],
    "email": ["a@example.org", "c@example.org", "q@example.org"],
    "url": ["https://example.org/a", "https://example.org/q"],
}


async def _load(backend: str) -> list[int]:
    objs = await AllTypes.vinyl.bulk_create([AllTypes(**row) for row in ROWS])
    return [obj.pk for obj in objs]


def _django(backend: str):
    return AllTypes.objects.using(settings.SYNC_ALIAS[backend])


async def _same(backend: str, build) -> None:
    """``build(manager)`` answers the same pks through vinyl and Django (or the same error class)."""

    def django_answer():
        try:
            return sorted(build(_django(backend)).values_list("pk", flat=True))
        except Exception as exc:  # noqa: BLE001 - the class is the answer compared
            return type(exc).__name__

    expected = await sync_to_async(django_answer)()
    try:
        got = sorted(await build(AllTypes.vinyl.all()).values_list("pk", flat=True))
    except Exception as exc:  # noqa: BLE001 - the class is the answer compared
        got = type(exc).__name__
    assert got == expected


@pytest.mark.parametrize("field", sorted(LISTS))
async def test_in_lists_of_every_field_type_answer_as_django(backend, field):
    await _load(backend)
    values = LISTS[field]
    for chosen in (values, values[:2], values[:3], [values[0], None], [values[0]]):
        await _same(backend, lambda qs: qs.filter(**{f"{field}__in": chosen}))
        await _same(backend, lambda qs: qs.exclude(**{f"{field}__in": chosen}))
        await _same(backend, lambda qs: qs.filter(~Q(**{f"{field}__in": chosen}) | Q(pk__in=[])))
        await _same(backend, lambda qs: qs.filter(Q(**{f"{field}__in": chosen}) | Q(**{f"{field}__isnull": True})))


async def test_in_lists_of_other_values_answer_as_django(backend):
    pks = await _load(backend)
    cases = [
        lambda qs: qs.filter(pk__in=[]),
        lambda qs: qs.exclude(pk__in=[]),
        lambda qs: qs.filter(pk__in=[None, None]),
        lambda qs: qs.filter(pk__in=[*pks, *pks]),
        lambda qs: qs.filter(pk__in=(p for p in pks[:2])),
        lambda qs: qs.filter(pk__in=[str(pks[0]), pks[1]]),  # a string Django makes an int
        lambda qs: qs.filter(pk__in=AllTypes.objects.filter(small__gte=0).values("pk")),
        lambda qs: qs.filter(pk__in=[pks[0], pks[1]], small__in=[-3, 1], text__in=["a", "zz"]),
        lambda qs: qs.filter(data__in=[{"k": 1}, [1, 2], "nope"]),
        lambda qs: qs.filter(data__k__in=[1, 2]),
        lambda qs: qs.filter(span__in=["2 days", "0:00:05"]),  # text for an interval: asyncpg refuses it in an array
        lambda qs: qs.filter(big__in=[2**40, 2**64]),  # beyond bigint
        lambda qs: qs.filter(small__in=[1, 40000, -3]),  # beyond smallint
        lambda qs: qs.filter(decimal__in=[decimal.Decimal("1.5"), 5]),
        # Integer lists go as the array's text on PostgreSQL: signs, both
        # ends of int4 and int8, the two mixed in one list, bools and
        # numeric strings among ints, NOT IN of them.
        lambda qs: qs.filter(small__in=[-3, -(2**31), 2**31 - 1, 0]),
        lambda qs: qs.filter(big__in=[-(2**62), -(2**63), 2**63 - 1, 5, 2**40]),
        lambda qs: qs.exclude(big__in=[-(2**62), 2**63 - 1, -1]),
        lambda qs: qs.filter(positive__in=[True, 7, False]),
        lambda qs: qs.filter(positive__in=["7", 0, 2**31 - 1]),
        lambda qs: qs.exclude(small__in=[-3, 1, None]),
        lambda qs: qs.filter(big__in=[5, 5, None, 2**40, 5]),
        lambda qs: qs.filter(Q(small__in=[1, 1]) | Q(big__in=[-(2**62), 2**40])),
    ]
    for build in cases:
        await _same(backend, build)


async def _link(alias: str, pairs: list) -> None:
    """The many-to-many rows of ``pairs`` (a book, its tags), written by Django on the same database."""
    through = Book.tags.through
    rows = [through(book_id=book.pk, tag_id=tag.pk) for book, tags in pairs for tag in tags]
    await sync_to_async(lambda: through.objects.using(alias).bulk_create(rows))()


async def test_long_lists_and_related_lookups_answer_as_django(backend):
    authors = await Author.vinyl.bulk_create([Author(name=f"a{i}", age=i % 7) for i in range(120)])
    tags = await Tag.vinyl.bulk_create([Tag(name=f"t{i}") for i in range(5)])
    books = await Book.vinyl.bulk_create([Book(title=f"b{i}", author=authors[i % 120], pages=i) for i in range(300)])
    alias = settings.SYNC_ALIAS[backend]
    await _link(alias, [(book, tags[: book.pages % 5]) for book in books[::7]])
    ids = [a.pk for a in authors]

    def django(fn):
        return sync_to_async(lambda: fn(Author.objects.using(alias)))()

    for n in (2, 3, 64, 100, 120):
        chosen = ids[:n] + [10**9]
        expected = await django(lambda qs: sorted(qs.filter(pk__in=chosen).values_list("pk", flat=True)))
        assert sorted(await Author.vinyl.filter(pk__in=chosen).values_list("pk", flat=True)) == expected
        expected = await django(lambda qs: qs.exclude(book__pk__in=[b.pk for b in books[:n]]).count())
        assert await Author.vinyl.exclude(book__pk__in=[b.pk for b in books[:n]]).count() == expected
        expected = await django(lambda qs: sorted(qs.filter(book__tags__pk__in=[t.pk for t in tags]).values_list("pk", flat=True)))
        assert sorted(await Author.vinyl.filter(book__tags__pk__in=[t.pk for t in tags]).values_list("pk", flat=True)) == expected
    # Writes and streams with a list.
    expected = await django(lambda qs: qs.filter(pk__in=ids[:50]).update(age=99))
    assert await Author.vinyl.filter(pk__in=ids[50:100]).update(age=99) == expected
    streamed = [a.pk async for a in Author.vinyl.filter(pk__in=ids[:70]).order_by("pk").iterator(chunk_size=16)]
    assert streamed == ids[:70]


async def test_prefetches_answer_as_django(backend):
    authors = await Author.vinyl.bulk_create([Author(name=f"a{i}") for i in range(30)])
    tags = await Tag.vinyl.bulk_create([Tag(name=f"t{i}") for i in range(4)])
    books = await Book.vinyl.bulk_create([Book(title=f"b{i}", author=authors[i % 25], pages=i) for i in range(90)])
    alias = settings.SYNC_ALIAS[backend]
    await _link(alias, [(book, tags[: book.pages % 4]) for book in books[::3]])

    def shape(objs, related):  # related(obj, name): the prefetched rows (vinyl's instances: obj[name])
        return [(a.pk, sorted((b.pk, sorted(t.pk for t in related(b, "tags"))) for b in related(a, "book_set"))) for a in objs]

    expected = await sync_to_async(
        lambda: shape(Author.objects.using(alias).order_by("pk").prefetch_related("book_set__tags"), lambda o, n: getattr(o, n).all())
    )()
    assert shape(await Author.vinyl.order_by("pk").prefetch_related("book_set__tags"), lambda o, n: o[n]) == expected
    expected = await sync_to_async(lambda: [(b.pk, b.author.pk) for b in Book.objects.using(alias).order_by("pk").prefetch_related("author")])()
    assert [(b.pk, b["author"].pk) for b in await Book.vinyl.order_by("pk").prefetch_related("author")] == expected


async def test_more_values_than_asyncpg_binds_answer_as_django(backend):
    pks = await _load(backend)
    many = range(40_000)
    await _same(backend, lambda qs: qs.filter(pk__in=many))
    await _same(backend, lambda qs: qs.exclude(pk__in=[*many, *pks]))
    assert await AllTypes.vinyl.filter(pk__in=many).count() == await sync_to_async(_django(backend).filter(pk__in=many).count)()


@pytest.mark.backends("postgresql", reason="the SQL vinyl sends on PostgreSQL: one array per IN list")
async def test_postgresql_sends_one_array_per_list_whatever_its_length(backend):
    authors = await Author.vinyl.bulk_create([Author(name=f"a{i}") for i in range(10)])
    ids = [a.pk for a in authors]
    async with vinyl.atomic():  # one connection: its prepared statements
        for n in (2, 3, 7, 10):
            assert len(await Author.vinyl.filter(pk__in=ids[:n])) == n
        assert await Author.vinyl.exclude(pk__in=ids[:4]).count() == 6
        rows = await Author.vinyl.raw(
            "SELECT 1 AS id, statement AS name FROM pg_prepared_statements WHERE statement LIKE %s", ["%testapp_author%"]
        )
    statements = [row.name for row in rows]
    lists = [s for s in statements if "= ANY(" in s and "<> ALL(" not in s and "COUNT" not in s.upper()]
    assert len(lists) == 1, statements  # one statement for the four lengths
    assert not [s for s in statements if " IN ($" in s], statements
    assert [s for s in statements if "= ANY($1::int4[])" in s and "NOT" in s], statements


@pytest.mark.backends("postgresql", reason="the plan PostgreSQL makes of vinyl's array of integers")
async def test_postgresql_plans_an_integer_list_as_a_constant_as_djangos(backend):
    # A binary array parameter: in a custom plan PostgreSQL knows the list (a constant, as Django's literal list:
    # hashed, estimated as Django's). The array's text cast in a subquery was an InitPlan it never knew.
    await Author.vinyl.bulk_create([Author(name=f"a{i}", age=i) for i in range(10)])
    async with vinyl.get_engine().connect() as conn, vinyl.use_connection(conn):
        assert await Author.vinyl.filter(age__in=[1, 2, 3]).count() == 3
        names = (await conn.exec_driver_sql(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE"
            " '%COUNT(*)%\"testapp_author\".\"age\" = ANY($1::int4[])%'"
            " AND statement NOT LIKE '%pg_prepared_statements%'"
        )).scalars().all()
        assert names
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        plans = ["\n".join((await conn.exec_driver_sql(f"EXPLAIN EXECUTE \"{name}\"('{{1,2,3}}')")).scalars())
                 for name in names]  # (the driver may have prepared it twice: SQLAlchemy's cursor, vinyl's plan)
        await conn.rollback()
    for plan in plans:
        assert "InitPlan" not in plan and "'{1,2,3}'::integer[]" in plan, plan


def test_the_rewrite_keeps_each_list_and_its_type():
    sql = 'SELECT a FROM t WHERE t.x IN ($1::int4, $2::int8) AND y = $3 AND NOT (z IN ($4, $5)) AND w IN ($6)'
    assert as_arrays(sql, (1, 2**40, "q", "a", "b", 9)) == (
        'SELECT a FROM t WHERE t.x = ANY($1::int8[]) AND y = $2 AND NOT (z = ANY($3)) AND w IN ($4)',
        [[1, 1099511627776], "q", ["a", "b"], 9],
    )
    assert as_arrays("SELECT 1 WHERE a IN ($1::int4, $2::int4, $3::int4)", (-5, 0, 2**31 - 1)) == (
        "SELECT 1 WHERE a = ANY($1::int4[])",
        [[-5, 0, 2147483647]],
    )
    assert as_arrays("SELECT 1 WHERE a IN ($1::numeric, $2::int4)", (2**70, 1)) == (
        "SELECT 1 WHERE a = ANY($1::numeric[])",
        [[2**70, 1]],
    )
    assert as_arrays("SELECT 1 WHERE a NOT IN ($1::uuid, $2::uuid)", (uuid.UUID(int=1), uuid.UUID(int=2))) == (
        "SELECT 1 WHERE a <> ALL($1::uuid[])",
        [[uuid.UUID(int=1), uuid.UUID(int=2)]],
    )
    # Values of another type than the list's elements take: sent as they are.
    assert as_arrays("SELECT 1 WHERE a IN ($1, $2)", ([1], [2])) is None
    assert as_arrays("SELECT 1 WHERE a IN ($1::int4, $2::int4)", (1, True)) is None
    # Types vinyl does not send as arrays, mixed casts, placeholders out of order.
    assert as_arrays("SELECT 1 WHERE a IN ($1::bytea, $2::bytea)", (b"a", b"b")) is None
    assert as_arrays("SELECT 1 WHERE a IN ($1::int4, $2)", (1, "x")) is None
    assert as_arrays("SELECT 1 WHERE a IN ($2, $1)", ("x", "y")) is None
    assert as_arrays("SELECT 1 WHERE a = $1", (1,)) is None


#: IN lists whose left side is not a column: an annotation, a function, a
#: parameter (a Value: its type comes from the list's on PostgreSQL), or
#: extra() SQL of the user's with its own IN list.
EXPRESSION_CASES = {
    "value_str": lambda qs: qs.annotate(v=Value("a", output_field=CharField())).filter(v__in=["a", "b"]),
    "value_int": lambda qs: qs.annotate(v=Value(3, output_field=IntegerField())).filter(v__in=[3, 4]),
    "upper": lambda qs: qs.annotate(u=Upper("text")).filter(u__in=["A", "B"]),
    "lower": lambda qs: qs.annotate(lc=Lower("char")).filter(lc__in=["x%_", "y"]),
    "length": lambda qs: qs.annotate(n=Length("text")).filter(n__in=[1, 3]),
    "concat": lambda qs: qs.annotate(c=Concat("text", Value("-"), output_field=CharField())).filter(c__in=["a-", "x-"]),
    "coalesce": lambda qs: qs.annotate(c=Coalesce("small", Value(0))).filter(c__in=[0, 1]),
    "cast": lambda qs: qs.annotate(c=Cast("small", CharField())).filter(c__in=["1", "-3"]),
    "or": lambda qs: qs.filter(Q(email__in=["a@example.org", "z"]) | Q(text__in=["É b", "q"])),
    "expression_in_list": lambda qs: qs.filter(small__in=[F("positive"), 1]),
    "extra_text": lambda qs: qs.extra(where=["text IN (%s, %s)"], params=["a", "b"]),
    "extra_int": lambda qs: qs.extra(where=["small IN (%s, %s)"], params=[1, -3]),
    "extra_parameter_left": lambda qs: qs.extra(where=["%s IN (%s, %s)"], params=["a", "a", "b"]),
}


@pytest.mark.parametrize("case", sorted(EXPRESSION_CASES))
async def test_in_lists_on_expressions_answer_as_django(backend, case):
    await _load(backend)
    await _same(backend, EXPRESSION_CASES[case])
