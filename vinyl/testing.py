"""pytest plugin: run each async test in transactions rolled back at its end.

It needs pytest-asyncio (any mode: ``asyncio_mode = "auto"`` or the default
strict mode, where async tests carry ``@pytest.mark.asyncio``). Enable it in
the ``conftest.py`` at the root of your tests::

    pytest_plugins = ["vinyl.testing"]

and ask for the fixture in a test, or in a whole module::

    pytestmark = pytest.mark.usefixtures("vinyl_transaction")

    @pytest.mark.asyncio                      # not needed in auto mode
    async def test_create(vinyl_transaction):
        await Book.vinyl.create(title="x")    # gone after the test

With pytest-django, vinyl aliases use the test database of the sync alias of
the same database, and an async test marked ``@pytest.mark.django_db`` (not
``transaction=True``) gets ``vinyl_transaction`` by itself.

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

import inspect
from typing import TYPE_CHECKING, AsyncIterator

import pytest

from vinyl._testisolation import rolled_back_aliases, vinyl_aliases

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest_configure says what to install
    pytest_asyncio = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio.engine import AsyncConnection

__all__ = ["vinyl_test_aliases", "vinyl_transaction"]

_NEEDS_ASYNCIO = (
    "vinyl.testing needs pytest-asyncio to run async tests and fixtures: "
    "pip install pytest-asyncio (it works in strict mode, with "
    "@pytest.mark.asyncio on each async test, or with asyncio_mode = \"auto\")"
)


def pytest_configure(config: pytest.Config) -> None:
    if pytest_asyncio is None or not config.pluginmanager.hasplugin("asyncio"):
        raise pytest.UsageError(_NEEDS_ASYNCIO)


@pytest.fixture
def vinyl_test_aliases() -> list[str]:
    """The vinyl aliases whose queries ``vinyl_transaction`` rolls back."""
    return vinyl_aliases()


async def _vinyl_transaction(vinyl_test_aliases: list[str]) -> AsyncIterator[dict[str, AsyncConnection]]:
    """Run the test inside one rolled-back transaction per vinyl alias.

    Gives ``{alias: AsyncConnection}``: the connection each alias runs on,
    for SQLAlchemy Core statements in the same transaction.
    """
    async with rolled_back_aliases(vinyl_test_aliases) as connections:
        yield connections


# pytest-asyncio's own decorator: the fixture runs in strict mode too.
vinyl_transaction = (
    pytest_asyncio.fixture(_vinyl_transaction, name="vinyl_transaction")
    if pytest_asyncio is not None
    else pytest.fixture(_vinyl_transaction, name="vinyl_transaction")
)


@pytest.fixture(autouse=True)
def _vinyl_django_db(request: pytest.FixtureRequest) -> None:
    """Roll back the vinyl queries of async tests marked ``django_db``."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or "vinyl_transaction" in request.fixturenames:
        return
    function = getattr(request.node, "function", None)
    if function is None or not inspect.iscoroutinefunction(function):
        return
    if marker.kwargs.get("transaction") or (marker.args and marker.args[0]):
        return  # TransactionTestCase semantics: committed, then flushed
    request.getfixturevalue("vinyl_transaction")
