"""Large imports with the cyclic garbage collector paused (cold start, issue 17).

Importing SQLAlchemy (and a backend's dialect and driver) creates a few
hundred thousand objects that all live as long as the process: classes,
functions, their dicts. Every 700 allocations start a collection, and now
and then one walks every object of the process, finding nothing to free;
that was about 5% of a fresh process's first query. While vinyl imports them
the collector is paused; it runs again, as usual, right after. A collector
the application disabled stays disabled.
"""

from __future__ import annotations

import gc


class collector_paused:
    """``with collector_paused():`` runs its body with the collector paused."""

    __slots__ = ("paused",)

    def __enter__(self) -> None:
        self.paused = gc.isenabled()
        if self.paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            gc.enable()
