"""``__in`` lists of integers of several sizes: one plan whatever their order.

An integer's kind (where it falls among 2**15, 2**16, 2**31, 2**32, 2**63...
and its sign) is part of a query's shape (see vinyl.translate.shapes), and
on PostgreSQL each integer placeholder of a plan's SQL is cast by its size.
A list whose kinds come in another order at each query (a prefetch's keys,
read in a table's physical order once updates have moved its rows) must
still find one plan: its values are bound in ascending order (so grouped by
kind). The rows must be Django's, on every backend, for every order.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q

from tests.testapp.models import AllTypes, Author, Book, Tag
from vinyl.translate.plan_cache import plan_cache_for
from vinyl.translate.plans import Plan, Unplanned

pytestmark = pytest.mark.usefixtures("vinyl_db")

# Values of every integer kind up to 64 bits, each stored once.
STORED = [5, 7, 32767, 40000, 65535, 70000, 2**31 - 1, 2**31 + 5, 2**40, 2**63 - 1, -3, -32769, -(2**40), -(2**63)]

# Lists of several kinds (with values stored and not), each asked in many orders.
LISTS = {
    "widths": [5, 40000, 70000, 2**31 + 5, 2**40, -3, -(2**40), 7, 40001],
    "none and repeats": [40000, None, 5, 40000, 5, 2**40, None, 2**63 - 1],
    # Kinds interleaved: grouping moves most values.
    "interleaved": [40000, 5, 40001, 6, 70000, 7, 70001, 8, 2**31 - 1, 2**31 + 5],
    "edges": [32767, 32768, 65535, 65536, 2**31 - 1, 2**31, 2**63 - 1, -32768, -32769, -(2**63)],
}

ORDERS = 8


def orders(values: list) -> list[list]:
    """``values`` and ORDERS - 1 other orders of them (the same every run),
    or every order of a list of fewer."""
    rng = random.Random(17)
    found = [list(values)]
    while len(found) < min(ORDERS, math.factorial(len(values))):
        other = list(values)
        rng.shuffle(other)
        if other not in found:
            found.append(other)
    return found


def plans_of(model: type) -> list:
    """The keys of the stored plans of ``model``'s queries (and why others have none)."""
    cache = plan_cache_for("vinyl_default")
    return [key for key, entry in cache.items() if type(key) is tuple and getattr(key[0], "_meta", None) is not None
            and key[0]._meta.concrete_model is model and type(entry) is Plan]  # fmt: skip


def no_permanent_refusals() -> bool:
    return not any(type(entry) is Unplanned and entry.permanent for entry in plan_cache_for("vinyl_default").values())


async def answer(build: Callable[[Any], Any], sync: str, run: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``run(build(manager))`` through vinyl and through Django's sync ORM
    (the class of the error raised, where one is)."""

    def django() -> Any:
        try:
            found = run(build(AllTypes.objects.using(sync)))
            return found if isinstance(found, (int, bool)) else list(found)
        except Exception as exc:  # noqa: BLE001 - the class is the answer compared
            return type(exc).__name__

    expected = await sync_to_async(django)()
    try:
        got = await run(build(AllTypes.vinyl.all()))
        got = got if isinstance(got, (int, bool)) else list(got)
    except Exception as exc:  # noqa: BLE001 - the class is the answer compared
        got = type(exc).__name__
    return got, expected


def pks(qs: Any) -> Any:
    """The matching pks, in order."""
    return qs.order_by("pk").values_list("pk", flat=True)


@pytest.mark.parametrize("name", sorted(LISTS))
async def test_every_order_of_a_list_shares_one_plan_and_answers_as_django(backend, name):
    await AllTypes.vinyl.bulk_create([AllTypes(big=v, small=i % 3) for i, v in enumerate([*STORED, None])])
    sync = settings.SYNC_ALIAS[backend]
    queries: list[tuple[str, Callable[[Any, list], Any], Callable[[Any], Any]]] = [
        ("filter", lambda qs, values: qs.filter(big__in=values), pks),
        ("exclude", lambda qs, values: qs.exclude(big__in=values), pks),
        ("count", lambda qs, values: qs.filter(big__in=values), lambda qs: qs.count()),
        ("values", lambda qs, values: qs.filter(small__lte=1, big__in=values).order_by("-big").values("big", "small"), lambda qs: qs),
        ("exists", lambda qs, values: qs.filter(big__in=values, small=2), lambda qs: qs.exists()),
    ]
    for label, build, run in queries:
        before = len(plans_of(AllTypes))
        for values in orders(LISTS[name]):
            got, expected = await answer(lambda qs: build(qs, values), sync, run)
            assert got == expected, (label, values)
        assert len(plans_of(AllTypes)) == before + 1, label
    assert no_permanent_refusals()


async def test_get_of_any_order_shares_one_plan(backend):
    objs = await AllTypes.vinyl.bulk_create([AllTypes(big=v) for v in STORED])
    by_big = {obj.big: obj.pk for obj in objs}
    before = len(plans_of(AllTypes))
    for values in orders([40000, 6, 2**40 + 1, 80000, -4, 2**31 + 9]):
        assert (await AllTypes.vinyl.get(big__in=values)).pk == by_big[40000]
    assert len(plans_of(AllTypes)) == before + 1
    for values in orders([5, 40000, 2**40 + 1]):
        with pytest.raises(AllTypes.MultipleObjectsReturned):
            await AllTypes.vinyl.get(big__in=values)


async def test_lists_combined_with_q_and_querysets_answer_as_django(backend):
    # Q objects are compiled by Django every time; querysets combined with |
    # and & keep the grouped lists they were built with.
    await AllTypes.vinyl.bulk_create([AllTypes(big=v, small=i % 3) for i, v in enumerate([*STORED, None])])
    sync = settings.SYNC_ALIAS[backend]
    for values in orders(LISTS["interleaved"])[:4] + orders(LISTS["none and repeats"])[:4]:
        other = list(reversed(values))
        cases: list[Callable[[Any], Any]] = [
            lambda qs: qs.filter(Q(big__in=values) | Q(small=1)),
            lambda qs: qs.filter(~Q(big__in=values) | Q(big__isnull=True)),
            lambda qs: qs.filter(big__in=values) | qs.filter(small__in=[2, 40000]),
            lambda qs: qs.exclude(big__in=values) & qs.filter(big__in=other + [-32769]),
            lambda qs: qs.filter(big__in=values).exclude(big__in=other[:3]),
            # Positional lists keep their order: a range's bounds.
            lambda qs: qs.filter(big__range=(-(2**40), 40000)),
            lambda qs: qs.filter(big__range=(40000, -(2**40))),
        ]
        for build in cases:
            got, expected = await answer(build, sync, pks)
            assert got == expected, values


async def test_a_long_list_in_any_order_shares_one_plan(backend):
    # 64 values and more: planned from the list cut to 2 and 3 values.
    stored = [*range(1, 40), *range(40000, 40030), *range(2**31, 2**31 + 10)]
    await AllTypes.vinyl.bulk_create([AllTypes(big=v) for v in stored])
    sync = settings.SYNC_ALIAS[backend]
    asked = [*stored[::2], 33, 50000, 2**31 + 11, 2**40]
    before = len(plans_of(AllTypes))
    for values in orders(asked):
        got, expected = await answer(lambda qs: qs.filter(big__in=values), sync, pks)
        assert got == expected
        got, expected = await answer(lambda qs: qs.exclude(big__in=values), sync, lambda qs: qs.count())
        assert got == expected
    assert len(plans_of(AllTypes)) == before + 2
    assert no_permanent_refusals()


# Keys of several kinds (an AUTO_INCREMENT or sequence past them is no harm:
# every later test takes keys from where it is).
AUTHOR_KEYS = [5, 40000, 9, 70000, 40001, 12, 2**31 - 1]
BOOK_KEYS = [3, 40003, 70003, 8, 40008, 65536, 11]


async def _library() -> None:
    names = ["m", "c", "x", "a", "q", "f", "k"]
    for pk, name in zip(AUTHOR_KEYS, names):
        await Author.vinyl.create(pk=pk, name=name, age=pk % 7, email=f"{pk}@x")
    tags = [await Tag.vinyl.create(pk=pk, name=f"t{pk}") for pk in (4, 40004, 70004)]
    for i, pk in enumerate(BOOK_KEYS):
        book = await Book.vinyl.create(pk=pk, title=names[-1 - i], author_id=AUTHOR_KEYS[(i * 3) % len(AUTHOR_KEYS)])
        await book.tags.aset(tags[: i % 4])


def _tree(objs: list, lookup: str, nested: str | None, vinyl: bool) -> list:
    """Each object's pk with its prefetched ``lookup`` (and their ``nested``), as pks."""

    def read(obj: Any, name: str) -> Any:
        if vinyl:
            return obj[name]
        found = getattr(obj, name)
        return list(found.all()) if hasattr(found, "all") else found

    if lookup == "author":
        return [(obj.pk, read(obj, lookup).pk) for obj in objs]
    # (Tags have no ordering: in any order the server reads them.)
    tree = [
        (obj.pk, [(r.pk, sorted(t.pk for t in read(r, nested)) if nested else None) for r in read(obj, lookup)])
        for obj in objs
    ]
    return [(pk, sorted(related)) for pk, related in tree] if lookup == "tags" else tree


@pytest.mark.parametrize(
    "model, lookup, nested",
    [(Author, "book_set", None), (Book, "author", None), (Book, "tags", None), (Author, "book_set", "tags")],
    ids=["reverse_fk", "forward_fk", "m2m", "nested"],
)
async def test_prefetches_of_keys_in_any_order_share_their_plans(backend, model, lookup, nested):
    await _library()
    sync = settings.SYNC_ALIAS[backend]
    path = f"{lookup}__{nested}" if nested else lookup
    related = {"book_set": Book, "author": Author, "tags": Tag}[lookup]
    # Each order of the owners reads the related rows' keys in another order of kinds.
    orderings = [("pk",), ("-pk",), ("name",), ("-name",), ("age", "pk"), ("-age", "-pk")]
    if model is Book:
        orderings = [("pk",), ("-pk",), ("title",), ("-title",), ("author_id", "pk"), ("-author_id", "-pk")]
    before = set(plans_of(related)), set(plans_of(Tag))
    for _ in range(2):
        for ordering in orderings:
            mine = await model.vinyl.order_by(*ordering).prefetch_related(path)
            theirs = await sync_to_async(
                lambda: _tree(list(model.objects.using(sync).order_by(*ordering).prefetch_related(path)), lookup, nested, False)
            )()
            assert _tree(mine, lookup, nested, True) == theirs, ordering
    # The related query of each set of keys: one plan whatever their order.
    assert len(set(plans_of(related)) - before[0]) == 1
    if nested:
        assert len(set(plans_of(Tag)) - before[1]) == 1
    assert no_permanent_refusals()
