"""Watch the statements vinyl sends: the hook behind logging and counting.

Every statement vinyl executes, through Django's cursor in the bridge or
straight on the driver for a cached plan, is reported to the observers of
the current context. A ContextVar keeps concurrent tasks apart.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

Observer = Callable[[str, str, Any], None]

_observers: ContextVar[tuple[Observer, ...]] = ContextVar("vinyl_observers", default=())


def notify(alias: str, sql: str, params: Any) -> None:
    """Report one statement (driver SQL and parameters) run on ``alias``."""
    for observer in _observers.get():
        observer(alias, sql, params)


def observing() -> bool:
    return bool(_observers.get())


@contextmanager
def observe(observer: Observer) -> Iterator[None]:
    """Call ``observer(alias, sql, params)`` for each statement in the block."""
    token = _observers.set((*_observers.get(), observer))
    try:
        yield
    finally:
        _observers.reset(token)
