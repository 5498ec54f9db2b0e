"""Log what SQLAlchemy runs on vinyl's engines: transaction control and Core.

vinyl's own statements are logged where they run (the bridge's cursor and
the driver calls). What SQLAlchemy itself sends on an engine of a vinyl
alias reaches the ``vinyl.sql`` logger through SQLAlchemy's engine events:

- transaction control: ``BEGIN``, ``COMMIT``, ``ROLLBACK`` (``vinyl.atomic``,
  and the transactions of SQLAlchemy code on ``vinyl.get_engine()``), from
  the transaction events (drivers send them without a cursor), and
  ``SAVEPOINT``, ``RELEASE SAVEPOINT``, ``ROLLBACK TO SAVEPOINT``, which
  SQLAlchemy's dialects execute as statements;
- statements SQLAlchemy Core executes on a connection (``use_connection``,
  ``get_engine()`` users, vinyl reading the server's version once).

They are logged only: ``capture_queries`` counts vinyl's own statements.

So a log read top to bottom shows a rolled-back block as rolled back.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio.engine import AsyncEngine

from vinyl import _querylog

_STARTED = "vinyl_statement_started"
# Engines already listened to (an application's engine is seen again each
# time vinyl's registry builds an entry for it).
_logged: weakref.WeakSet = weakref.WeakSet()


def log_engine_events(engine: AsyncEngine, alias: str, *, log_begin: bool = True) -> None:
    """Send what SQLAlchemy runs on ``engine`` to the ``vinyl.sql`` logger.

    ``log_begin`` is false where a ``begin`` listener of the backend sends
    BEGIN as a statement of its own (logged as a statement).
    """
    target = engine.sync_engine
    if target in _logged:
        return
    _logged.add(target)

    def control(sql: str) -> None:
        if _querylog.observing():
            _querylog.record(alias, sql, None, time.perf_counter(), capture=False)

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if _querylog.observing():
            conn.info.setdefault(_STARTED, []).append(time.perf_counter())

    def after_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        stack = conn.info.get(_STARTED)
        if stack:
            _querylog.record(alias, statement, parameters, stack.pop(), many=many, capture=False)

    def handle_error(context: Any) -> None:
        conn = context.connection
        if conn is None or context.is_pre_ping:
            return
        try:
            info = conn.info
        except NotImplementedError:
            # SQLAlchemy's first-connect checks (the dialect's initialize)
            # run on an ad hoc connection that has no info and no events:
            # nothing was recorded for it. Raising here would replace the
            # statement's own error (a cancellation included).
            return
        stack = info.get(_STARTED)
        if stack and context.statement is not None:
            _querylog.record(alias, context.statement, context.parameters, stack.pop(), capture=False)

    if log_begin:
        event.listen(target, "begin", lambda conn: control("BEGIN"))
    event.listen(target, "commit", lambda conn: control("COMMIT"))
    event.listen(target, "rollback", lambda conn: control("ROLLBACK"))
    event.listen(target, "before_cursor_execute", before_cursor_execute)
    event.listen(target, "after_cursor_execute", after_cursor_execute)
    event.listen(target, "handle_error", handle_error)


__all__ = ["log_engine_events"]
