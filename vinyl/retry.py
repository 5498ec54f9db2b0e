"""Retried transactions: ``@vinyl.atomic(retries=3)``.

A database may fail a statement because its transaction conflicted with a
concurrent one, and say that running the transaction again may succeed:

- PostgreSQL: ``serialization_failure`` (SQLSTATE 40001, SERIALIZABLE and
  REPEATABLE READ) and ``deadlock_detected`` (40P01); the transaction is
  aborted;
- MySQL / MariaDB: deadlock (error 1213, SQLSTATE 40001; on a Galera node
  also a certification conflict), after which the server has rolled the
  whole transaction back, and lock wait timeout (1205), after which it has
  rolled back the statement only (unless ``innodb_rollback_on_timeout``).

A row ``select_for_update(nowait=True)`` finds locked is not a conflict: the
caller asked not to wait. It is Django's ``OperationalError`` on every
backend (PostgreSQL's 55P03, MariaDB's 1205), never retried.

``@vinyl.atomic(retries=N)`` runs the decorated coroutine function in a
transaction and, when one of those errors leaves it, rolls the transaction
back (what the server had not), waits a jittered, growing delay and runs the
function again, up to ``N`` more times; the last error propagates. An error
the function catches does not leave it: the transaction goes on where the
server let it (a 1205), fails its next statement (PostgreSQL) or refuses it
(a 1213), as with Django. ::

    @vinyl.atomic(retries=3)
    async def transfer(source_pk, target_pk, amount):
        source = await Account.vinyl.select_for_update().get(pk=source_pk)
        ...

When it is safe:

- The function must be safe to run more than once: everything it does
  outside the database (HTTP calls, emails, in-memory changes) happens again
  on each attempt. Put such effects in ``vinyl.on_commit()``: callbacks of a
  rolled-back attempt are dropped, so they run once, after the attempt that
  commits.
- Only conflicts are retried: the errors the backends raise as
  :class:`~vinyl.exceptions.TransactionConflict` (:func:`retry_reason`).
  An error whose outcome is unknown (the connection was lost while COMMIT
  was on its way) is never retried: the transaction may have committed.
- Only the outermost block retries. Inside another transaction on the same
  alias the conflict rolled back the enclosing transaction too, so the
  decorated function runs once, as a nested block, and the error propagates
  to whoever owns the transaction.
- As a context manager (``async with vinyl.atomic(retries=3)``) there is no
  block to run again: vinyl raises ``TypeError``.

Each retry is logged on the ``vinyl.retry`` logger (INFO) with its reason.
The backends raise those errors as :class:`vinyl.exceptions.TransactionConflict`
(:class:`~vinyl.exceptions.CertificationConflict` on a Galera node), both
subclasses of Django's ``OperationalError`` (:func:`as_conflict`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import AbstractAsyncContextManager
from typing import Any, Awaitable, Callable, Iterator, TypeVar

import django.db
from django.db import OperationalError

from vinyl.engine import scope as scopes
from vinyl.exceptions import MYSQL_LOCK_WAIT_TIMEOUT, CertificationConflict, TransactionConflict

logger = logging.getLogger("vinyl.retry")

T = TypeVar("T")

#: SQLSTATEs after which the transaction was rolled back and may be run again.
RETRYABLE_SQLSTATES: dict[str, str] = {
    "40001": "serialization failure",
    "40P01": "deadlock detected",
}

#: MySQL / MariaDB error numbers after which running the transaction again may succeed.
RETRYABLE_MYSQL_CODES: dict[int, str] = {
    1213: "deadlock (or Galera certification conflict)",
    MYSQL_LOCK_WAIT_TIMEOUT: "lock wait timeout",
}

#: The first backoff ceiling and the largest one, in seconds.
BASE_DELAY = 0.005
MAX_DELAY = 0.5


def conflict_reason(exc: BaseException) -> str | None:
    """Say why ``exc`` rolled its transaction back, if running it again may succeed.

    Looks at ``exc`` and the driver errors behind it (``__cause__``,
    SQLAlchemy's ``orig``) for a retryable SQLSTATE or MySQL error number.
    """
    for error in _behind(exc):
        if isinstance(error, TransactionConflict) and error.reason != TransactionConflict.reason:
            return error.reason
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str) and state in RETRYABLE_SQLSTATES:
            return f"SQLSTATE {state} ({RETRYABLE_SQLSTATES[state]})"
        args = getattr(error, "args", ())
        if args and isinstance(args[0], int) and args[0] in RETRYABLE_MYSQL_CODES:
            return f"error {args[0]} ({RETRYABLE_MYSQL_CODES[args[0]]})"
    return None


def _behind(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then the errors behind it (SQLAlchemy's ``orig``, else ``__cause__``), each once."""
    seen: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and not any(error is s for s in seen):
        seen.append(error)
        yield error
        error = getattr(error, "orig", None) or error.__cause__


def retry_reason(exc: BaseException) -> str | None:
    """Say why ``@vinyl.atomic(retries=N)`` runs a block that raised ``exc`` again, if it does.

    The backends' error mapping names every conflict: a
    :class:`~vinyl.exceptions.TransactionConflict` is one, another Django
    error is none, whatever its driver's code (NOWAIT's 1205 on MariaDB). An
    error vinyl did not map (a statement run on SQLAlchemy's connection)
    counts by its codes (:func:`conflict_reason`).
    """
    for error in _behind(exc):
        if isinstance(error, TransactionConflict):
            return conflict_reason(error)
        if isinstance(error, django.db.Error):
            return None
    return conflict_reason(exc)


def as_conflict(error: BaseException, original: BaseException | None = None, *, galera: bool = False) -> BaseException:
    """Return ``error`` as a :class:`~vinyl.exceptions.TransactionConflict` when it is one.

    The backends' error mapping calls it last: a Django ``OperationalError``
    for a retryable conflict becomes the subclass that names it
    (:class:`~vinyl.exceptions.CertificationConflict` for 1213 on a Galera
    node), with the same arguments; anything else comes back unchanged, and
    so does an error that was Django's already (``original``: its class was
    decided when it was mapped). ``original`` is the driver's error
    ``error`` was mapped from (its SQLSTATE says what the conflict was).
    """
    if isinstance(error, TransactionConflict) or not isinstance(error, OperationalError):
        return error
    if isinstance(original, django.db.Error):
        return error
    reason = conflict_reason(error) or (conflict_reason(original) if original is not None else None)
    if reason is None:
        return error
    cls = CertificationConflict if galera and reason.startswith("error 1213") else TransactionConflict
    conflict = cls(*error.args)
    if cls is TransactionConflict:
        conflict.reason = reason
    return conflict


def backoff(attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Return the delay before attempt ``attempt + 1``: "full jitter" exponential backoff.

    Uniform between 0 and ``min(cap, base * 2**attempt)``: competing
    transactions spread out instead of colliding again in step.
    """
    return random.uniform(0, min(cap, base * 2**attempt))


async def run_with_retries(
    func: Callable[..., Awaitable[T]],
    args: tuple,
    kwargs: dict[str, Any],
    *,
    using: str,
    retries: int,
    block: Callable[[], AbstractAsyncContextManager[Any]],
) -> T:
    """Run ``func(*args, **kwargs)`` in ``block()`` (a ``vinyl.atomic`` on ``using``), again on conflicts.

    (``vinyl.transaction`` passes its block: this module sits below it.)
    """
    if scopes.active_scope(using) is not None:
        # Nested: the conflict rolls the enclosing transaction back too.
        async with block():
            return await func(*args, **kwargs)
    attempt = 0
    while True:
        try:
            async with block():
                return await func(*args, **kwargs)
        except Exception as exc:
            reason = retry_reason(exc)
            if reason is None or attempt >= retries:
                raise
            delay = backoff(attempt)
            attempt += 1
            logger.info(
                "%s on %r conflicted (%s), rolled back: attempt %d of %d in %.1f ms",
                getattr(func, "__qualname__", func), using, reason, attempt + 1, retries + 1, delay * 1000,
                extra={"vinyl_retry_reason": reason, "vinyl_alias": using},
            )  # fmt: skip
            await asyncio.sleep(delay)


def check_retries(retries: Any) -> int:
    """Validate ``atomic(retries=...)``: a non-negative int."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise TypeError(f"atomic(retries=...) takes a number of retries (an int >= 0), got {retries!r}")
    return retries


__all__ = [
    "BASE_DELAY",
    "MAX_DELAY",
    "RETRYABLE_MYSQL_CODES",
    "RETRYABLE_SQLSTATES",
    "as_conflict",
    "backoff",
    "check_retries",
    "conflict_reason",
    "retry_reason",
    "run_with_retries",
]
