"""Levels inside a transaction: savepoints (nested ``atomic`` blocks) and
the levels the bridge gives coroutines that sync code awaits."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from sqlalchemy.exc import DBAPIError

from vinyl._compat import savepoint_name
from vinyl.engine.callbacks import promote_callbacks
from vinyl.engine.disconnects import raise_as_django
from vinyl.engine.scope import Scope, _active, _bound
from vinyl.engine.shield import finish

logger = logging.getLogger("vinyl.transaction")


async def enter_child(parent: Scope) -> Scope:
    """Open a level inside ``parent`` that holds ``parent``'s lock until it ends.

    The caller ends it with :func:`end` and then releases ``parent.lock``.
    """
    parent.check_open()
    await parent.lock.acquire()
    try:
        parent.check_open()
    except BaseException:
        parent.lock.release()
        raise
    # Named, so that a task waiting for this level while this task awaits
    # it fails instead of waiting forever (see vinyl.engine.lock).
    parent.lock.hold_for(asyncio.current_task())
    return parent.child()


async def end(scope: Scope) -> None:
    """Mark ``scope`` ended once the statement a task runs in it is done.

    Tasks that still hold the scope get ``TransactionScopeEnded`` from then on.
    """
    if scope.lock.locked():
        await finish(_wait_and_end(scope))
    scope.stop()


async def _wait_and_end(scope: Scope) -> None:
    async with scope.lock:
        scope.stop()


@asynccontextmanager
async def joined() -> AsyncIterator[None]:
    """Let coroutines awaited by sync code in the bridge use its transaction.

    Sync code in :meth:`Scope.run_sync` holds its scope's lock while it
    waits for a coroutine (an async signal receiver). Inside this block each
    bound scope gets a child level, free to use, so the coroutine (and tasks
    it starts) run their statements in the same transaction, one at a time;
    the level ends with the block, and an error left in it marks the parent
    for rollback.
    """
    bound = _bound.get()
    if not bound:
        yield
        return
    children = {alias: scope.child() for alias, scope in bound.items()}
    active_token = _active.set({**_active.get(), **children})
    bound_token = _bound.set({})
    try:
        yield
    finally:
        _bound.reset(bound_token)
        _active.reset(active_token)
        for child in children.values():
            await end(child)
            if child.needs_rollback:
                child.parent.needs_rollback = True  # type: ignore[union-attr]
            else:
                await promote_callbacks(child)


@asynccontextmanager
async def savepoint(parent: Scope, *, in_block: bool = True) -> AsyncIterator[Scope]:
    """Run the block in a savepoint of ``parent``'s transaction.

    The savepoint is released when the block succeeds and rolled back when
    it raises or was marked for rollback; sibling tasks that use ``parent``
    wait until it ends (see the module docstring).
    """
    level = await enter_child(parent)
    level.in_block = in_block
    try:
        point: Any = None
        if parent.needs_rollback and parent.in_block:
            # A sibling task's write failed while this one waited for the
            # enclosing level: as Django enters a block in a transaction that
            # can only roll back, no savepoint, and the level's statements
            # are refused (refuse_if_broken) until it ends.
            level.needs_rollback = True
        else:
            try:
                level.check_transaction()
                point = await finish(level.connection.begin_nested())
            except asyncio.CancelledError:
                # finish() let the SAVEPOINT complete: undo it before leaving.
                nested = level.connection.get_nested_transaction()
                if nested is not None:
                    level.close()
                    await finish(nested.rollback())
                raise
            except Exception as exc:
                raise_as_django(level.entry, exc)
                raise
        token = _active.set({**_active.get(), parent.alias: level})
        failure: BaseException | None = None
        try:
            yield level
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _active.reset(token)
            await _close_savepoint(level, point, failure)
    finally:
        parent.lock.release()


async def _close_savepoint(level: Scope, point: Any, failure: BaseException | None) -> None:
    parent = level.parent
    assert parent is not None
    failed = failure is not None or level.needs_rollback
    ended: list[str] = []
    try:
        await finish(_end_savepoint(level, point, failed, ended))
    except BaseException as exc:
        if not ended:
            # The level's work could not be undone (or kept) on its own.
            parent.needs_rollback = True
        elif not failed and ended[0] == "released":
            # Released, and then the task was cancelled: the level's work
            # stands, as do its callbacks.
            await promote_callbacks(level)
        if failure is not None:
            return  # the original error propagates, not this one
        raise_as_django(level.entry, exc)
        raise
    if not failed:
        await promote_callbacks(level)


async def _end_savepoint(level: Scope, point: Any, failed: bool, ended: list[str]) -> None:
    """Release the savepoint, or roll back to it; say in ``ended`` which was done.

    A RELEASE the server refuses (PostgreSQL, after a statement of the block
    failed and its error was caught in it) is followed, as in Django, by a
    rollback to the savepoint: the level's work is undone on its own, the
    enclosing level goes on, and the RELEASE's error is raised.
    """
    async with level.lock:
        level.close()
        # (No savepoint in a level entered when its transaction could only
        # roll back, see savepoint(): the enclosing level stays marked.)
        if point is None:
            ended.append("none")
        elif failed:
            await point.rollback()
            ended.append("rolled back")
        else:
            try:
                await point.commit()
            except DBAPIError as refused:
                try:
                    await _roll_back_after_a_refused_release(level, point)
                except Exception as exc:
                    # As Django: the enclosing level is then marked (by the
                    # caller: nothing ended), and the RELEASE's error is the
                    # one raised.
                    logger.warning("vinyl: the server refused a RELEASE SAVEPOINT and then the rollback to it (%s): "
                                   "the enclosing block can only roll back", exc)
                    raise refused from refused.__cause__  # (the driver's error stays its cause)
                ended.append("rolled back")
                raise
            ended.append("released")


async def _roll_back_after_a_refused_release(level: Scope, point: Any) -> None:
    """Undo the savepoint ``point`` whose RELEASE failed, and let it go.

    SQLAlchemy leaves a savepoint whose RELEASE failed inactive: its
    ``rollback()`` would send nothing, and the connection runs nothing until
    it is let go. So ``close()`` detaches it from the connection (no SQL),
    then the ROLLBACK TO SAVEPOINT is sent here, by its name (which only a
    private attribute holds: see ``vinyl._compat.savepoint_name``). Raises if
    the server refuses that too (the enclosing level is then marked).
    """
    name = level.connection.dialect.identifier_preparer.quote(savepoint_name(point.sync_transaction))
    await point.close()
    await level.connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")
    await level.connection.exec_driver_sql(f"RELEASE SAVEPOINT {name}")
