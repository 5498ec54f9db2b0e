"""Errors reach users as Django's exceptions, with the driver's as cause."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldError
from django.db import IntegrityError, OperationalError, connections

import vinyl
from tests.testapp.models import Author, Book
from vinyl.exceptions import SyncConnectionError, VinylConfigurationError

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_unique_violation_is_django_integrity_error_with_driver_cause():
    await Author.vinyl.create(name="a", email="x@example.com")
    with pytest.raises(IntegrityError) as caught:
        await Author.vinyl.create(name="b", email="x@example.com")
    assert caught.value.__cause__ is not None
    assert "IntegrityError" in type(caught.value.__cause__).__name__ or "Violation" in type(
        caught.value.__cause__
    ).__name__
    assert await Author.vinyl.count() == 1


async def test_foreign_key_violation_is_integrity_error_and_nothing_is_written():
    # PostgreSQL checks Django's deferred constraints at COMMIT.
    with pytest.raises(IntegrityError):
        await Book.vinyl.create(title="orphan", author_id=987654)
    assert await Book.vinyl.count() == 0


async def test_bad_lookup_raises_field_error_before_any_sql():
    with pytest.raises(FieldError):
        Author.vinyl.filter(nonexistent=1)
    with pytest.raises(FieldError):
        Author.vinyl.order_by("nonexistent")
    with pytest.raises(FieldError):
        Author.vinyl.filter(name__nolookup="x")


@pytest.mark.parametrize("use", [list, len, bool, iter])
async def test_sync_use_of_a_queryset_raises_type_error_saying_await(use):
    with pytest.raises(TypeError, match="await"):
        use(Author.vinyl.all())


async def test_sync_orm_on_a_vinyl_alias_raises_a_clear_error():
    with pytest.raises(SyncConnectionError, match="await"):
        list(Author.objects.using("vinyl_default").all())


async def test_missing_alias_names_the_alias():
    with pytest.raises(VinylConfigurationError, match="vinyl_nowhere"):
        await Author.vinyl.using("vinyl_nowhere").count()
    with pytest.raises(VinylConfigurationError, match="not a vinyl backend"):
        vinyl.get_engine("sync_postgresql")


@pytest.mark.backends("postgresql", "mysql", reason="SQLite has no server to be unreachable")
async def test_unreachable_server_names_alias_host_and_port(backend):
    target = dict(connections.settings["vinyl_default"])
    connections.settings["vinyl_unreachable"] = {**target, "HOST": "127.0.0.1", "PORT": "1"}
    try:
        with pytest.raises(OperationalError, match=r"'vinyl_unreachable' at 127\.0\.0\.1:1"):
            await Author.vinyl.using("vinyl_unreachable").count()
    finally:
        await vinyl.dispose("vinyl_unreachable")
        del connections.settings["vinyl_unreachable"]


def test_every_postgresql_error_class_is_the_one_psycopg_and_so_django_raise() -> None:
    """A SQLSTATE maps to the PEP 249 class psycopg gives it (Django's PostgreSQL backend re-raises it as
    django.db's class of that name): e.g. 21000, ON CONFLICT DO UPDATE touching a row twice, is a ProgrammingError."""
    import django.db
    import psycopg.errors

    from vinyl.exceptions import sqlstate_error_class

    pep249 = ("IntegrityError", "DataError", "NotSupportedError", "ProgrammingError", "InternalError",
              "OperationalError", "DatabaseError")
    checked = 0
    for cls in vars(psycopg.errors).values():
        code = getattr(cls, "sqlstate", None)
        if not (isinstance(cls, type) and issubclass(cls, psycopg.errors.Error) and code):
            continue
        name = next(base.__name__ for base in cls.__mro__ if base.__module__.startswith("psycopg") and base.__name__ in pep249)

        class Raised(Exception):
            sqlstate = code

        assert sqlstate_error_class(Raised()) is getattr(django.db, name), (code, cls.__name__, name)
        checked += 1
    assert checked > 200
