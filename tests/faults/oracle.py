"""Django's sync ORM as the oracle of what an operation returns or raises."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable

from django.db import connections


async def django_outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``("error", class name)`` of ``fn`` run by
    Django's sync ORM, in a thread of its own (outside this task's context).

    By name: where Django lets a driver's error through (PyMySQL refusing
    NaN raises its own ProgrammingError), vinyl raises Django's class of
    that name.
    """
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(("ok", fn()))
        except Exception as exc:  # the class is what is compared
            outcome.append(("error", type(exc).__name__))
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    return outcome[0]


async def vinyl_outcome(awaitable: Awaitable[Any]) -> tuple[str, Any]:
    """The same for a vinyl operation."""
    try:
        return ("ok", await awaitable)
    except Exception as exc:  # the class is what is compared
        if type(exc).__module__.split(".")[0] not in ("django", "builtins", "vinyl"):
            return ("error", f"not Django's: {type(exc).__module__}.{type(exc).__name__}")
        return ("error", type(exc).__name__)
