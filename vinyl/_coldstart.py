"""Large imports with the cyclic garbage collector paused (cold start, issue 17).

Importing SQLAlchemy (and a backend's dialect and driver) creates a few
hundred thousand objects that all live as long as the process: classes,
functions, their dicts. Every 700 allocations start a collection, and now
and then one walks every object of the process, finding nothing to free;
that was about 5% of a fresh process's first query. While vinyl imports them
the collector is paused; it runs again, as usual, right after. A collector
the application disabled stays disabled.

Paused, those objects would all still be in the youngest generation when
the collector resumes: its next collection would walk every one of them, and
the one after, of the middle generation, again (on a busy machine 20-55 ms
of CPU, 50-60 M instructions: the walks miss the caches). So the
collector is resumed with every object it tracks moved to the oldest
generation, where each would have been after surviving those two
collections: ``gc.freeze()`` then ``gc.unfreeze()``, two constant-time list
moves that walk nothing. Objects of the application allocated just before
move with them (a cycle among them is freed by the next full collection
instead of a younger one). Not done when the application froze objects
itself (``gc.get_freeze_count()``): ``unfreeze`` would thaw those too (so
never on Python 3.12, which starts with a few hundred tuples frozen); nor on
a free-threaded build, whose collector has no generations (and whose
``freeze`` walks every object).
"""

from __future__ import annotations

import gc


def _generational() -> bool:
    """Whether the collector has generations (not a free-threaded build)."""
    # (Loaded already by the time a pause ends: zoneinfo, which Django's
    # backends import, reads sysconfig's data.)
    import sysconfig

    return not sysconfig.get_config_var("Py_GIL_DISABLED")


class collector_paused:
    """``with collector_paused():`` runs its body with the collector paused."""

    __slots__ = ("paused",)

    def __enter__(self) -> None:
        self.paused = gc.isenabled()
        if self.paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            if not gc.get_freeze_count() and _generational():
                gc.freeze()
                gc.unfreeze()
            gc.enable()
