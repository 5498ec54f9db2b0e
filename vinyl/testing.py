"""pytest plugin: run each async test in transactions rolled back at its end.

Enable it in the ``conftest.py`` at the root of your tests (it needs
pytest-asyncio)::

    pytest_plugins = ["vinyl.testing"]

and ask for the fixture in a test, or in a whole module::

    pytestmark = pytest.mark.usefixtures("vinyl_transaction")

    async def test_create(vinyl_transaction):
        await Book.vinyl.create(title="x")    # gone after the test

Every vinyl alias of ``settings.DATABASES`` gets one transaction (override
the ``vinyl_test_aliases`` fixture to choose). Inside, the test runs as if
the transaction were not there: each operation outside ``vinyl.atomic``
gets a savepoint (an ``IntegrityError`` does not break the next query), the
outermost ``vinyl.atomic`` may be ``durable`` and runs its ``on_commit``
callbacks when it ends, and ``select_for_update()`` outside ``atomic``
raises as in production. Tasks the test starts share the transaction;
concurrent operations run one at a time on its connection.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, AsyncIterator

import pytest

from vinyl.transaction import rolled_back

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["vinyl_test_aliases", "vinyl_transaction"]


@pytest.fixture
def vinyl_test_aliases() -> list[str]:
    """The vinyl aliases whose queries ``vinyl_transaction`` rolls back."""
    from django.conf import settings

    return [
        alias
        for alias, config in settings.DATABASES.items()
        if str(config.get("ENGINE", "")).startswith("vinyl.")
    ]


@pytest.fixture
async def vinyl_transaction(vinyl_test_aliases: list[str]) -> AsyncIterator[dict[str, AsyncConnection]]:
    """Run the test inside one rolled-back transaction per vinyl alias.

    Gives ``{alias: AsyncConnection}``: the connection each alias runs on,
    for SQLAlchemy Core statements in the same transaction.
    """
    async with AsyncExitStack() as stack:
        connections = {
            alias: await stack.enter_async_context(rolled_back(alias))
            for alias in vinyl_test_aliases
        }
        yield connections
