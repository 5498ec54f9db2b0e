"""Callbacks after commit (``vinyl.on_commit``): kept per transaction level,
handed to the enclosing level when a savepoint succeeds, run after the
outermost commit."""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from vinyl.engine.scope import Scope

logger = logging.getLogger("vinyl.transaction")


_CALLBACKS = "on_commit"


Callback = tuple[Callable[[], Any], bool]


def add_callback(scope: Scope, func: Callable[[], Any], robust: bool) -> None:
    """Run ``func`` once the transaction of ``scope`` commits.

    It is dropped if ``scope``'s level (or an enclosing one) rolls back.
    """
    scope.attachments.setdefault(_CALLBACKS, []).append((func, robust))


def take_callbacks(scope: Scope) -> list[Callback]:
    return scope.attachments.pop(_CALLBACKS, None) or []


async def promote_callbacks(level: Scope) -> None:
    """Hand the callbacks of a level that succeeded to its parent level."""
    callbacks = take_callbacks(level)
    if not callbacks:
        return
    parent = level.parent
    assert parent is not None
    if parent.transparent:
        # Nothing the application sees commits later: run them now.
        await run_callbacks(callbacks)
    else:
        parent.attachments.setdefault(_CALLBACKS, []).extend(callbacks)


async def run_callbacks(callbacks: list[Callback]) -> None:
    """Call each callback (awaiting async ones) in order of registration."""
    for func, robust in callbacks:
        try:
            result = func()
            if inspect.isawaitable(result):
                await result
        except Exception:
            if not robust:
                raise
            logger.exception("vinyl on_commit callback %r failed", func)
