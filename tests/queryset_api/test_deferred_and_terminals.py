"""only()/defer(), explain(), in_bulk(), contains(), none()."""

from __future__ import annotations

import json

import django
import pytest
from django.db import connections

from vinyl.exceptions import DeferredFieldError
from tests.qsapp.models import Gadget
from tests.queryset_api._sql import captured_sql
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")


# only / defer ----------------------------------------------------------------


async def test_only_loads_the_given_fields_and_defers_the_rest():
    await Author.vinyl.create(name="Ann", age=30, email="a@x")
    with captured_sql() as statements:
        [ann] = await Author.vinyl.only("name")
        assert statements and len(statements) == 1
        assert (ann.pk, ann.name) == (ann.id, "Ann")
        assert ann.get_deferred_fields() == {"age", "email"}
        with pytest.raises(DeferredFieldError) as caught:
            ann.age
        # Reading a deferred field never queries.
        assert len(statements) == 1
    message = str(caught.value)
    assert "age" in message and "await obj.refresh_from_db(fields=['age'])" in message
    assert isinstance(caught.value, AttributeError)
    assert not hasattr(ann, "email")


async def test_defer_defers_the_given_fields():
    await Author.vinyl.create(name="Ann", age=30)
    [ann] = await Author.vinyl.defer("age", "email")
    assert ann.name == "Ann"
    with pytest.raises(DeferredFieldError):
        ann.age
    [again] = await Author.vinyl.defer("age").defer(None)
    assert again.age == 30


async def test_refresh_from_db_with_fields_loads_deferred_fields():
    await Author.vinyl.create(name="Ann", age=30, email="a@x")
    [ann] = await Author.vinyl.only("name")
    await ann.refresh_from_db(fields=["age"])
    assert ann.age == 30
    assert ann.get_deferred_fields() == {"email"}
    await ann.refresh_from_db(fields=["email"])
    assert ann.email == "a@x"


async def test_deferred_foreign_key_and_related_only():
    ann = await Author.vinyl.create(name="Ann", age=30)
    await Book.vinyl.create(title="t", author=ann, pages=12)
    [book] = await Book.vinyl.only("title")
    with pytest.raises(DeferredFieldError):
        book.author_id
    [book] = await Book.vinyl.select_related("author").only("title", "author__name")
    assert book["author"].name == "Ann"
    assert book["author"].get_deferred_fields() == {"age", "email"}
    with pytest.raises(DeferredFieldError):
        book.pages


async def test_save_of_a_deferred_instance_writes_only_loaded_fields():
    original = await Author.vinyl.create(name="Ann", age=30)
    [ann] = await Author.vinyl.only("name")
    ann.name = "Anne"
    with captured_sql() as statements:
        await ann.save()
    [update] = [sql for sql, _ in statements if sql.startswith("UPDATE")]
    assert "age" not in update
    fresh = await Author.vinyl.get(pk=original.pk)
    assert (fresh.name, fresh.age) == ("Anne", 30)


async def test_values_are_unaffected_by_only():
    await Author.vinyl.create(name="Ann", age=30)
    assert await Author.vinyl.only("name").values("name", "age") == [{"name": "Ann", "age": 30}]


# explain ---------------------------------------------------------------------


async def test_explain_default_text():
    await Author.vinyl.create(name="Ann")
    plan = await Author.vinyl.filter(name="Ann").explain()
    assert isinstance(plan, str) and "author" in plan.lower()


@pytest.mark.backends("postgresql", "mysql", reason="SQLite's EXPLAIN QUERY PLAN has no formats or options")
async def test_explain_json_is_the_plan_document(backend):
    plan = json.loads(await Author.vinyl.filter(name="Ann").explain(format="json"))
    if backend == "postgresql":
        assert isinstance(plan, list) and "Plan" in plan[0]
    else:
        assert "query_block" in plan


@pytest.mark.backends("postgresql", "mysql", reason="SQLite's EXPLAIN QUERY PLAN has no formats or options")
async def test_explain_options_of_the_database(backend):
    await Author.vinyl.create(name="Ann")
    if backend == "postgresql":
        analyzed = await Author.vinyl.filter(name="Ann").explain(analyze=True, buffers=True, costs=False)
        assert "actual time" in analyzed and "cost=" not in analyzed
        verbose = await Author.vinyl.filter(name="Ann").explain(verbose=True)
        assert "Output:" in verbose
        yaml = await Author.vinyl.all().explain(format="yaml")
        assert "Node Type" in yaml
    else:
        # MariaDB: ANALYZE runs the query and reports r_rows.
        analyzed = await Author.vinyl.filter(name="Ann").explain(analyze=True, format="json")
        assert "r_rows" in analyzed or "r_loops" in analyzed
        assert await Author.vinyl.filter(name="Ann").explain(format="text")


async def test_explain_rejects_unknown_formats_and_options():
    with pytest.raises(ValueError, match="format"):
        await Author.vinyl.explain(format="nope")
    with pytest.raises(ValueError):
        await Author.vinyl.explain(no_such_option=True)


# in_bulk / contains / none ----------------------------------------------------


async def test_in_bulk_by_pk_and_by_unique_field():
    ann = await Author.vinyl.create(name="Ann", email="a@x")
    bob = await Author.vinyl.create(name="Bob", email="b@x")
    assert await Author.vinyl.in_bulk([ann.pk, bob.pk, 999_999]) == {ann.pk: ann, bob.pk: bob}
    everyone = await Author.vinyl.in_bulk()
    assert set(everyone) == {ann.pk, bob.pk} and type(everyone[ann.pk]) is Author.vinyl.model
    by_email = await Author.vinyl.in_bulk(["a@x"], field_name="email")
    assert by_email == {"a@x": ann}
    gadget = await Gadget.vinyl.create(code="g1")
    assert await Gadget.vinyl.in_bulk(["g1", "g2"], field_name="code") == {"g1": gadget}
    assert await Author.vinyl.filter(name="Bob").in_bulk(field_name="email") == {"b@x": bob}


async def test_in_bulk_with_an_empty_list_sends_no_sql():
    with captured_sql() as statements:
        assert await Author.vinyl.in_bulk([]) == {}
    assert statements == []


async def test_in_bulk_more_ids_than_the_parameter_limit():
    objs = await Gadget.vinyl.bulk_create([Gadget.vinyl.model(code=f"g{i}") for i in range(40_000)])
    found = await Gadget.vinyl.in_bulk([o.pk for o in objs])
    assert len(found) == 40_000


async def test_in_bulk_validates_like_django():
    with pytest.raises(ValueError, match="unique"):
        await Author.vinyl.in_bulk(["Ann"], field_name="name")
    if django.VERSION < (6, 0):
        with pytest.raises(TypeError):
            await Author.vinyl.values("name").in_bulk([1])
    else:  # Django 6 maps the keys to values() rows
        ann = await Author.vinyl.create(name="Ann")
        assert await Author.vinyl.values("name").in_bulk([ann.pk]) == {ann.pk: {"name": "Ann"}}
    with pytest.raises(TypeError):
        await Author.vinyl.all()[:1].in_bulk([1])


async def test_contains():
    ann = await Author.vinyl.create(name="Ann")
    bob = await Author.vinyl.create(name="Bob")
    assert await Author.vinyl.filter(name="Ann").contains(ann) is True
    assert await Author.vinyl.filter(name="Ann").contains(bob) is False
    # An instance of the plain Django model is accepted too.
    plain = Author(pk=ann.pk, name="Ann")
    assert await Author.vinyl.contains(plain) is True
    with pytest.raises(ValueError, match="unsaved"):
        await Author.vinyl.contains(Author.vinyl.model(name="x"))
    with pytest.raises(TypeError):
        await Author.vinyl.values("pk").contains(ann)
    assert await Book.vinyl.contains(ann) is False  # another model
    with pytest.raises(TypeError, match="model instance"):
        await Author.vinyl.contains("Ann")


async def test_none_is_evaluated_without_sql():
    await Author.vinyl.create(name="Ann")
    with captured_sql() as statements:
        empty = Author.vinyl.none()
        assert await empty == []
        assert await empty.count() == 0
        assert await empty.exists() is False
        assert await empty.first() is None
        assert await empty.aggregate() == {}
        assert await empty.in_bulk([1]) == {}
        assert await empty.update(name="x") == 0
        assert await empty.delete() == (0, {})
        assert await empty.values_list("name", flat=True) == []
        assert await empty.filter(name="Ann") == []
        assert [a async for a in empty] == []
        assert await Author.vinyl.filter(pk__in=[]) == []
    assert statements == []
    assert await Author.vinyl.count() == 1


async def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        Author.vinyl.all().nonsense