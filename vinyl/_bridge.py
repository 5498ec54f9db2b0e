"""Run Django's sync ORM code on the connection of the current vinyl scope.

``run(alias, fn, *args)`` is the one way the manager, QuerySet and instance
layers execute a Django operation: the operation gets the scope of the
enclosing ``atomic`` block, or a pooled connection of its own, and ``fn`` runs
inside SQLAlchemy's greenlet bridge, where each driver call is awaited.

``await_(coro)`` lets that sync code wait for a coroutine (async signal
receivers) without leaving the bridge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from vinyl.engine.engines import sa_await
from vinyl.engine.checkout import operation
from vinyl.engine.savepoints import joined
from vinyl.engine.scope import in_bridge
from vinyl.engine.statements import recover_from_disconnect

if TYPE_CHECKING:
    from django.db.models import Model

T = TypeVar("T")



async def run(
    alias: str, fn: Callable[..., T], *args: Any, readonly: bool = False, single_write: bool = False
) -> T:
    """Run ``fn(*args)`` as one operation on ``alias``, inside the bridge.

    A ``readonly`` operation only reads, a ``single_write`` one sends one
    write statement: outside ``atomic`` neither needs a transaction of its
    own where the driver autocommits.
    """
    try:
        async with operation(alias, readonly=readonly, single_write=single_write) as scope:
            return await scope.run_sync(fn, *args)
    except Exception as exc:
        # A read that hit a connection the server closed runs once more on a
        # fresh one; a write may have reached the server, so it never does.
        if not (readonly and await recover_from_disconnect(alias, exc)):
            raise
    async with operation(alias, readonly=readonly) as scope:
        return await scope.run_sync(fn, *args)


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from sync code running inside the bridge.

    The awaited code (an async signal receiver) runs its vinyl statements in
    the same transaction as the sync code, and may start tasks that do too.
    """
    return sa_await(_joined(awaitable))


async def _joined(awaitable: Awaitable[T]) -> T:
    async with joined():
        return await awaitable


def one_statement_save(model: type[Model]) -> bool:
    """Does saving an instance of ``model`` send exactly one statement?

    Not with parent tables (multi-table inheritance) or save signal
    receivers, which run inside the operation's transaction.
    """
    from django.db.models.signals import post_save, pre_save

    origin = getattr(model, "_vinyl_origin", model)
    return (
        not model._meta.concrete_model._meta.parents
        and not pre_save.has_listeners(origin)
        and not post_save.has_listeners(origin)
    )


__all__ = ["await_", "in_bridge", "one_statement_save", "run"]
