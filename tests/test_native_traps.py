"""What a Django user tries first, with vinyl: each gets an error that says
what to do instead of a misleading one."""

from __future__ import annotations

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.core.management import call_command

from tests.testapp.models import Author, Book
from vinyl.exceptions import SyncConnectionError


@pytest.mark.usefixtures("vinyl_db")
async def test_reading_a_relation_without_await_says_to_await_or_select_related():
    ann = await Author.vinyl.create(name="Ann")
    book = await Book.vinyl.create(title="One", author=ann)
    with pytest.raises(AttributeError, match=r"\(await obj\.author\)\.name.*select_related\('author'\).*obj\['author'\]\.name"):
        book.author.name  # noqa: B018
    assert (await book.author).name == "Ann"
    assert (await Book.vinyl.select_related("author").get())["author"].name == "Ann"


@pytest.mark.usefixtures("vinyl_db")
async def test_saving_the_users_own_instance_in_async_code_points_to_vinyl():
    with pytest.raises(SynchronousOnlyOperation, match=r"Author\.save\(\).*await Author\.vinyl\.create\(\.\.\.\)"):
        await Author(name="x").save()
    ann = await Author.vinyl.create(name="Ann")
    plain = Author(pk=ann.pk, name="Ann")
    with pytest.raises(SynchronousOnlyOperation, match=r"Author\.delete\(\).*await obj\.delete\(\)"):
        await plain.delete()
    with pytest.raises(SynchronousOnlyOperation, match=r"refresh_from_db\(\).*Author\.vinyl\.get"):
        await plain.refresh_from_db()
    assert await Author.vinyl.count() == 1


def test_migrate_on_a_vinyl_alias_says_migrations_run_on_the_sync_alias():
    with pytest.raises(SyncConnectionError, match=r"migrations .* run on the sync alias .*migrate --database \w+"):
        call_command("migrate", database="vinyl_default", verbosity=0)
