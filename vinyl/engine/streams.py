"""Streamed reads (``async for``): a server-side cursor straight on the
driver, on a block's connection between its other statements, or on a
connection of its own outside a block."""

from __future__ import annotations

from typing import AsyncGenerator

from vinyl.engine.checkout import checkout, discard, end_interrupted, release
from vinyl.engine.disconnects import _driver_disconnect, _raise_as_django
from vinyl.engine.engines import DriverCursor, EngineConfig, EngineEntry, engine_entry
from vinyl.engine.scope import Scope, State, active_scope, refuse_if_broken
from vinyl.engine.shield import finish
from vinyl.engine.statements import _driver_in_scope, _locked, _on_driver, recover_from_disconnect


def stream(alias: str, sql: str, params: tuple, size: int) -> AsyncGenerator[list, None]:
    """Stream the rows of one read, ``size`` at a time, from a driver cursor.

    Inside a block (or a signal receiver's level) the cursor is on the
    block's connection, and the scope's lock is held only while a chunk is
    fetched: the block's other statements (this task's and its siblings')
    run between two chunks. MySQL buffers the result there, since an
    unbuffered one would have to hold the connection for the stream's life.
    Otherwise a connection is checked out for the stream alone, in a
    transaction where the driver's cursor needs one (asyncpg's portals).

    Close the iterator (``aclosing``) to free its cursor early. A stream cut
    short by an error or a cancellation discards a connection of its own,
    which may be mid-result; on a block's connection each fetch runs to its
    end first.
    """
    scope = active_scope(alias)
    if scope is not None:
        return _stream_in_scope(alias, scope, sql, params, size)
    return _stream_alone(alias, sql, params, size)


async def _stream_in_scope(alias: str, scope: Scope, sql: str, params: tuple, size: int) -> AsyncGenerator[list, None]:
    refuse_if_broken(scope)
    config = scope.entry.config
    cursor = await _locked(scope, _open_in_block, alias, scope, sql, params)
    try:
        while True:
            rows = await _locked(scope, _fetch_chunk, config, cursor, size)
            if rows:
                yield rows
            if len(rows) < size:
                return
    finally:
        await _close_in_scope(scope, cursor)


async def _open_in_block(alias: str, scope: Scope, sql: str, params: tuple) -> DriverCursor:
    """Start a stream's statement on a block's connection, its lock held.

    Refused, as a statement is, in a block an earlier write left only able to
    roll back: asked again holding the lock, since a sibling task's write may
    have failed while this stream waited for the connection. (Its later fetches
    are not refused, as Django's are not.)
    """
    refuse_if_broken(scope)
    return await _open_cursor(alias, scope, sql, params, True)


async def _close_in_scope(scope: Scope, cursor: DriverCursor) -> None:
    """Close a stream's cursor on a block's connection, even if cancelled.

    Not once the block has ended: the connection is no longer the stream's
    (the cursor went with its transaction). A failure to close is left to
    the transaction's end as well.
    """
    try:
        await finish(_close_locked(scope, cursor))
    except Exception:
        pass


async def _close_locked(scope: Scope, cursor: DriverCursor) -> None:
    async with scope.lock:
        if not (scope.ended or scope.root.ended):
            await cursor.close()


async def _stream_alone(alias: str, sql: str, params: tuple, size: int) -> AsyncGenerator[list, None]:
    entry = engine_entry(alias)
    scope, cursor = await _open_alone(alias, entry, sql, params)
    clean = False
    try:
        while True:
            rows = await _fetch_chunk(entry.config, cursor, size)
            if rows:
                yield rows
            if len(rows) < size:
                break
        clean = True
    except GeneratorExit:
        clean = True  # closed early by its consumer, between two chunks
        raise
    finally:
        await _end_alone(scope, cursor, clean)


async def _open_alone(alias: str, entry: EngineEntry, sql: str, params: tuple) -> tuple[Scope, DriverCursor]:
    """Check out a connection for a stream and open its cursor.

    A connection the server closed fails here, before any row was read: the
    stream opens once more on a fresh one, as a read does (see :func:`fetch`).
    """
    try:
        return await _try_open_alone(alias, entry, sql, params)
    except Exception as exc:
        if not await recover_from_disconnect(alias, exc):
            raise
    return await _try_open_alone(alias, entry, sql, params)


async def _try_open_alone(alias: str, entry: EngineEntry, sql: str, params: tuple) -> tuple[Scope, DriverCursor]:
    scope = await checkout(alias, transactional=entry.config.stream_transaction)
    scope.move(State.STREAMING)
    try:
        return scope, await _open_cursor(alias, scope, sql, params, False)
    except BaseException as exc:
        await end_interrupted(scope, exc, lost=_driver_disconnect(entry, exc))
        raise


async def _end_alone(scope: Scope, cursor: DriverCursor, clean: bool) -> None:
    """Give back the connection of a stream that ran outside a block.

    A stream read out, or closed by its consumer, closes its cursor (MySQL
    reads the rest of an unbuffered result) and ends its transaction; one
    cut short by an error or a cancellation may have left the connection
    mid-result: it is discarded.
    """
    if clean:
        try:
            await cursor.close()
        except BaseException as exc:
            scope.close()
            await discard(scope.connection)
            if not isinstance(exc, Exception):
                raise
            return
        await release(scope, commit=True)
        return
    scope.close()
    await discard(scope.connection)


async def _open_cursor(alias: str, scope: Scope, sql: str, params: tuple, shared: bool) -> DriverCursor:
    """Start the statement of a stream on the driver connection of ``scope``."""
    config = scope.entry.config
    driver = await _driver_in_scope(scope)
    return await _on_driver(alias, config, config.stream(driver, sql, params, shared), sql, params)  # type: ignore[misc]


async def _fetch_chunk(config: EngineConfig, cursor: DriverCursor, size: int) -> list:
    try:
        return await cursor.fetchmany(size)
    except Exception as exc:
        _raise_as_django(config, exc)
        raise
