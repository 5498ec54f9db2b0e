"""A compiled plan returns what Django returns, whatever the values (issue 12).

Each test runs a shape once (so that its plan is built and cached), then
runs the same shape with other values, settings or time zones, and compares
vinyl's result with Django's sync ORM on the same tables (the oracle).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections import namedtuple
from typing import Any, Callable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import Count, Sum
from django.utils import timezone

from tests.diffapp.models import Item, Owner
from tests.testapp.models import AllTypes, Author

pytestmark = pytest.mark.usefixtures("vinyl_db")

UTC = datetime.timezone.utc


async def django(backend: str, model: type, run: Callable[[Any], Any]) -> Any:
    """What Django's sync ORM returns for ``run(model.objects)`` on ``backend``."""
    alias = settings.SYNC_ALIAS[backend]

    def oracle() -> Any:
        try:
            return run(model.objects.using(alias))
        finally:
            connections[alias].close()

    return await sync_to_async(oracle)()


async def ids(qs: Any) -> list:
    return sorted(await qs.values_list("id", flat=True))


def django_ids(qs: Any) -> list:
    return sorted(qs.values_list("id", flat=True))


# -- time zone ---------------------------------------------------------------


async def test_current_time_zone_is_never_compiled_into_a_plan(backend):
    # 20:00 UTC on Jan 1 is Jan 2 in Tokyo; 02:00 UTC on Jan 2 is Jan 1 in New York.
    for moment in (datetime.datetime(2024, 1, 1, 20, tzinfo=UTC), datetime.datetime(2024, 1, 2, 2, tzinfo=UTC)):
        await AllTypes.vinyl.create(moment=moment)
    days = (datetime.date(2024, 1, 1), datetime.date(2024, 1, 2))
    for zone in (None, "Asia/Tokyo", "America/New_York", None, "Asia/Tokyo"):
        with timezone.override(zone) if zone else timezone.override(timezone.get_default_timezone()):
            for day in days:
                got = await ids(AllTypes.vinyl.filter(moment__date=day))
                want = await django(backend, AllTypes, lambda m: django_ids(m.filter(moment__date=day)))
                assert got == want, (zone, day)
                got = await AllTypes.vinyl.filter(moment__date=day).count()
                assert got == len(want), (zone, day)
            for hour in (20, 5, 2, 21):
                got = await ids(AllTypes.vinyl.filter(moment__hour=hour))
                want = await django(backend, AllTypes, lambda m: django_ids(m.filter(moment__hour=hour)))
                assert got == want, (zone, hour)


# -- integer ranges ------------------------------------------------------------


async def test_a_value_beyond_the_field_range_never_plans_the_values_within(backend):
    # MySQL's PositiveIntegerField is 0..4294967295: Django drops a WHERE
    # whose value overflows it, and keeps it for values within.
    for positive in (1, 2_000_000_000, None):
        await AllTypes.vinyl.create(positive=positive)
    for bound in (5_000_000_000, 2_500_000_000, 2_147_483_648, 2_147_483_647, 4_294_967_295, 4_294_967_296, 2_500_000_000, -1, 0, 1):
        got = await ids(AllTypes.vinyl.filter(positive__lt=bound))
        want = await django(backend, AllTypes, lambda m: django_ids(m.filter(positive__lt=bound)))
        assert got == want, bound
        got = await AllTypes.vinyl.filter(positive__gt=bound).count()
        want = await django(backend, AllTypes, lambda m: m.filter(positive__gt=bound).count())
        assert got == want, bound
        got = await AllTypes.vinyl.filter(positive__lt=bound).update(char="x")
        want = await django(backend, AllTypes, lambda m: m.filter(positive__lt=bound).count())
        assert got == want, bound


# -- __in lists ------------------------------------------------------------------


async def test_a_duplicate_in_a_first_in_list_never_breaks_later_lists(backend):
    authors = [await Author.vinyl.create(name=f"a{n}", email=f"a{n}@x") for n in range(4)]
    a, b, c, d = (x.pk for x in authors)
    for values, want in (
        ([a, b, a], [a, b]),
        ([a, b, c], [a, b, c]),
        ([a, a, a], [a]),
        ([c, d, a], [a, c, d]),
        ([a, None, b], [a, b]),
        ([a, b, d], [a, b, d]),
        ([None, None, None], []),
        ([b, c, d], [b, c, d]),
    ):
        assert await ids(Author.vinyl.filter(id__in=values)) == want, values
        assert await Author.vinyl.filter(id__in=values).count() == len(want), values
        assert await Author.vinyl.filter(id__in=values).update(age=7) == len(want), values


async def test_none_in_filters_and_in_lists(backend):
    ann = await Author.vinyl.create(name="Ann", email=None)
    bob = await Author.vinyl.create(name="Bob", email="bob@x")
    for email, want in ((None, [ann.pk]), ("bob@x", [bob.pk]), (None, [ann.pk]), ("nobody", [])):
        assert await ids(Author.vinyl.filter(email=email)) == want, email
        assert await ids(Author.vinyl.exclude(email=email)) == sorted({ann.pk, bob.pk} - set(want)), email
    for emails, want in ((["bob@x", None], [bob.pk]), ([None, "x"], []), (["bob@x", "x"], [bob.pk])):
        assert await ids(Author.vinyl.filter(email__in=emails)) == want, emails


async def test_in_with_iterables_other_than_lists(backend):
    authors = [await Author.vinyl.create(name=f"a{n}", email=f"a{n}@x") for n in range(3)]
    a, b, c = (x.pk for x in authors)
    Pair = namedtuple("Pair", "first second")
    cases = (
        ([a, b], [a, b]),
        ((b, c), [b, c]),
        ({a, c}, [a, c]),
        (frozenset({b}), [b]),
        (Pair(a, c), [a, c]),
        (range(a, a + 2), [a, b]),
        ({a: 1, b: 2}.keys(), [a, b]),
        ([c, a], [a, c]),
    )
    for values, want in cases:
        assert await ids(Author.vinyl.filter(id__in=values)) == want, values
    # A generator is consumed once, as in Django.
    assert await ids(Author.vinyl.filter(id__in=(x for x in (a, b)))) == [a, b]


async def test_empty_in_lists(backend):
    await Author.vinyl.create(name="Ann", age=3)
    for values in ([], (), [None], set()):
        qs = Author.vinyl.filter(id__in=values)
        assert await qs == []
        assert await qs.count() == 0
        assert await qs.exists() is False
        assert await qs.values("name") == []
        assert await qs.values_list("name", flat=True) == []
        assert await qs.update(age=1) == 0
        assert await Author.vinyl.exclude(id__in=values).count() == 1
    assert (await Author.vinyl.get(name="Ann")).age == 3


async def test_long_in_lists_plan_from_cut_compilations_and_answer_as_django(backend, monkeypatch):
    """A list of LONG_LIST values or more is planned from the query compiled with it cut to 2 and 3 values."""
    from vinyl.translate import plans as plans_module
    from vinyl.translate.plan_cache import plan_cache_for
    from vinyl.translate.shapes import LONG_LIST

    widened = []
    original = plans_module._long_list_positions

    def spy(*args: Any) -> Any:
        found = original(*args)
        widened.append(found is not None and type(found[0]) is tuple)
        return found

    monkeypatch.setattr(plans_module, "_long_list_positions", spy)

    authors = [await Author.vinyl.create(name=f"a{n}", age=n % 7, email=f"a{n}@x") for n in range(12)]
    pks = [a.pk for a in authors]
    size = LONG_LIST + 36
    far = max(pks) + 1000

    def ints(chosen: list) -> list:  # the chosen keys among keys that match nothing
        return chosen + list(range(far, far + size - len(chosen)))

    def names(chosen: list) -> list:
        return chosen + [f"nobody-{n}-%_\\" for n in range(size - len(chosen))]

    cases = [
        (lambda m, v: m.filter(age__gte=1, pk__in=ints(v), name__gte="a").order_by("-pk"), [pks[1], pks[3], pks[8]]),
        (lambda m, v: m.filter(age__gte=1, pk__in=ints(v), name__gte="a").order_by("-pk"), [pks[2], pks[9]]),
        (lambda m, v: m.exclude(name__in=names(v)).filter(age__lt=5)[1:4], ["a1", "a2"]),
        (lambda m, v: m.exclude(name__in=names(v)).filter(age__lt=5)[2:6], ["a3", "a10", "a4"]),
        (lambda m, v: m.filter(email__in=[*names(v), None]).values("name", "age"), ["a5@x", "a6@x"]),
        (lambda m, v: m.filter(email__in=[*names(v), None]).values("name", "age"), ["a7@x"]),
        (lambda m, v: m.filter(name__in=names(v), age=0), ["a0", "a7", "a1"]),
        (lambda m, v: m.filter(name__in=names(v), age=0), ["a7", "a4"]),
    ]
    for make, chosen in cases:
        want = await django(backend, Author, lambda m: list(make(m, chosen)))
        assert list(await make(Author.vinyl, chosen)) == want, chosen
    got = await Author.vinyl.get(pk__in=ints([pks[4]]))
    assert got.pk == pks[4]
    assert (await Author.vinyl.get(pk__in=ints([pks[5]]))).pk == pks[5]
    # Each shape has its plan, made from the cut compilations (no "no probe values" or fallback).
    plans = plan_cache_for("vinyl_default").plans()
    long = [plan for plan in plans if len(plan.positions) >= size]
    assert len(long) >= 5, plan_cache_for("vinyl_default").info()
    assert widened.count(True) >= 5, widened
    # A list with values Django transforms (strings for an integer key) is kept off plans, as a short one is.
    strings = [str(p) for p in ints([pks[6]])]
    assert await ids(Author.vinyl.filter(pk__in=strings)) == [pks[6]]
    assert await ids(Author.vinyl.filter(pk__in=[str(p) for p in ints([pks[7]])])) == [pks[7]]


def test_widening_a_cut_list():
    from vinyl.translate.plans import _widened_positions, _widened_sql

    sql2 = "SELECT x FROM t WHERE a = %s AND b IN (%s, %s) AND c = %s LIMIT %s"
    sql3 = "SELECT x FROM t WHERE a = %s AND b IN (%s, %s, %s) AND c = %s LIMIT %s"
    assert _widened_sql(sql2, sql3, 5) == "SELECT x FROM t WHERE a = %s AND b IN (%s, %s, %s, %s, %s) AND c = %s LIMIT %s"
    assert _widened_sql(sql2, sql2, 5) is None
    assert _widened_sql(sql2, sql3.replace("c =", "d ="), 5) is None
    # slots: 0 = a, 1.. = the list, then c and the limit; ("k",) a constant.
    assert _widened_positions((0, 1, 2, ("k",), 3, 4), 2, 1, 5) == (0, 1, 2, 3, 4, 5, ("k",), 6, 7)
    assert _widened_positions((0, 1, 2, 3, ("k",), 4, 5), 3, 1, 5) == (0, 1, 2, 3, 4, 5, ("k",), 6, 7)
    assert _widened_positions((0, 2, 1, 3), 2, 1, 5) is None  # not one run
    assert _widened_positions((0, 1, 2, 1, 3), 2, 1, 5) is None  # a list slot used twice
    assert _widened_positions((0, 3), 2, 1, 5) is None  # no list
    # Slots the backend adapts (datetimes sent as text): (slot, adapter).
    f, g = str, repr
    assert _widened_positions(((0, f), (1, f), (2, f), 3), 2, 1, 4) == ((0, f), (1, f), (2, f), (3, f), (4, f), 5)
    assert _widened_positions((0, (1, f), (2, g)), 2, 1, 4) is None  # one adapter for the whole run


async def test_a_long_in_list_of_datetimes_answers_as_django(backend):
    base = datetime.datetime(2024, 1, 1, 12, tzinfo=UTC)
    rows = [await AllTypes.vinyl.create(moment=base + datetime.timedelta(hours=n)) for n in range(4)]
    for chosen in ([1, 3], [0, 2]):
        moments = [base + datetime.timedelta(hours=n) for n in chosen] + [base + datetime.timedelta(days=10, minutes=n) for n in range(80)]
        want = await django(backend, AllTypes, lambda m: django_ids(m.filter(moment__in=moments)))
        assert want == sorted(rows[n].pk for n in chosen)
        assert await ids(AllTypes.vinyl.filter(moment__in=moments)) == want
        assert await AllTypes.vinyl.filter(moment__in=moments).count() == len(want)
        assert await AllTypes.vinyl.filter(moment__in=moments).exists()
        days = [m.date() for m in moments]
        want_utc = await django(backend, AllTypes, lambda m: m.filter(moment__date__in=days).count())
        assert await AllTypes.vinyl.filter(moment__date__in=days).count() == want_utc
        with timezone.override("Asia/Tokyo"):  # a plan made in UTC is not used there
            want_days = await django(backend, AllTypes, lambda m: _in_tokyo(lambda: m.filter(moment__date__in=days).count()))
            assert await AllTypes.vinyl.filter(moment__date__in=days).count() == want_days


def _in_tokyo(run: Callable[[], Any]) -> Any:
    with timezone.override("Asia/Tokyo"):
        return run()


# -- LIKE escaping ---------------------------------------------------------------


NAMES = ["a_b", "a%b", "aXb", "axb", "a\\b", "A_B", "ab", "a__b"]


async def test_iexact_values_with_like_wildcards_match_as_in_django(backend):
    for name in NAMES:
        await Author.vinyl.create(name=name, email=None)
    for needle in ("bob", "a_b", "a%b", "a\\b", "axb", "a_b", "A%B", "a__b", "%", "_"):
        got = sorted(await Author.vinyl.filter(name__iexact=needle).values_list("name", flat=True))
        want = await django(backend, Author, lambda m: sorted(m.filter(name__iexact=needle).values_list("name", flat=True)))
        assert got == want, needle
        got = await Author.vinyl.filter(name__iexact=needle).count()
        assert got == len(want), needle


async def test_update_of_an_iexact_shape_changes_only_the_rows_django_changes(backend):
    for name in NAMES:
        await Author.vinyl.create(name=name, email=None, age=0)
    for n, needle in enumerate(("bob", "a_b", "a%b", "a\\b", "a_b"), 1):
        await Author.vinyl.filter(name__iexact=needle).update(age=n)
        want = await django(backend, Author, lambda m: m.filter(name__iexact=needle).count())
        assert await Author.vinyl.filter(age=n).count() == want, needle
    # Only the rows equal (case-insensitively) to a needle were ever updated.
    assert sorted(await Author.vinyl.filter(age=0).values_list("name", flat=True)) == ["aXb", "a__b", "ab", "axb"]


# -- validation --------------------------------------------------------------------


async def test_validation_errors_raise_at_filter_as_in_django(backend):
    await Author.vinyl.create(name="Ann", age=5)
    for _ in range(2):
        assert await Author.vinyl.filter(age="5").count() == 1
        assert await Author.vinyl.filter(age=5).count() == 1
        with pytest.raises(ValueError):
            Author.vinyl.filter(age="abc")
        with pytest.raises(ValueError):
            Author.vinyl.filter(name="Ann").filter(age="abc")
        with pytest.raises(ValueError):
            Author.vinyl.filter(age__in=["5", "abc"])


async def test_decimal_nan_and_infinity_are_handled_as_django_handles_them(backend):
    await AllTypes.vinyl.create(decimal=decimal.Decimal("1.5"))
    for _ in range(2):
        assert await AllTypes.vinyl.filter(decimal=decimal.Decimal("1.5")).count() == 1
        for special in (decimal.Decimal("NaN"), decimal.Decimal("Infinity"), decimal.Decimal("-Infinity")):
            with pytest.raises(ValidationError):
                AllTypes.vinyl.filter(decimal=special)
            with pytest.raises(ValidationError):
                AllTypes.vinyl.filter(decimal__gt=decimal.Decimal("0")).filter(decimal=special)


async def test_float_specials_in_filters_behave_as_in_django(backend):
    await AllTypes.vinyl.create(floating=1.5, big=1)
    for value in (1.5, float("inf"), 2.5, float("inf")):
        try:
            want = await django(backend, AllTypes, lambda m: django_ids(m.filter(floating__lt=value)))
        except Exception as exc:  # the oracle's error: vinyl raises Django's class of that name
            # (MySQL: the driver refuses inf; PyMySQL's class reaches Django's caller.)
            with pytest.raises(Exception) as raised:
                await ids(AllTypes.vinyl.filter(floating__lt=value))
            assert type(raised.value).__name__ == type(exc).__name__
        else:
            assert await ids(AllTypes.vinyl.filter(floating__lt=value)) == want, value


async def test_a_vinyl_queryset_as_an_in_value_and_as_in_bulk_ids(backend):
    ann = await Author.vinyl.create(name="Ann", age=1)
    bob = await Author.vinyl.create(name="Bob", age=2)
    young = Author.vinyl.filter(age__lt=2).values("pk")
    assert await ids(Author.vinyl.filter(pk__in=young)) == [ann.pk]
    assert await Author.vinyl.filter(pk__in=young).count() == 1
    found = await Author.vinyl.in_bulk(Author.vinyl.filter(age__gte=1).values_list("pk", flat=True))
    assert sorted(found) == [ann.pk, bob.pk]
    assert await Author.vinyl.in_bulk(Author.vinyl.filter(age__gt=5).values_list("pk", flat=True)) == {}


async def test_uuid_strings_in_every_spelling_match_as_in_django(backend):
    first, second = uuid.uuid4(), uuid.uuid4()
    await AllTypes.vinyl.create(uid=first)
    await AllTypes.vinyl.create(uid=second)
    for value in (first.hex, str(second), str(first), second.hex, str(first).upper(), first.hex, str(second)):
        got = await ids(AllTypes.vinyl.filter(uid=value))
        want = await django(backend, AllTypes, lambda m: django_ids(m.filter(uid=value)))
        assert got == want, value
        assert await AllTypes.vinyl.filter(uid=value).count() == len(want), value
    # A string that is no UUID raises where Django raises.
    with pytest.raises(ValidationError):
        AllTypes.vinyl.filter(uid="not-a-uuid")


async def test_aggregates_of_an_empty_in_list(backend):
    await Author.vinyl.create(name="Ann", age=3)
    for values in ([], [None]):
        qs = Author.vinyl.filter(id__in=values)
        assert await qs.aggregate(total=Sum("age"), n=Count("id")) == {"total": None, "n": 0}
        assert await qs.in_bulk() == {}


async def test_a_time_of_a_datetime_is_never_a_constant_of_a_plan(backend):
    at = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    for hours in (1, 6, 12, 18, 23):
        await AllTypes.vinyl.create(moment=at.replace(hour=hours))
    for bound in (
        datetime.datetime(2024, 10, 27, 22, 30, tzinfo=UTC),
        datetime.datetime(2024, 1, 1, 3, 59, tzinfo=UTC),
        datetime.datetime(2023, 5, 5, 13, 0, tzinfo=UTC),
        datetime.datetime(2024, 10, 28, 22, 30, tzinfo=UTC),
    ):
        got = await ids(AllTypes.vinyl.filter(moment__time__lt=bound))
        want = await django(backend, AllTypes, lambda m: django_ids(m.filter(moment__time__lt=bound)))
        assert got == want, bound
        got = await ids(AllTypes.vinyl.filter(moment__date=bound))
        want = await django(backend, AllTypes, lambda m: django_ids(m.filter(moment__date=bound)))
        assert got == want, bound
    for clock in (datetime.time(5, 0), datetime.time(13, 0, 0, 5), datetime.time(20, 0)):
        got = await ids(AllTypes.vinyl.filter(moment__time__lt=clock))
        want = await django(backend, AllTypes, lambda m: django_ids(m.filter(moment__time__lt=clock)))
        assert got == want, clock


async def test_delete_of_an_empty_in_list_deletes_nothing(backend):
    # (AllTypes has no relations: Django deletes it with one fast DELETE.)
    row = await AllTypes.vinyl.create(char="x")
    assert await AllTypes.vinyl.filter(id=row.pk, id__in=[]).delete() == (0, {})
    assert await AllTypes.vinyl.filter(id__in=[None]).delete() == (0, {})
    assert await AllTypes.vinyl.count() == 1


async def test_a_time_zone_inside_a_subquery_is_never_a_constant_of_a_plan(backend):
    # exclude() across a multi-valued relation puts the __date in a subquery.
    early, late = await Owner.vinyl.create(name="early"), await Owner.vinyl.create(name="late")
    await Item.vinyl.create(name="e", owner=early, at=datetime.datetime(2024, 1, 1, 2, tzinfo=UTC))
    await Item.vinyl.create(name="l", owner=late, at=datetime.datetime(2024, 1, 1, 20, tzinfo=UTC))
    for zone in (None, "Asia/Tokyo", "America/New_York", None, "Asia/Tokyo"):
        with timezone.override(zone) if zone else timezone.override(timezone.get_default_timezone()):
            for day in (datetime.date(2023, 12, 31), datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)):
                got = sorted(await Owner.vinyl.exclude(items__at__date=day).values_list("name", flat=True))
                want = await django(backend, Owner, lambda m: sorted(m.exclude(items__at__date=day).values_list("name", flat=True)))
                assert got == want, (zone, day)
                got = await Owner.vinyl.exclude(items__at__date=day).count()
                assert got == len(want), (zone, day)


async def test_long_in_lists_of_count_exists_and_update_plan_from_cut_compilations(backend, monkeypatch):
    """count(), exists() and update() of a long ``__in`` list are planned from the statement compiled with the list
    cut to 2 and 3 values (not a second compilation of every value), and answer as Django."""
    import vinyl.queryset as queryset_module
    from vinyl.translate.plan_cache import plan_cache_for
    from vinyl.translate.plans import Plan
    from vinyl.translate.shapes import LONG_LIST

    widened = []
    original = queryset_module.widened_outcome

    def spy(*args: Any) -> Any:
        found = original(*args)
        widened.append(found is not None and type(found[0]) is tuple)
        return found

    monkeypatch.setattr(queryset_module, "widened_outcome", spy)
    authors = [await Author.vinyl.create(name=f"a{n}", age=n % 7, email=f"a{n}@x") for n in range(12)]
    pks = [a.pk for a in authors]
    size = LONG_LIST + 36
    far = max(pks) + 1000

    def ints(chosen: list) -> list:
        return chosen + list(range(far, far + size - len(chosen)))

    def names(chosen: list) -> list:
        return chosen + [f"nobody-{n}-%_\\" for n in range(size - len(chosen))]

    cases = [
        (lambda m, v: m.filter(age__gte=1, pk__in=ints(v), name__gte="a"), [pks[1], pks[3], pks[8]]),
        (lambda m, v: m.filter(age__gte=1, pk__in=ints(v), name__gte="a"), [pks[2], pks[9]]),
        (lambda m, v: m.exclude(name__in=names(v)).filter(age__lt=5), ["a1", "a2"]),
        (lambda m, v: m.exclude(name__in=names(v)).filter(age__lt=5), ["a3", "a10", "a4"]),
        (lambda m, v: m.filter(name__in=names(v), age=0), ["a0", "a7", "a1"]),
        (lambda m, v: m.filter(name__in=names(v), age=0), ["a7", "a4"]),
        (lambda m, v: m.filter(name__in=names(v), age=0), ["nobody"]),
    ]
    for terminal in ("count", "exists"):
        for make, chosen in cases:
            want = await django(backend, Author, lambda m: getattr(make(m, chosen), terminal)())
            assert await getattr(make(Author.vinyl, chosen), terminal)() == want, (terminal, chosen)

    def restore_ages(m: Any) -> None:
        for n, pk in enumerate(pks):
            m.filter(pk=pk).update(age=n % 7)

    for n, (make, chosen) in enumerate(cases):
        matched = await django(backend, Author, lambda m: sorted(make(m, chosen).values_list("pk", flat=True)))
        assert await make(Author.vinyl, chosen).update(age=100 + n) == len(matched)
        assert await ids(Author.vinyl.filter(age=100 + n)) == matched
        await django(backend, Author, restore_ages)
    # Each kind has plans of the long list, made from the cut compilations (a shape whose constant equals one of
    # these values, exists()'s 1 beside age__gte=1, is kept off plans as for a short list).
    cache = plan_cache_for("vinyl_default")
    kinds = [key[1] for key, entry in cache.items() if type(entry) is Plan and len(entry.positions) >= size]
    assert sorted(set(kinds)) == ["count", "exists", "update"] and len(kinds) >= 7, cache.info()
    assert widened.count(True) >= len(kinds), widened
