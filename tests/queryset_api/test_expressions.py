"""Expressions compiled by Django, executed by vinyl, on both databases."""

from __future__ import annotations

import datetime
import decimal

import django
import pytest
from django.db.models import (
    Avg,
    BooleanField,
    Case,
    CharField,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import (
    Abs,
    Cast,
    Coalesce,
    Concat,
    DenseRank,
    Extract,
    ExtractYear,
    Greatest,
    Lag,
    Left,
    Length,
    Lower,
    NullIf,
    Rank,
    Replace,
    RowNumber,
    Substr,
    Trunc,
    TruncDate,
    TruncDay,
    TruncMonth,
    Upper,
)

from tests.qsapp.models import Event
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")

UTC = datetime.timezone.utc


async def library() -> tuple[Author, Author, Author]:
    ann = await Author.vinyl.create(name="Ann", age=30, email="ann@x.org")
    bob = await Author.vinyl.create(name="Bob", age=40)
    cy = await Author.vinyl.create(name="cy", age=50)
    for title, author, pages, price in (
        ("A1", ann, 100, "10.50"),
        ("A2", ann, 300, "20.00"),
        ("B1", bob, 200, "15.25"),
    ):
        await Book.vinyl.create(title=title, author=author, pages=pages, price=decimal.Decimal(price))
    return ann, bob, cy


async def test_f_arithmetic_in_filter_annotate_and_update():
    await library()
    assert await Book.vinyl.filter(pages__gt=F("price") * 10).values_list("title", flat=True) == ["A2", "B1"]
    rows = await Book.vinyl.annotate(double=F("pages") * 2, per=F("pages") / F("price")).values_list("title", "double")
    assert rows == [("A1", 200), ("A2", 600), ("B1", 400)]
    assert await Book.vinyl.filter(title="A1").update(pages=F("pages") + 1, price=F("price") * 2) == 1
    a1 = await Book.vinyl.get(title="A1")
    assert (a1.pages, a1.price) == (101, decimal.Decimal("21.00"))
    wrapped = await Author.vinyl.annotate(
        older=ExpressionWrapper(F("age") + 5, output_field=IntegerField())
    ).values_list("older", flat=True)
    assert wrapped == [35, 45, 55]


async def test_temporal_arithmetic_with_f():
    at = datetime.datetime(2024, 3, 15, 12, tzinfo=UTC)
    await Event.vinyl.create(name="a", at=at)
    await Event.vinyl.create(name="b", at=at + datetime.timedelta(days=3))
    later = await Event.vinyl.annotate(next_day=F("at") + datetime.timedelta(days=1)).values_list("next_day", flat=True)
    assert later == [at + datetime.timedelta(days=1), at + datetime.timedelta(days=4)]
    assert await Event.vinyl.filter(at__gt=at + datetime.timedelta(hours=1)).values_list("name", flat=True) == ["b"]
    await Event.vinyl.filter(name="a").update(at=F("at") - datetime.timedelta(minutes=30))
    assert (await Event.vinyl.get(name="a")).at == at - datetime.timedelta(minutes=30)


async def test_f_in_save_is_applied_by_the_database_and_reloads():
    ann = await Author.vinyl.create(name="Ann", age=30)
    ann.age = F("age") + 1
    await ann.save()
    if django.VERSION >= (6, 0):
        # Django 6 reads the saved value back (vinyl does where RETURNING
        # cannot, instead of leaving the field to load on access).
        assert ann.age == 31
    else:
        assert hasattr(ann.age, "resolve_expression")
    await Author.vinyl.filter(pk=ann.pk).update(age=F("age") * 2)
    await ann.refresh_from_db()
    assert ann.age == 62


async def test_q_objects_combine():
    await library()
    names = await Author.vinyl.filter(Q(age__lt=35) | Q(name__iexact="CY")).values_list("name", flat=True)
    assert names == ["Ann", "cy"]
    assert await Author.vinyl.filter(~Q(name="Bob") & Q(age__gte=30)).count() == 2
    assert await Author.vinyl.filter(Q(age__lt=35) ^ Q(name__startswith="c")).values_list("name", flat=True) == ["Ann", "cy"]


async def test_case_when_and_value_in_select_list():
    await library()
    rows = await Author.vinyl.annotate(
        band=Case(
            When(age__lt=35, then=Value("young")),
            When(age__lt=45, then=Value("mid")),
            default=Value("senior"),
        ),
        one=Value(1),
        pi=Value(3.5),
        dec=Value(decimal.Decimal("1.25"), output_field=DecimalField(max_digits=5, decimal_places=2)),
        flag=Value(True),
        nothing=Value(None, output_field=CharField()),
        text=Value("a'b%c"),
        numbered=Case(When(age__gte=40, then=Value(1)), default=Value(0)),
        is_old=Case(When(age__gte=40, then=True), default=False, output_field=BooleanField()),
    ).values_list("band", "one", "pi", "dec", "flag", "nothing", "text", "numbered", "is_old")
    assert rows == [
        ("young", 1, 3.5, decimal.Decimal("1.25"), True, None, "a'b%c", 0, False),
        ("mid", 1, 3.5, decimal.Decimal("1.25"), True, None, "a'b%c", 1, True),
        ("senior", 1, 3.5, decimal.Decimal("1.25"), True, None, "a'b%c", 1, True),
    ]


async def test_case_when_in_update_and_order_by():
    await library()
    await Author.vinyl.update(age=Case(When(name="Ann", then=Value(1)), When(name="Bob", then=F("age") + 2), default=Value(0)))
    assert await Author.vinyl.values_list("name", "age") == [("Ann", 1), ("Bob", 42), ("cy", 0)]
    ordered = await Author.vinyl.order_by(Case(When(name="Bob", then=Value(0)), default=Value(1)), "name")
    assert [a.name for a in ordered] == ["Bob", "Ann", "cy"]


async def test_database_functions():
    await library()
    rows = await Author.vinyl.annotate(
        low=Lower("name"),
        up=Upper("name"),
        n=Length("name"),
        full=Concat("name", Value(" <"), Coalesce("email", Value("none")), Value(">")),
        first=Left("name", 1),
        mid=Substr("name", 2, 1),
        swapped=Replace("name", Value("n"), Value("N")),
        blank=NullIf("name", Value("Bob")),
        big=Greatest("age", Value(45)),
        neg=Abs(F("age") * -1),
        text_age=Cast("age", CharField(max_length=10)),
    ).values("low", "up", "n", "full", "first", "mid", "swapped", "blank", "big", "neg", "text_age")
    assert rows[0] == {
        "low": "ann", "up": "ANN", "n": 3, "full": "Ann <ann@x.org>", "first": "A", "mid": "n",
        "swapped": "ANN", "blank": "Ann", "big": 45, "neg": 30, "text_age": "30",
    }  # fmt: skip
    assert rows[1]["full"] == "Bob <none>" and rows[1]["blank"] is None and rows[1]["swapped"] == "Bob"
    assert rows[2]["big"] == 50
    assert await Author.vinyl.annotate(c=Coalesce("email", "name")).values_list("c", flat=True) == ["ann@x.org", "Bob", "cy"]
    upper = Func(F("name"), function="UPPER", output_field=CharField())
    assert await Author.vinyl.filter(name="cy").annotate(u=upper).values_list("u", flat=True) == ["CY"]


async def test_extract_and_trunc_on_aware_datetimes():
    at = datetime.datetime(2024, 3, 15, 23, 45, 30, tzinfo=UTC)
    await Event.vinyl.create(name="e", at=at)
    row = await Event.vinyl.annotate(
        year=ExtractYear("at"),
        month=Extract("at", "month"),
        hour=Extract("at", "hour"),
        week_day=Extract("at", "week_day"),
        day=TruncDay("at"),
        month_start=TruncMonth("at"),
        date=TruncDate("at"),
        hour_start=Trunc("at", "hour"),
    ).values("year", "month", "hour", "week_day", "day", "month_start", "date", "hour_start")
    assert row == [{
        "year": 2024, "month": 3, "hour": 23, "week_day": 6,
        "day": datetime.datetime(2024, 3, 15, tzinfo=UTC),
        "month_start": datetime.datetime(2024, 3, 1, tzinfo=UTC),
        "date": datetime.date(2024, 3, 15),
        "hour_start": datetime.datetime(2024, 3, 15, 23, tzinfo=UTC),
    }]  # fmt: skip
    assert await Event.vinyl.filter(at__gte=TruncDay(Value(at))).count() == 1


async def test_subquery_outerref_and_exists():
    ann, bob, cy = await library()
    biggest = Book.vinyl.filter(author=OuterRef("pk")).order_by("-pages")
    rows = await Author.vinyl.annotate(
        top=Subquery(biggest.values("title")[:1]),
        top_pages=Subquery(biggest.values("pages")[:1]),
        has_books=Exists(Book.vinyl.filter(author=OuterRef("pk"))),
        has_big=Exists(Book.objects.filter(author=OuterRef("pk"), pages__gte=250)),
    ).values_list("name", "top", "top_pages", "has_books", "has_big")
    assert rows == [("Ann", "A2", 300, True, True), ("Bob", "B1", 200, True, False), ("cy", None, None, False, False)]
    with_books = await Author.vinyl.filter(Exists(Book.vinyl.filter(author=OuterRef("pk")))).values_list("name", flat=True)
    assert with_books == ["Ann", "Bob"]
    without = await Author.vinyl.filter(~Exists(Book.vinyl.filter(author=OuterRef("pk")))).values_list("name", flat=True)
    assert without == ["cy"]
    assert await Book.vinyl.filter(author__in=Author.vinyl.filter(age__gt=35)).values_list("title", flat=True) == ["B1"]
    # A subquery in update().
    pages = Book.vinyl.filter(author=OuterRef("pk")).order_by("pages").values("pages")[:1]
    await Author.vinyl.filter(book__isnull=False).update(age=Subquery(pages))
    assert await Author.vinyl.values_list("age", flat=True) == [100, 200, 50]


async def test_window_functions():
    for i, (kind, score) in enumerate((("a", 10), ("a", 30), ("a", 30), ("b", 5), ("b", 7))):
        await Event.vinyl.create(name=f"e{i}", kind=kind, score=score, at=datetime.datetime(2024, 1, 1 + i, tzinfo=UTC))
    rows = await Event.vinyl.annotate(
        rank=Window(Rank(), partition_by=F("kind"), order_by=F("score").desc()),
        dense=Window(DenseRank(), partition_by="kind", order_by="-score"),
        row=Window(RowNumber(), order_by="at"),
        running=Window(Sum("score"), partition_by="kind", order_by="at"),
        previous=Window(Lag("score"), partition_by="kind", order_by="at"),
        kind_avg=Window(Avg("score"), partition_by="kind"),
    ).order_by("at").values_list("name", "rank", "dense", "row", "running", "previous")
    assert rows == [
        ("e0", 3, 2, 1, 10, None),
        ("e1", 1, 1, 2, 40, 10),
        ("e2", 1, 1, 3, 70, 30),
        ("e3", 2, 2, 4, 5, None),
        ("e4", 1, 1, 5, 12, 5),
    ]
    # Filtering on a window function (Django 4.2+).
    top = await Event.vinyl.annotate(rank=Window(Rank(), partition_by="kind", order_by="-score")).filter(rank=1)
    assert sorted(e.name for e in top) == ["e1", "e2", "e4"]


async def test_conditional_aggregation():
    await library()
    totals = await Book.vinyl.aggregate(
        n=Count("pk"),
        big=Count("pk", filter=Q(pages__gte=200)),
        ann_pages=Sum("pages", filter=Q(author__name="Ann")),
        none_pages=Sum("pages", filter=Q(author__name="nobody")),
        none_default=Sum("pages", filter=Q(author__name="nobody"), default=0),
        cheapest=Min("price"),
        average=Avg("pages"),
    )
    assert totals == {
        "n": 3, "big": 2, "ann_pages": 400, "none_pages": None, "none_default": 0,
        "cheapest": decimal.Decimal("10.50"), "average": 200,
    }  # fmt: skip
    per_author = await Author.vinyl.annotate(
        books=Count("book"), long_books=Count("book", filter=Q(book__pages__gt=150))
    ).order_by("name").values_list("name", "books", "long_books")
    assert per_author == [("Ann", 2, 1), ("Bob", 1, 1), ("cy", 0, 0)]


async def test_annotate_values_aggregate_group_by():
    ann, bob, _ = await library()
    grouped = await Book.vinyl.values("author__name").annotate(n=Count("pk"), pages=Sum("pages")).order_by("author__name")
    assert grouped == [{"author__name": "Ann", "n": 2, "pages": 400}, {"author__name": "Bob", "n": 1, "pages": 200}]
    by_size = await Book.vinyl.annotate(size=Case(When(pages__gte=200, then=Value("big")), default=Value("small"))).values("size").annotate(n=Count("pk")).order_by("size")
    assert by_size == [{"size": "big", "n": 2}, {"size": "small", "n": 1}]
    # Meta.ordering does not apply to GROUP BY queries (Django 3.1+).
    having = await Author.vinyl.annotate(n=Count("book")).filter(n__gte=1).order_by("name").values_list("name", flat=True)
    assert having == ["Ann", "Bob"]
    top = await Author.vinyl.annotate(most=Max("book__pages")).aggregate(best=Max("most"), total=Sum("most"))
    assert top == {"best": 300, "total": 500}


async def test_alias_filters_without_selecting():
    await library()
    qs = Author.vinyl.alias(n=Count("book")).filter(n__gt=1)
    assert [a.name for a in await qs] == ["Ann"]
    assert not hasattr((await qs)[0], "n")
    assert await Author.vinyl.alias(low=Lower("name")).filter(low="cy").count() == 1
    assert await Author.vinyl.alias(low=Lower("name")).order_by("-low").values_list("name", flat=True) == ["cy", "Bob", "Ann"]
