"""DEBUG = True (what startproject writes): Django's debug cursor logs every
statement, and vinyl's backends answer its questions without a sync query."""

from __future__ import annotations

import pytest
from django.db.models import Q
from django.test import override_settings

from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")


@override_settings(DEBUG=True)
async def test_writes_and_reads_through_django_work_with_debug_on():
    ann, created = await Author.vinyl.get_or_create(name="Ann", defaults={"age": 3})
    assert created
    again, created = await Author.vinyl.get_or_create(name="Ann", defaults={"age": 4})
    assert not created and again.pk == ann.pk
    await Book.vinyl.create(title="One", author=ann, pages=10)
    assert await Author.vinyl.filter(Q(name="Ann") | Q(age=99)).count() == 1
    assert await Book.vinyl.filter(Q(pages__gt=1)).update(pages=11) == 1
    assert await Author.vinyl.values_list("name", flat=True) == ["Ann"]
    assert (await Author.vinyl.update_or_create(name="Ann", defaults={"age": 5}))[0].age == 5
    assert await Author.vinyl.filter(Q(pk=ann.pk)).delete() == (2, {"testapp.Book": 1, "testapp.Author": 1})
