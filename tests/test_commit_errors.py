"""Errors raised at COMMIT (deferred constraints) are Django's, on every backend."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

import vinyl
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_foreign_key_violation_is_djangos_integrity_error():
    with pytest.raises(IntegrityError):
        await Book.vinyl.create(title="orphan", author_id=987654)
    assert await Book.vinyl.count() == 0


async def test_violation_checked_when_atomic_commits_is_djangos_integrity_error():
    with pytest.raises(IntegrityError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="kept?")
            await Book.vinyl.create(title="orphan", author_id=987654)
    assert await Author.vinyl.count() == 0


async def test_unique_violation_is_djangos_integrity_error_and_the_block_can_go_on():
    await Author.vinyl.create(name="a", email="a@x.org")
    async with vinyl.atomic():
        with pytest.raises(IntegrityError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="b", email="a@x.org")
        await Author.vinyl.create(name="c", email="c@x.org")
    assert await Author.vinyl.order_by("name").values_list("name", flat=True) == ["a", "c"]
