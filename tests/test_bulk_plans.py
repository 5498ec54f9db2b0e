"""bulk_create() through a compiled plan: one INSERT straight on the driver.

Each test runs a shape more than once, so later runs go through the plan,
and checks the rows the database holds afterwards. Options the plan does not
cover, and lists Django splits into batches, go through Django's own
bulk_create; their tests check that they still work and build no plan.
"""

from __future__ import annotations

import datetime
import decimal

import pytest
from django.db import IntegrityError
from django.db.models import Value

import vinyl
from tests.qsapp.models import Gadget
from tests.queryset_api._sql import captured_sql
from tests.relapp.models import Restaurant
from tests.testapp.models import AllTypes, Author, Book, UUIDKeyed
from tests.txhelpers import committed_names
from vinyl.translate.plan_cache import plan_cache_for
from vinyl.translate.inserts import BulkInsertPlan

pytestmark = pytest.mark.usefixtures("vinyl_db")


def bulk_plan(model: type, count: int, pk_set: bool = False) -> BulkInsertPlan | None:
    """The compiled plan bulk_create() of ``count`` objects uses, if any."""
    shapes = plan_cache_for("vinyl_default").get((model.vinyl.model, "bulk_insert", pk_set))
    plan = shapes.get(count) if shapes is not None else None
    return plan if isinstance(plan, BulkInsertPlan) else None


def has_bulk_plans(model: type) -> bool:
    plans = plan_cache_for("vinyl_default")
    return any(key[:2] == (model.vinyl.model, "bulk_insert") for key in plans)


def authors(*names: str, **fields) -> list:
    return [Author.vinyl.model(name=name, email=f"{name}@x", **fields) for name in names]


async def names() -> list[str]:
    return await Author.vinyl.order_by("name").values_list("name", flat=True)


async def test_bulk_creates_of_one_shape_share_a_plan_and_return_their_own_keys():
    batches = [authors("a1", "a2", "a3"), authors("b1", "b2", "b3"), authors("c1", "c2")]
    created = [await Author.vinyl.bulk_create(batch) for batch in batches]
    assert bulk_plan(Author, 3) is not None and bulk_plan(Author, 2) is not None
    objs = [obj for batch in created for obj in batch]
    assert created == batches  # the same instances, in order
    assert len({o.pk for o in objs}) == 8 and None not in {o.pk for o in objs}
    assert all(not o._state.adding and o._state.db == "vinyl_default" for o in objs)
    rows = dict(await Author.vinyl.values_list("pk", "name"))
    assert rows == {o.pk: o.name for o in objs}
    # The instances are usable at once: save() updates their rows.
    objs[0].age = 41
    await objs[0].save()
    assert (await Author.vinyl.get(name="a1")).age == 41


async def test_values_a_plan_must_prepare_are_prepared_as_django_does():
    """Columns are read a whole list at a time when every value is one the
    field hands back unchanged; other values (a str for an integer, a
    bool) get Django's preparation, and expressions go through Django."""
    for names_ in (("p1", "p2"), ("q1", "q2")):
        await Author.vinyl.bulk_create(authors(*names_, age=30))
    assert bulk_plan(Author, 2) is not None
    await Author.vinyl.bulk_create([Author.vinyl.model(name="s", age="7"), Author.vinyl.model(name="t", age=True)])
    await Author.vinyl.bulk_create([Author.vinyl.model(name="u", age=Value(5) + 1), Author.vinyl.model(name="v", age=2)])
    ages = dict(await Author.vinyl.filter(name__in=["p1", "s", "t", "u", "v"]).values_list("name", "age"))
    assert ages == {"p1": 30, "s": 7, "t": 1, "u": 6, "v": 2}


async def test_one_object_and_instances_of_the_django_model():
    for name in ("one", "two"):
        (obj,) = await Author.vinyl.bulk_create([Author(name=name)])
        assert obj.pk is not None and not obj._state.adding
    assert bulk_plan(Author, 1) is not None
    assert await names() == ["one", "two"]


async def test_given_primary_keys_and_default_primary_keys():
    first = (await Author.vinyl.bulk_create(authors("seed")))[0]
    for start in (100, 200):
        given = [Author.vinyl.model(id=first.pk + start + i, name=f"k{start + i}") for i in range(3)]
        created = await Author.vinyl.bulk_create(given)
        assert [o.pk for o in created] == [first.pk + start + i for i in range(3)]
    assert bulk_plan(Author, 3, pk_set=True) is not None
    assert sorted(await Author.vinyl.values_list("pk", flat=True)) == sorted(
        [first.pk] + [first.pk + s + i for s in (100, 200) for i in range(3)]
    )
    keyed = [await UUIDKeyed.vinyl.bulk_create([UUIDKeyed(label=f"{n}{i}") for i in range(2)]) for n in "ab"]
    assert bulk_plan(UUIDKeyed, 2, pk_set=True) is not None
    pks = [o.pk for batch in keyed for o in batch]
    assert sorted(await UUIDKeyed.vinyl.values_list("pk", flat=True)) == sorted(pks)


async def test_defaults_and_values_of_every_type():
    for _ in range(2):
        gadgets = await Gadget.vinyl.bulk_create([Gadget(code=f"g{n}") for n in range(2)] if _ == 0 else [Gadget(code="x", count=5), Gadget(code="y")])
        assert all(g.name == "" and g.pk is not None for g in gadgets)
    assert bulk_plan(Gadget, 2) is not None
    assert await Gadget.vinyl.values_list("code", "count") == [("g0", 0), ("g1", 0), ("x", 5), ("y", 0)]
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    values = {"big": 2**40, "flag": True, "decimal": decimal.Decimal("1.5000"), "moment": moment, "data": {"a": [1]}}
    for _ in range(2):
        objs = await AllTypes.vinyl.bulk_create([AllTypes(**values), AllTypes()])
    assert bulk_plan(AllTypes, 2) is not None
    stored = await AllTypes.vinyl.filter(pk=objs[0].pk).values(*values)
    assert stored == [values]
    assert await AllTypes.vinyl.filter(big__isnull=True).count() == 2


async def test_foreign_keys():
    ann, bob = await Author.vinyl.bulk_create(authors("ann", "bob"))
    for n in range(2):
        books = await Book.vinyl.bulk_create(
            [
                Book(title=f"a{n}", author=ann, price=decimal.Decimal("1.25"), published=datetime.date(2024, 1, n + 1)),
                Book(title=f"b{n}", author_id=bob.pk),
            ]
        )
        assert [b.author_id for b in books] == [ann.pk, bob.pk]
    assert bulk_plan(Book, 2) is not None
    rows = await Book.vinyl.order_by("title").values_list("title", "author_id", "price", "published")
    assert rows == [
        ("a0", ann.pk, decimal.Decimal("1.25"), datetime.date(2024, 1, 1)),
        ("a1", ann.pk, decimal.Decimal("1.25"), datetime.date(2024, 1, 2)),
        ("b0", bob.pk, decimal.Decimal("0"), None),
        ("b1", bob.pk, decimal.Decimal("0"), None),
    ]
    with pytest.raises(ValueError, match="unsaved related object"):
        await Book.vinyl.bulk_create([Book(title="x", author=ann), Book(title="y", author=Author(name="new"))])
    assert await Book.vinyl.count() == 4


async def test_an_integrity_error_inserts_nothing_and_dooms_its_block():
    await Author.vinyl.bulk_create(authors("ann", "bob"))  # the plan exists now
    with pytest.raises(IntegrityError):
        await Author.vinyl.bulk_create(authors("cy", "ann"))  # ann@x is taken
    assert await committed_names() == ["ann", "bob"]
    async with vinyl.atomic():
        await Author.vinyl.bulk_create(authors("dan", "eve"))
        with pytest.raises(IntegrityError):
            async with vinyl.atomic():
                await Author.vinyl.bulk_create(authors("fay", "bob"))
    assert await committed_names() == ["ann", "bob", "dan", "eve"]
    with pytest.raises(IntegrityError):
        async with vinyl.atomic():
            await Author.vinyl.bulk_create(authors("gus", "hal"))
            await Author.vinyl.bulk_create(authors("ivy", "ann"))
    # The error rolled the whole block back, as in Django.
    assert await committed_names() == ["ann", "bob", "dan", "eve"]
    assert bulk_plan(Author, 2) is not None


async def test_options_and_several_batches_go_through_django():
    await Gadget.vinyl.create(code="b", name="original")
    await Gadget.vinyl.bulk_create([Gadget(code=c, name=c) for c in "abc"], ignore_conflicts=True)
    assert await Gadget.vinyl.values_list("code", "name") == [("a", "a"), ("b", "original"), ("c", "c")]
    with captured_sql() as statements:
        objs = await Gadget.vinyl.bulk_create([Gadget(code=c) for c in "defgh"], batch_size=2)
    assert len([sql for sql, _ in statements if sql.startswith("INSERT")]) == 3
    assert all(o.pk is not None for o in objs)
    assert not has_bulk_plans(Gadget)
    # Django's default options, given explicitly, still take the plan.
    await Gadget.vinyl.bulk_create([Gadget(code="i"), Gadget(code="j")], batch_size=2, ignore_conflicts=False)
    assert bulk_plan(Gadget, 2) is not None
    assert await Gadget.vinyl.count() == 10


async def test_unusual_lists_go_through_django():
    ann = (await Author.vinyl.bulk_create(authors("ann")))[0]
    # Keys given to some objects only; an object already saved.
    mixed = [Author.vinyl.model(id=ann.pk + 50, name="given"), Author.vinyl.model(name="auto")]
    assert [o.pk is not None for o in await Author.vinyl.bulk_create(mixed)] == [True, True]
    assert not any(key[1] == "bulk_insert" and key[2] for key in plan_cache_for("vinyl_default"))
    with pytest.raises(IntegrityError):
        await Author.vinyl.bulk_create([ann, Author.vinyl.model(name="x")])
    assert await names() == ["ann", "auto", "given"]
    with pytest.raises(ValueError, match="multi-table"):
        await Restaurant.vinyl.bulk_create([Restaurant(name="r")])
    assert not has_bulk_plans(Restaurant)
    assert await Author.vinyl.bulk_create([]) == []
