"""asyncpg's connect, run to its end even when the task asking is cancelled.

A cancellation that reaches ``asyncpg.connect()`` at the wrong moment (the
TCP connection made, the SSL probe not answered yet) closes the transport
under asyncpg's probe protocol, which then fails a future nobody awaits:
asyncio logs "Future exception was never retrieved: ConnectionError(
'unexpected connection_lost() call')" when it is collected (asyncpg issues
1211 and 1310), and a connection cut later in the handshake is left to the
garbage collector. So the connect runs in its own task; the caller waits on
it through a shield, and when the caller is cancelled, the connection that
arrives is closed at once and a failure is read, never logged.

The same future fails unread when asyncpg's own timeout cuts a connect
short during the probe, or when a connection's teardown cancels its cancel
request (which connects, and probes, too): vinyl cannot hold on to those
tasks, so every probe's future is read when it is done
(:func:`vinyl._compat.read_ssl_probe_failures`) and a failure nobody else
read is logged at debug level.

SQLAlchemy's asyncpg DB-API module takes the function it connects with as
the ``async_creator_fn`` connect argument (what ``create_async_engine(...,
async_creator=...)`` uses); a user who passes their own keeps theirs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from vinyl._compat import read_ssl_probe_failures

logger = logging.getLogger("vinyl.engine")


def _read_probe_failure(answer: asyncio.Future) -> None:
    """Read the failure of an SSL probe's answer, so asyncio never logs it unread."""
    if not answer.cancelled() and answer.exception() is not None:
        logger.debug("asyncpg's SSL probe failed: %r", answer.exception())


read_ssl_probe_failures(_read_probe_failure)

# The connects still running for a caller that was cancelled: a task the
# loop only references weakly must not be collected before it ends.
_abandoned: set[asyncio.Task] = set()


async def connect_to_the_end(*args: Any, **kwargs: Any) -> Any:
    """``asyncpg.connect(*args, **kwargs)``, never cut short by a cancellation."""
    connecting = asyncio.ensure_future(asyncpg.connect(*args, **kwargs))
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        if not connecting.done():
            _abandoned.add(connecting)
            connecting.add_done_callback(_close_arrived)
        else:
            _close_arrived(connecting)
        raise


def _close_arrived(connecting: asyncio.Task) -> None:
    """Close the connection a cancelled caller no longer wants."""
    _abandoned.discard(connecting)
    if connecting.cancelled():
        return
    error = connecting.exception()
    if error is not None:
        # The caller is gone: nobody is left to raise it to.
        logger.debug("a connect abandoned by a cancelled task failed: %r", error)
        return
    connecting.result().terminate()
