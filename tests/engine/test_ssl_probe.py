"""asyncpg's SSL probe, cut short, leaves nothing unread for asyncio to log.

asyncpg asks a PostgreSQL server for TLS (SSLRequest) before it connects,
and again for each cancel request. When the code awaiting the answer is cut
short (asyncpg's connect timeout; a connection's teardown cancelling its
cancel request), the closed transport fails the answer's future, which
nobody reads: asyncio logs "Future exception was never retrieved" when the
future is collected (asyncpg issues 1211 and 1310). It failed vinyl's fault
suite at teardown, under load. The peer here is a server that takes the
connection and never answers the probe: a stalled PostgreSQL, as a server
under load or starting up can be.
"""

from __future__ import annotations

import asyncio
import gc

import asyncpg
import pytest

import vinyl.postgresql_backend.connect  # noqa: F401  (installs the probe's reader, as the backend does)


async def _cancelled_after(turns: int, port: int) -> None:
    """Cancel an asyncpg connect after ``turns`` turns of the loop."""
    task = asyncio.ensure_future(asyncpg.connect(host="127.0.0.1", port=port, user="postgres", ssl="prefer", timeout=5))
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_probe_cut_short_logs_nothing():
    taken: list[asyncio.StreamWriter] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken.append(writer)
        await reader.read(8)  # the SSLRequest, never answered

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    logged: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: logged.append(context))
    try:
        # Every moment of the connect, from the TCP handshake to the
        # probe's wait, by turns of the loop; then the connect timeout.
        for turns in range(12):
            await _cancelled_after(turns, port)
        with pytest.raises(TimeoutError):
            await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", ssl="prefer", timeout=0.2)
        await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
        for writer in taken:
            writer.close()
        server.close()
        await server.wait_closed()
    assert taken, "connects reached the stalled server"
    assert logged == []
