"""Regressions of issue 13 on the main servers: pools that leak or log, and
an engine per event loop (issue 12, part 5)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

import vinyl
from tests.conftest import point_default_alias
from tests.faults.sessions import Sessions
from tests.testapp.models import Author
from tests.txhelpers import closed_and_returned, configure_pool, run_loops_in_threads

pytestmark = pytest.mark.backends(
    "postgresql", "mysql", reason="counts server sessions; SQLite has no server"
)


@pytest.fixture
def pool_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records SQLAlchemy's pool logs at ERROR ("Exception closing connection")."""
    caplog.set_level(logging.ERROR, logger="sqlalchemy.pool")
    return caplog.records


@pytest.mark.usefixtures("vinyl_db")
async def test_overflow_connections_given_back_to_a_full_pool_are_closed_on_the_server(pool_errors):
    # An overflow connection returned to a full pool used to be closed
    # outside the greenlet: MissingGreenlet, and the session stayed open on
    # MariaDB (296 sessions after 80 rounds, then "Too many connections").
    await configure_pool(pool_size=1, max_overflow=5)
    sessions = await Sessions(vinyl.get_engine().url).start()
    try:
        peak = 0
        for _ in range(30):
            counts = await asyncio.gather(*(Author.vinyl.filter(name="x").count() for _ in range(6)))
            assert counts == [0] * 6
            # (A session closed a moment ago may still be listed by the server.)
            peak = max(peak, await sessions.settled_count(6))
        assert peak <= 6
        assert await closed_and_returned() == 0
        await vinyl.dispose()
        assert await sessions.settled_count(0) == 0
    finally:
        await sessions.close()
    assert [r.getMessage() for r in pool_errors] == []


def _run_queries() -> int:
    async def queries() -> int:
        counts = await asyncio.gather(*(Author.vinyl.filter(name="x").count() for _ in range(4)))
        return len(counts)

    return asyncio.run(queries())


def test_a_loop_closed_without_dispose_leaves_no_session_and_logs_nothing(_emptied, pool_errors):
    # A loop closed without shutting down its generators (no vinyl.dispose):
    # the next asyncio.run used to log a MissingGreenlet traceback for each
    # pooled connection of the dead loop, which stayed open on the server.
    point_default_alias(_emptied)

    async def queries() -> None:
        await asyncio.gather(*(Author.vinyl.filter(name="x").count() for _ in range(4)))

    loop = asyncio.new_event_loop()
    url = vinyl.get_engine().url
    sessions = Sessions(url)
    loop.run_until_complete(sessions.start())
    loop.run_until_complete(sessions.close())
    loop.run_until_complete(queries())
    loop.close()

    async def second() -> int:
        await queries()
        await vinyl.dispose()
        try:
            return await sessions.settled_count(0)
        finally:
            await sessions.close()

    assert asyncio.run(second()) == 0
    assert [r.getMessage() for r in pool_errors] == []


def test_each_event_loop_gets_its_own_engine(_emptied):
    # Two threads each running their own loop used to share one pool
    # ("attached to a different loop", "another operation is in progress").
    point_default_alias(_emptied)
    engines: dict[str, object] = {}
    started = threading.Barrier(2)

    async def run(name: str) -> None:
        engines[name] = vinyl.get_engine()
        started.wait(timeout=30)
        for _ in range(20):
            await asyncio.gather(*(Author.vinyl.filter(name="x").count() for _ in range(4)))
        await vinyl.dispose()

    run_loops_in_threads(run)
    assert engines["a"] is not engines["b"]


async def test_disposing_one_loops_engine_leaves_the_others(_emptied):
    point_default_alias(_emptied)
    here = vinyl.get_engine()
    other_loop_ready = threading.Event()
    dispose_done = threading.Event()
    result: dict[str, object] = {}

    def other() -> None:
        async def run() -> None:
            engine = vinyl.get_engine()
            result["engine"] = engine
            await Author.vinyl.count()
            other_loop_ready.set()
            await asyncio.get_running_loop().run_in_executor(None, dispose_done.wait, 60)
            # Still this loop's engine, still working.
            result["same"] = vinyl.get_engine() is engine
            result["count"] = await Author.vinyl.count()
            await vinyl.dispose()

        asyncio.run(run())

    thread = threading.Thread(target=other)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, other_loop_ready.wait, 60)
    await vinyl.dispose()
    dispose_done.set()
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 60)
    assert result["engine"] is not here
    assert result == {"engine": result["engine"], "same": True, "count": 0}
    assert vinyl.get_engine() is not here  # this loop's was disposed
    await vinyl.dispose()
