"""update() with an expression as its value: each expression its own plan (issue 17).

An update whose value is an expression (``F("age") + 1``) is planned with
the expression as part of the plan's key. Expressions that Django compiles
to other SQL or parameters must never share a plan: each test runs every
update twice through vinyl (the second run through the plan, if any) and
compares the rows and row counts with Django's sync ORM on the same tables.
"""

from __future__ import annotations

import decimal
from typing import Any, Callable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.db.models import CharField, DecimalField, F, FloatField, IntegerField, Value
from django.db.models.functions import Cast

from tests.test_write_plans import write_plans
from tests.testapp.models import Author

pytestmark = pytest.mark.usefixtures("vinyl_db")

NAMES = ("Ann", "Bobby", "Cyrilla")


async def rows() -> list:
    return [tuple(r) for r in await Author.vinyl.order_by("id").values_list("name", "age")]


async def reset() -> None:
    await Author.vinyl.all().delete()
    for i, name in enumerate(NAMES):
        await Author.vinyl.create(name=name, age=10 + i, email=f"{name}@x")


async def vinyl_run(updates: list) -> list:
    """Each update twice, on fresh rows: the counts and rows after each."""
    seen = []
    for field, make in updates:
        await reset()
        counts = [await Author.vinyl.filter(age__gte=11).update(**{field: make()}) for _ in range(2)]
        seen.append((counts, await rows()))
    return seen


async def django_run(backend: str, updates: list) -> list:
    alias = settings.SYNC_ALIAS[backend]

    def oracle() -> list:
        seen = []
        try:
            objects = Author.objects.using(alias)
            for field, make in updates:
                objects.all().delete()
                for i, name in enumerate(NAMES):
                    objects.create(name=name, age=10 + i, email=f"{name}@x")
                counts = [objects.filter(age__gte=11).update(**{field: make()}) for _ in range(2)]
                seen.append((counts, [tuple(r) for r in objects.order_by("id").values_list("name", "age")]))
            objects.all().delete()
        finally:
            connections[alias].close()
        return seen

    return await sync_to_async(oracle)()


UPDATES: list[tuple[str, Callable[[], Any]]] = [
    ("age", lambda: F("age") + 1),
    ("age", lambda: F("age") - 1),
    ("age", lambda: F("age") + 2),
    ("age", lambda: F("age") * 2),
    ("age", lambda: 2 + F("age")),
    ("age", lambda: F("age") + Value(3)),
    ("age", lambda: F("age") + F("age")),
    ("age", lambda: F("age") - F("age") + 1),
    ("age", lambda: (F("age") + 1) * 3),
    ("age", lambda: F("age") / 2),
    ("age", lambda: Value(7)),
    ("age", lambda: Value(7, output_field=IntegerField())),
    ("age", lambda: Value(True, output_field=IntegerField())),
    ("name", lambda: Value(1, output_field=CharField())),
    ("name", lambda: Value(True, output_field=CharField())),
    ("name", lambda: Value(1.0, output_field=CharField())),
    ("name", lambda: Value(decimal.Decimal("1.50"), output_field=CharField())),
    ("name", lambda: Value(decimal.Decimal("1.5"), output_field=CharField())),
    ("name", lambda: Cast(F("name"), output_field=CharField(max_length=3))),
    ("name", lambda: Cast(F("name"), output_field=CharField(max_length=5))),
    ("name", lambda: Cast(F("age") * 2, output_field=CharField(max_length=10))),
    ("name", lambda: Cast(Value(decimal.Decimal("2.345")), output_field=DecimalField(max_digits=5, decimal_places=1))),
    ("name", lambda: Cast(Value(decimal.Decimal("2.345")), output_field=DecimalField(max_digits=5, decimal_places=2))),
    ("age", lambda: Cast(Value(2.75), output_field=FloatField()) + 1),
    ("name", lambda: F("email")),
    ("name", lambda: F("name")),
]


async def test_different_update_expressions_never_share_a_plan(backend):
    got = await vinyl_run(UPDATES)
    want = await django_run(backend, UPDATES)
    for (field, make), g, w in zip(UPDATES, got, want):
        assert g == w, (field, make())


async def test_the_same_expressions_in_reverse_order(backend):
    # (A plan first made from the other expression of each pair.)
    updates = UPDATES[::-1]
    got = await vinyl_run(updates)
    want = await django_run(backend, updates)
    for (field, make), g, w in zip(updates, got, want):
        assert g == w, (field, make())


async def test_each_arithmetic_expression_has_a_plan_of_its_own(backend):
    # The usual expressions stay planned (one plan each, none shared), and
    # their second run through the plan updates what Django's does.
    planned = UPDATES[:10]
    got = await vinyl_run(planned)
    assert write_plans("update") == len(planned)
    assert got == await django_run(backend, planned)


#: One field of a plain value or F() and a constant, on a range of two
#: integer keys (the shapes update_shape and step_shape make apart), with
#: values the database refuses (errors compared by class).
RANGED: list[tuple[str, Callable[[], Any]]] = [
    ("name", lambda: "plain"),
    ("name", lambda: "123"),
    ("name", lambda: "a:b"),
    ("name", lambda: "x" * 101),
    ("age", lambda: 5),
    ("age", lambda: 40000),
    ("age", lambda: 0),
    ("age", lambda: -3),
    ("age", lambda: 2**31),
    ("age", lambda: F("age") + 1),
    ("age", lambda: F("age") - 2),
    ("age", lambda: F("age") * 3),
    ("age", lambda: F("age") + 2**31),
    ("email", lambda: "same@x"),
    ("email", lambda: None),
    ("name", lambda: None),
]


def _outcome(update: Callable[[], int]) -> Any:
    try:
        return update()
    except Exception as exc:  # (compared by class with Django's)
        return type(exc).__name__


async def _vinyl_outcome(update: Callable[[], Any]) -> Any:
    try:
        return await update()
    except Exception as exc:
        return type(exc).__name__


async def test_one_field_on_a_range_of_two_keys_updates_as_django(backend):
    seen = []
    for field, make in RANGED:
        await reset()
        counts = [await _vinyl_outcome(lambda: Author.vinyl.filter(age__gte=11, age__lt=13).update(**{field: make()})) for _ in range(2)]
        seen.append((counts, await rows(), [tuple(r) for r in await Author.vinyl.order_by("id").values_list("email")]))
    alias = settings.SYNC_ALIAS[backend]

    def oracle() -> list:
        want = []
        try:
            objects = Author.objects.using(alias)
            for field, make in RANGED:
                objects.all().delete()
                for i, name in enumerate(NAMES):
                    objects.create(name=name, age=10 + i, email=f"{name}@x")
                counts = [_outcome(lambda: objects.filter(age__gte=11, age__lt=13).update(**{field: make()})) for _ in range(2)]
                ordered = objects.order_by("id")
                want.append((counts, [tuple(r) for r in ordered.values_list("name", "age")], [tuple(r) for r in ordered.values_list("email")]))
            objects.all().delete()
        finally:
            connections[alias].close()
        return want

    want = await sync_to_async(oracle)()
    for (field, make), g, w in zip(RANGED, seen, want):
        assert g == w, (field, make())
