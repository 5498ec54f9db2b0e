"""Close vinyl's pools when the event loop that opened them shuts down.

A pool's connections belong to the event loop that opened them. Once that
loop is closed they cannot be closed cleanly any more: the server keeps them
open until the process exits (and a test database cannot be dropped while
they are). asyncio has no "loop closing" callback, but every orderly
shutdown finalizes the loop's async generators first
(``loop.shutdown_asyncgens()``): ``asyncio.run``, ``asyncio.Runner`` (and so
pytest-asyncio), and asgiref's ``async_to_sync``, which Django's test runner
uses for async tests. Each engine vinyl builds parks one generator on its
loop; finalizing it disposes of the engine, on that loop, while it still runs.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, AsyncGenerator, Awaitable, Callable

from vinyl._compat import driver_transport

logger = logging.getLogger("vinyl.engine")


def close_with_loop(entry: Any, dispose: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``dispose(entry)`` when the running loop shuts down its generators.

    Call from inside the loop. The generator is kept on ``entry``: dropping
    the entry drops it (the loop only keeps its generators weakly).
    """
    closer = _closer(entry, dispose)
    try:
        # Start it here, in the loop, so the loop registers it (firstiter hook).
        closer.asend(None).send(None)
    except StopIteration:
        pass
    entry.closer = closer


async def _closer(entry: Any, dispose: Callable[[Any], Awaitable[None]]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        try:
            await dispose(entry)
        except Exception:  # the loop is going away: report, never raise into it
            logger.exception("vinyl could not close the pool of %r at loop shutdown", entry.engine)


def sever(driver_connection: Any) -> None:
    """Shut down the socket of a driver connection whose event loop is gone.

    Nothing can close it through the driver any more (its coroutines need
    that loop); shutting the socket down makes the server end the session
    at once instead of keeping it until the process exits. asyncpg and
    asyncmy keep their transport private (read through vinyl._compat,
    here only, for this one purpose).
    """
    transport = driver_transport(driver_connection)
    raw = transport.get_extra_info("socket") if transport is not None else None
    if raw is None:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError as exc:  # already disconnected
        logger.debug("vinyl: the connection of a closed loop was already gone (%s)", exc)


__all__ = ["close_with_loop", "sever"]
