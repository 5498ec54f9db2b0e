"""A block's statements run on the driver connection its pooled connection
holds, asked for once: after SQLAlchemy lets go of that pooled connection
(invalidated, as on a lost connection), no statement of the block runs on the
driver connection it held, and the error is Django's."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, OperationalError
from sqlalchemy.exc import SQLAlchemyError

import vinyl
from tests.testapp.models import Author
from vinyl.engine.scope import active_scope

ALIAS = "vinyl_default"

pytestmark = [pytest.mark.usefixtures("vinyl_db")]


async def test_statements_of_a_block_share_its_driver_connection():
    await Author.vinyl.create(name="Ann", age=1)
    async with vinyl.atomic():
        scope = active_scope(ALIAS)
        assert scope is not None
        await Author.vinyl.get(name="Ann")
        first = scope.drivers()
        await Author.vinyl.filter(name="Ann").update(age=2)
        assert scope.drivers() == first
        assert first[0] is scope.connection.sync_connection.connection.dbapi_connection


async def test_no_statement_runs_on_a_block_connection_sqlalchemy_invalidated():
    await Author.vinyl.create(name="Ann", age=1)
    with pytest.raises(DatabaseError) as raised:
        async with vinyl.atomic():
            scope = active_scope(ALIAS)
            assert scope is not None
            await Author.vinyl.filter(name="Ann").update(age=2)
            scope.connection.sync_connection.invalidate()
            await Author.vinyl.get(name="Ann")
    assert isinstance(raised.value, OperationalError) and not isinstance(raised.value, SQLAlchemyError)
    # The write of the block was not kept, and the alias works on.
    assert (await Author.vinyl.get(name="Ann")).age == 1
