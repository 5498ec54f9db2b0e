"""Run Django's sync ORM code on the connection of the current vinyl scope.

``run(alias, fn, *args)`` is the one way the manager, QuerySet and instance
layers execute a Django operation: the operation gets the scope of the
enclosing ``atomic`` block, or a pooled connection of its own, and ``fn`` runs
inside SQLAlchemy's greenlet bridge, where each driver call is awaited.

``await_(coro)`` lets that sync code wait for a coroutine (async signal
receivers) without leaving the bridge.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

from sqlalchemy import util as _sa_util

from vinyl.engine.scope import in_bridge, joined, operation

T = TypeVar("T")

# SQLAlchemy 2.1 names it await_; 2.0 await_only.
_sa_await: Callable[[Awaitable[Any]], Any] = getattr(_sa_util, "await_", None) or _sa_util.await_only


async def run(alias: str, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` as one operation on ``alias``, inside the bridge."""
    async with operation(alias) as scope:
        return await scope.run_sync(fn, *args)


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from sync code running inside the bridge.

    The awaited code (an async signal receiver) runs its vinyl statements in
    the same transaction as the sync code, and may start tasks that do too.
    """
    return _sa_await(_joined(awaitable))


async def _joined(awaitable: Awaitable[T]) -> T:
    async with joined():
        return await awaitable


__all__ = ["await_", "in_bridge", "run"]
