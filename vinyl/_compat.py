"""Every private name of Django, SQLAlchemy, the drivers and asyncio that vinyl uses.

vinyl adapts those libraries instead of rewriting them, and in a few places
that means reading or overriding what they keep private. All such places go
through this module, each with the reason no public API does the job, and
every name is checked before it can be used: an upgrade that removes one
fails with an ImportError naming the dependency, its installed version and
the missing name, never later and never by a silent fallback. Django's,
SQLAlchemy's core and asyncio's names are checked at ``import vinyl``; those
of one backend (its SQLAlchemy dialect, its driver, for SQLite Django's
sqlite3 backend) when that backend's package is imported (Django loads it
for an alias before any statement runs): a process that uses PostgreSQL
never imports the MySQL and SQLite dialects and drivers (issue 17, cold
start). ``tests/packaging/test_compat.py`` keeps the rest of vinyl from
reaching past this module.

Names that Django documents although they start with an underscore
(``Model._meta``, ``Model._state``, ``Model._default_manager`` and
``_base_manager``) are public API and used directly.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import asyncio.tasks
import copy
import functools
import inspect
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version as _installed
from types import CodeType, ModuleType
from typing import Any, Awaitable, NamedTuple

import django
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.options import Options
from django.db.models.deletion import Collector
from django.db.models.fields.related_descriptors import create_forward_many_to_many_manager
from django.db.models.manager import Manager
from django.db.models.query import QuerySet, RawQuerySet, RelatedPopulator, get_related_populators, prefetch_one_level
from django.db.models.query_utils import DeferredAttribute
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler
from django.utils.asyncio import async_unsafe
from sqlalchemy.engine import NestedTransaction
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.pool import base as _sa_pool_base
from sqlalchemy.util import concurrency as _sa_concurrency
from sqlalchemy.util import queue as _sa_queue

from vinyl._coldstart import collector_paused
from vinyl._version import __version__

#: The versions of each dependency this vinyl release supports (pyproject's bounds).
SUPPORTED = {
    "Django": "5.2-6.1",
    "SQLAlchemy": "2.1.5-2.1",
    "asyncpg": "0.32",
    "asyncmy": "0.2.17-0.2",
    "aiosqlite": "0.20-0.22",
    "Python": "3.11-3.13",
}


class Needed(NamedTuple):
    """One private name vinyl uses: where it lives, and why vinyl needs it."""

    dependency: str
    where: str
    name: str
    reason: str
    #: "use": read or called; "override": a vinyl subclass redefines it;
    #: "implement": a vinyl class answers it to Django code (duck typing).
    how: str = "use"


#: Every private name checked at import (and listed by the compat test).
NEEDED: list[Needed] = []

_logger = logging.getLogger("vinyl.transaction")


def _version(dependency: str) -> str:
    if dependency == "Python":
        import platform

        return platform.python_version()
    try:
        return _installed(dependency)
    except PackageNotFoundError:  # not installed as a distribution (a source tree on sys.path)
        return "(unknown version)"


def _missing(dependency: str, where: str, name: str, reason: str, detail: str = "does not have it") -> ImportError:
    return ImportError(
        f"vinyl {__version__} needs {where}.{name} ({dependency} {SUPPORTED[dependency]}); "
        f"{dependency} {_version(dependency)} {detail}: {reason}. "
        f"Install a supported {dependency} version, or a vinyl release that supports this one."
    )


def _where(owner: Any) -> str:
    if isinstance(owner, ModuleType):
        return owner.__name__
    return f"{owner.__module__}.{owner.__qualname__}"


def _need(
    dependency: str,
    owner: Any,
    name: str,
    reason: str,
    *,
    how: str = "use",
    params: Iterable[str] | None = None,
    present: Callable[[], bool] | None = None,
) -> None:
    """Check that ``owner`` has ``name`` (and its parameters ``params``) now."""
    where = _where(owner)
    NEEDED.append(Needed(dependency, where, name, reason, how))
    if present is not None:
        found = present()
    else:
        found = hasattr(owner, name)
    if not found:
        raise _missing(dependency, where, name, reason)
    if params is not None:
        have = list(inspect.signature(getattr(owner, name)).parameters)
        wanted = list(params)
        if have[: len(wanted)] != wanted:
            raise _missing(
                dependency, where, name, reason,
                f"changed its parameters to ({', '.join(have)}), vinyl passes ({', '.join(wanted)})",
            )


def _instance_attr(factory: Callable[[], Any], name: str) -> Callable[[], bool]:
    """The name is an attribute a fresh instance gets in ``__init__``."""
    return lambda: name in vars(factory())


def _set_by(function: Any, name: str) -> Callable[[], bool]:
    """The name is an attribute ``function``'s code reads or writes."""
    return lambda: name in function.__code__.co_names or name in function.__code__.co_consts


# -- asyncio --------------------------------------------------------------------

_need(
    "Python", asyncio.events, "_get_running_loop",
    "the running loop or None in one C call on every statement (get_running_loop() raises instead)",
)
#: The running event loop, or None outside one.
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio.events._get_running_loop

#: :func:`running_loop`, without a system call where it would make one.
current_loop: Callable[[], asyncio.AbstractEventLoop | None] = running_loop

if sys.version_info < (3, 12):
    # Python 3.11's running_loop() calls getpid() each time (a system call,
    # about 0.6 µs here), so that a process forked with a loop running
    # finds none. Every statement asks (vinyl.engine.engines.engine_entry).
    # A loop of asyncio's own run_forever records the thread it runs in
    # (``_thread_id``, None once it stops), and a thread runs one loop at a
    # time: the last loop found running is still the running one while that
    # thread is its. A fork forgets it, so the child asks running_loop(),
    # which finds none, and never reaches the parent's pools.
    _need(
        "Python", asyncio.BaseEventLoop, "_thread_id",
        "the running loop without Python 3.11's getpid() on every statement: the thread a loop's run_forever "
        "runs in (None once it returns)",
        present=_set_by(asyncio.BaseEventLoop.run_forever, "_thread_id"),
    )
    _standard_run = asyncio.BaseEventLoop.run_forever
    _thread = threading.get_ident
    _last_loop: Any = None

    def current_loop() -> asyncio.AbstractEventLoop | None:  # noqa: F811  (3.11's)
        loop = _last_loop
        if loop is not None and loop._thread_id == _thread():
            return loop
        return _find_loop()

    def _find_loop() -> asyncio.AbstractEventLoop | None:
        global _last_loop
        loop = running_loop()
        # (Only loops whose run_forever is asyncio's: it is what sets and
        # clears _thread_id.)
        _last_loop = loop if loop is not None and type(loop).run_forever is _standard_run else None
        return loop

    def _forget_loop() -> None:
        global _last_loop
        _last_loop = None

    os.register_at_fork(after_in_child=_forget_loop)

_need(
    "Python", asyncio.Future, "_asyncio_future_blocking",
    "engine.shield takes over a future its work waits on, as Task does, and hands the task a guard of it: "
    "the Task protocol's flag on both (what a task accepts to wait on, see asyncio.isfuture)",
)


def release_future(future: Any) -> None:
    """Clear the flag a task sets on a future it was handed (Task protocol)."""
    future._asyncio_future_blocking = False


class TaskWaitable:
    """Something a task can wait on in place of ``waited``, a future it was
    handed (Task protocol): it carries the flag the task reads and clears,
    and clears the future's (one call where a statement waits: the steps of
    release_future here), and gives the future's loop (``get_loop``, the
    future's own method: no call of the waitable's own to make)."""

    __slots__ = ("_asyncio_future_blocking", "_waited", "get_loop")

    def __init__(self, waited: Any) -> None:
        waited._asyncio_future_blocking = False
        self._asyncio_future_blocking = True
        self._waited = waited
        self.get_loop = waited.get_loop


_need(
    "Python", asyncio.Task, "_fut_waiter",
    "vinyl.engine.lock finds a task that awaits, through tasks and gather(), a task waiting for a transaction level "
    "the first one holds (a wait that would never end): what a task waits on has no public reading",
)
_need(
    "Python", asyncio.tasks, "_GatheringFuture",
    "the same search goes through gather(), whose future's class is private",
)
_GatheringFuture: Any = asyncio.tasks._GatheringFuture  # type: ignore[attr-defined]
_need(
    "Python", _GatheringFuture, "_children",
    "the same search goes through gather(): the tasks a gather waits for have no public reading",
    present=_set_by(_GatheringFuture.__init__, "_children"),
)


class Waits(NamedTuple):
    """What a task or future waits on: all of ``futures``, or (``any_of``)
    any one of them, the first to end (gather, a group's exit: to fail or be
    cancelled; asyncio.wait FIRST_EXCEPTION: to fail) ending the wait."""

    any_of: bool
    futures: list


def awaited(waiting: Any) -> Waits | None:
    """What ``waiting`` waits on right now: a task's future (or task), a
    gather's children; None for another future (what resolves it is found
    from the other side: see :func:`ended_by`)."""
    if isinstance(waiting, asyncio.Task):
        future = waiting._fut_waiter  # type: ignore[attr-defined]
        # (A done one was resolved, but the task has not resumed yet.)
        return Waits(False, [] if future is None or future.done() else [future])
    if isinstance(waiting, _GatheringFuture):
        children = waiting._children
        if _keeps_errors(waiting):  # return_exceptions=True: it ends when they all have
            return Waits(False, [child for child in children if not child.done()])
        return Waits(True, _may_end_it(children))
    return None


def _may_end_it(futures: Iterable[asyncio.Future]) -> list:
    """Those of ``futures`` that may still end an any-of wait on them: the
    unfinished ones and those that failed (gather's or the group's callback
    may not have run yet). One that returned ends nothing."""
    # exception() marks the error retrieved: gather's and TaskGroup's own
    # callbacks do that for each of their futures anyway.
    return [f for f in futures if not f.done() or f.cancelled() or f.exception() is not None]


# asyncio.wait, asyncio.wait_for with a timeout (Python 3.11), shield and
# as_completed make the awaiting task wait on a future of their own, which a
# done-callback they add to the awaited task resolves: the same search reads
# a task's done-callbacks to go from that future to the task. These names are
# optional: where asyncio changed one, that kind of wait is not followed and
# the first search logs a warning (it then finds fewer waits, never a wrong one).
_COMPLETION_MISSING: list[str] = []


def _optional(owner: Any, name: str, reason: str, present: Callable[[], bool] | None = None) -> bool:
    """Like :func:`_need`, but a missing name turns one search step off."""
    where = _where(owner)
    NEEDED.append(Needed("Python", where, name, reason))
    found = present() if present is not None else hasattr(owner, name)
    if not found:
        _COMPLETION_MISSING.append(f"{where}.{name}")
    return found


def _nested(function: Any, name: str, cells: tuple[str, ...]) -> CodeType | None:
    """The code of ``function``'s local function ``name``, if it closes over ``cells``."""
    for const in getattr(getattr(function, "__code__", None), "co_consts", ()):
        if isinstance(const, CodeType) and const.co_name == name and set(cells) <= set(const.co_freevars):
            return const
    return None


_SAME_SEARCH = "the level-deadlock search goes from a future a task awaits to the task whose end resolves it: "
_callbacks_ok = _optional(
    asyncio.Future, "_callbacks",
    _SAME_SEARCH + "a future's (a task's) done-callbacks have no public reading",
)
_WAIT_CELLS = ("counter", "return_when", "timeout_handle", "waiter")
_WAIT_CODE = _nested(getattr(asyncio.tasks, "_wait", None), "_on_completion", _WAIT_CELLS)
_optional(
    asyncio.tasks, "_wait.<locals>._on_completion",
    _SAME_SEARCH + "asyncio.wait's callback (_on_completion, closing over " + ", ".join(_WAIT_CELLS) + ") "
    "resolves its waiter when its tasks are done (FIRST_COMPLETED/FIRST_EXCEPTION: when the first of the counter "
    "futures whose callback has not run ends)",
    present=lambda: _WAIT_CODE is not None,
)
_SHIELD_CODE = _nested(asyncio.shield, "_inner_done_callback", ("outer",))
_optional(
    asyncio.tasks, "shield.<locals>._inner_done_callback",
    _SAME_SEARCH + "shield's callback (_inner_done_callback, closing over outer) resolves the future it returns",
    present=lambda: _SHIELD_CODE is not None,
)
_getters_ok = _optional(
    asyncio.Queue, "_getters",
    _SAME_SEARCH + "as_completed's callback resolves a queue's waiting getters, which have no public reading",
    present=_set_by(asyncio.Queue.__init__, "_getters"),
)
_AS_COMPLETED_CELLS = ("done", "timeout_handle", "todo")
_AS_COMPLETED_CODE = _nested(asyncio.as_completed, "_on_completion", _AS_COMPLETED_CELLS) if _getters_ok else None
# Python 3.13 made as_completed an iterator object, whose bound method is the callback.
_AS_COMPLETED_ITERATOR: Any = getattr(asyncio.tasks, "_AsCompletedIterator", None)
_AS_COMPLETED_METHOD: Any = getattr(_AS_COMPLETED_ITERATOR, "_handle_completion", None) if _getters_ok else None
_AS_COMPLETED_FIELDS = ("_done", "_timeout_handle", "_todo")
if _AS_COMPLETED_ITERATOR is None:
    _optional(
        asyncio.tasks, "as_completed.<locals>._on_completion",
        _SAME_SEARCH + "as_completed's callback (_on_completion, closing over " + ", ".join(_AS_COMPLETED_CELLS) + ") "
        "puts the task in a queue, whose waiting getters' futures it resolves: the first of todo to end does",
        present=lambda: _AS_COMPLETED_CODE is not None,
    )
else:
    _optional(
        _AS_COMPLETED_ITERATOR, "_handle_completion",
        _SAME_SEARCH + "as_completed's callback (the bound _handle_completion of its iterator, whose "
        + ", ".join(_AS_COMPLETED_FIELDS) + " it reads) puts the task in a queue, whose waiting getters' futures it "
        "resolves: the first of _todo to end does",
        present=lambda: _AS_COMPLETED_METHOD is not None
        and all(_set_by(_AS_COMPLETED_ITERATOR.__init__, name)() for name in _AS_COMPLETED_FIELDS),
    )
_optional(
    asyncio.tasks, "_release_waiter",
    _SAME_SEARCH + "wait_for with a timeout on Python 3.11 adds partial(_release_waiter, waiter) to the task",
)
_release_waiter: Any = getattr(asyncio.tasks, "_release_waiter", None)
# A TaskGroup's exit waits on a future of the group, which the group's
# done-callback on each of its tasks (a bound _on_task_done) resolves when
# its last task ends.
_TASKGROUP_FIELDS = ("_on_completed_fut", "_tasks")
_TASKGROUP_DONE: Any = getattr(asyncio.TaskGroup, "_on_task_done", None)
if not _optional(
    asyncio.TaskGroup, "_on_task_done",
    _SAME_SEARCH + "a TaskGroup's exit waits on its _on_completed_fut, which the group's callback on each task "
    "(the bound _on_task_done, reading " + ", ".join(_TASKGROUP_FIELDS) + ") resolves when its last task ends",
    present=lambda: _TASKGROUP_DONE is not None
    and all(_set_by(asyncio.TaskGroup.__init__, name)() for name in _TASKGROUP_FIELDS),
):
    _TASKGROUP_DONE = None
# asyncio.wait, shield ... of a gather() add their callback to the gathering
# future: gather's callback on each child (closing over outer) leads to it.
_GATHER_CODE = _nested(asyncio.gather, "_done_callback", ("outer",))
_GATHER_OUTER = _GATHER_CODE.co_freevars.index("outer") if _GATHER_CODE is not None else -1
_optional(
    asyncio.tasks, "gather.<locals>._done_callback",
    _SAME_SEARCH + "gather's callback on each child (_done_callback, closing over outer) leads to the gathering "
    "future, whose own done-callbacks asyncio.wait, wait_for, shield or as_completed of a gather() add",
    present=lambda: _GATHER_CODE is not None,
)
# Without return_exceptions, the first child to fail ends a gather(): a wait
# on it is a deadlock only if every unfinished child is stuck; with it, if one is.
_GATHER_KEEPS = (
    _GATHER_CODE.co_freevars.index("return_exceptions")
    if _GATHER_CODE is not None and "return_exceptions" in _GATHER_CODE.co_freevars else -1
)
_optional(
    asyncio.tasks, "gather.<locals>._done_callback.return_exceptions",
    "the level-deadlock search tells a gather() that ends at its first failed child from one that waits for them "
    "all (gather's callback on each child closes over return_exceptions; unread, every gather is taken as the first)",
    present=lambda: _GATHER_KEEPS >= 0,
)
# Each of the two warnings below is logged once per process.
_missing_warned = False
_shape_warned = False


class _Resolves(NamedTuple):
    """What a done-callback of a future resolves when that future ends.

    ``first_of`` None: each of ``waiters`` waits for every future with such
    a callback. An int n: for the first of n futures to end (asyncio.wait's
    FIRST_COMPLETED/FIRST_EXCEPTION), each of which holds such a callback
    until its end: read only if every one of the n is seen with it. A list:
    for the first of those futures to end (as_completed's unfinished ones).
    """

    waiters: tuple
    first_of: int | list | None = None


_RESOLVES_NOTHING = _Resolves(())


def _resolved(callback: Any) -> _Resolves:
    """What ``callback``, a done-callback of a task (or of a gather's
    future), resolves when that ends and that wait for nothing else;
    nothing for any other callback."""
    if isinstance(callback, functools.partial):
        if _release_waiter is not None and callback.func is _release_waiter and len(callback.args) == 1:
            return _Resolves(callback.args)
        return _RESOLVES_NOTHING
    method = getattr(callback, "__func__", None)
    if method is not None and method is _AS_COMPLETED_METHOD:
        waits = callback.__self__  # as_completed (Python 3.13+): the iterator
        return _next_completed(waits._timeout_handle, waits._todo, waits._done)
    code: CodeType | None = getattr(callback, "__code__", None)
    if code is None or not (code is _WAIT_CODE or code is _SHIELD_CODE or code is _AS_COMPLETED_CODE):
        return _RESOLVES_NOTHING
    try:
        cells = {name: cell.cell_contents for name, cell in zip(code.co_freevars, callback.__closure__)}
    except ValueError:  # a cell not yet set: the callback is not one vinyl reads
        return _RESOLVES_NOTHING
    if code is _SHIELD_CODE:
        return _Resolves((cells["outer"],))
    if code is _AS_COMPLETED_CODE:
        return _next_completed(cells["timeout_handle"], cells["todo"], cells["done"])
    if cells["timeout_handle"] is not None:
        return _RESOLVES_NOTHING  # the wait ends at its timeout and leaves the task running: no deadlock
    if cells["return_when"] == asyncio.ALL_COMPLETED:
        return _Resolves((cells["waiter"],))
    # FIRST_COMPLETED, FIRST_EXCEPTION: the first of the futures whose
    # callback has not run yet (counter of them) to end (or fail; one that
    # may end may fail) ends the wait.
    return _Resolves((cells["waiter"],), cells["counter"])


def _next_completed(timeout_handle: Any, todo: Any, queue: Any) -> _Resolves:
    """as_completed: the next awaited result's getter (the futures waiting in
    its queue) waits for the first of ``todo`` (those whose callback has not
    run) to end; nothing if it has a timeout, or if a result is already
    queued (a getter cancelled once woken hands it on to the next)."""
    if timeout_handle is not None or not queue.empty():
        return _RESOLVES_NOTHING
    return _Resolves(tuple(queue._getters), list(todo))


def _gathering(callback: Any) -> Any:
    """The gathering future of gather's callback on a child, else None."""
    if _GATHER_CODE is None or getattr(callback, "__code__", None) is not _GATHER_CODE:
        return None
    try:
        return callback.__closure__[_GATHER_OUTER].cell_contents
    except ValueError:  # the cell is not set yet: gather() is still building its future
        return None


def _keeps_errors(gathering: Any) -> bool:
    """Whether ``gathering``'s gather() returns its children's errors (read
    from its callback on a child still running); False where unread."""
    if _GATHER_KEEPS < 0 or not _callbacks_ok:
        return False
    try:
        for child in gathering._children:
            if child.done():
                continue
            for entry in child._callbacks or ():
                callback = entry[0]
                if _gathering(callback) is gathering:
                    return bool(callback.__closure__[_GATHER_KEEPS].cell_contents)
    except (AttributeError, IndexError, TypeError, ValueError):  # another shape: taken as the first-failure kind
        pass
    return False


def _group(callback: Any) -> Any:
    """The TaskGroup of its callback on a task, else None."""
    if _TASKGROUP_DONE is None or getattr(callback, "__func__", None) is not _TASKGROUP_DONE:
        return None
    return callback.__self__


def ended_by(tasks: Iterable[asyncio.Task]) -> dict[int, Waits]:
    """Each future (by id) that only the end of ``tasks``, or of a gather()
    of them, resolves, mapped to what it waits on (asyncio.wait, wait_for on
    3.11, shield: all of those tasks and gathering futures; asyncio.wait
    with FIRST_COMPLETED or FIRST_EXCEPTION, as_completed: any of them, the
    first to end ending it, read only when every future it still waits for
    is known; a TaskGroup's exit: any of the group's tasks, the first to
    fail cancelling the rest)."""
    global _missing_warned, _shape_warned
    if _COMPLETION_MISSING or not _callbacks_ok:
        if not _missing_warned:
            _missing_warned = True
            _logger.warning(
                "vinyl: this asyncio (Python %s) lacks %s: the level-deadlock check does not follow waits "
                "through them", _version("Python"), ", ".join(_COMPLETION_MISSING),
            )
        if not _callbacks_ok:
            return {}
    found: dict[int, Waits] = {}
    ending: list[asyncio.Future] = list(tasks)
    # The gathering futures met through their children's callbacks, and the
    # futures such callbacks resolve (shield's): their own callbacks are read
    # in turn (a gather of gathers, asyncio.wait of shields, up to the tasks').
    gathers: set[int] = set()
    # asyncio.wait(FIRST_*)'s waiters: how many futures it waits for the
    # first of, and those seen with its callback.
    firsts: dict[int, tuple[int, list[asyncio.Future]]] = {}
    try:
        while ending:
            future = ending.pop()
            for entry in future._callbacks or ():
                if not (isinstance(entry, tuple) and len(entry) == 2):
                    raise TypeError(f"a task's done-callbacks are {entry!r}, not (callback, context) pairs")
                outer = _gathering(entry[0])
                if outer is not None:
                    if id(outer) not in gathers and not outer.done():
                        gathers.add(id(outer))
                        ending.append(outer)
                    continue
                group = _group(entry[0])
                if group is not None:
                    exit_waits = group._on_completed_fut  # None until the group's exit waits
                    if exit_waits is not None and not exit_waits.done() and id(exit_waits) not in found:
                        found[id(exit_waits)] = Waits(True, _may_end_it(group._tasks))
                    continue
                resolves = _resolved(entry[0])
                for waiter in resolves.waiters:
                    if waiter.done():  # (one done was resolved otherwise: FIRST_COMPLETED)
                        continue
                    if resolves.first_of is None:
                        found.setdefault(id(waiter), Waits(False, [])).futures.append(future)
                        if id(waiter) not in gathers:
                            gathers.add(id(waiter))
                            ending.append(waiter)
                    elif isinstance(resolves.first_of, int):
                        firsts.setdefault(id(waiter), (resolves.first_of, []))[1].append(future)
                    else:
                        found[id(waiter)] = Waits(True, resolves.first_of)
    except (AttributeError, KeyError, TypeError) as exc:  # what the checks at import could not see
        if not _shape_warned:
            _shape_warned = True
            _logger.warning(
                "vinyl: this asyncio (Python %s) is not as vinyl reads it (%s): the level-deadlock check does not "
                "follow waits through asyncio.wait, wait_for, shield, as_completed and TaskGroup",
                _version("Python"), exc,
            )
        return {}
    # asyncio.wait(FIRST_*) is read only when each future it still waits for
    # was seen with its callback: one not seen (a plain future, one that has
    # just ended, its callback not run yet) may end it.
    for key, (count, futures) in firsts.items():
        if len(futures) == count:
            found[key] = Waits(True, futures)
    return found


# -- SQLAlchemy -----------------------------------------------------------------


def _pool() -> QueuePool:
    return QueuePool(lambda: None)  # type: ignore[arg-type]  # never connects


for _name in ("_pre_ping", "_recycle"):
    _need(
        "SQLAlchemy", Pool, _name,
        "a checkout that never talks to the server (no pre-ping, no recycling) runs outside the greenlet",
        present=_instance_attr(_pool, _name),
    )
_need(
    "SQLAlchemy", Pool, "_invalidate_time",
    "a pool invalidation (a lost connection) makes every older connection reconnect at its next checkout, with "
    "I/O: vinyl notices one by this time, which only moves forward, and finds the connections it made stale",
    present=_instance_attr(_pool, "_invalidate_time"),
)
_need(
    "SQLAlchemy", _sa_pool_base, "_ConnectionRecord",
    "the class of a pool's entries, whose staleness vinyl asks (the public ConnectionPoolEntry does not say)",
)
_need(
    "SQLAlchemy", _sa_pool_base._ConnectionRecord, "_is_hard_or_soft_invalidated",
    "SQLAlchemy's own test of a pool entry that its next checkout reconnects (invalidated, soft-invalidated, or "
    "older than the pool's invalidation): vinyl never checks one out without the greenlet, nor keeps one as a spare",
    params=("self",),
)
_need(
    "SQLAlchemy", QueuePool, "_max_overflow",
    "QueuePool has no public reading of max_overflow: vinyl tells a full pool (wait) and says it in PoolExhausted",
    present=_instance_attr(_pool, "_max_overflow"),
)
_need(
    "SQLAlchemy", Pool, "_invalidate",
    "SQLAlchemy's own reaction to a disconnect: every pooled connection turns stale, nothing closes outside the greenlet",
    params=("self", "connection", "exception", "_checkin"),
)
_need(
    "SQLAlchemy", Pool, "_invalidate",
    "vinyl's FairAsyncQueuePool tells vinyl when it is invalidated (by a lost connection, or by any code that calls "
    "it, with no event): the spares it made stale are not handed out (SQLAlchemy fires no event of its own)",
    how="override", params=("self", "connection", "exception", "_checkin"),
)


_need(
    "SQLAlchemy", QueuePool, "_queue_class",
    "vinyl's FairAsyncQueuePool gives its pool a queue that serves waiting tasks in order",
    how="override",
)
_need(
    "SQLAlchemy", QueuePool, "_pool",
    "the pool's queue of idle connections: vinyl's fair queue says how many tasks wait",
    present=_instance_attr(_pool, "_pool"),
)
_need(
    "SQLAlchemy", _sa_queue, "QueueCommon",
    "the interface of a pool's queue (sqlalchemy.util.queue is internal), which vinyl's fair queue implements",
    present=lambda: all(
        hasattr(_sa_queue.QueueCommon, method)
        for method in ("empty", "full", "qsize", "put_nowait", "put", "get_nowait", "get")
    ),
)
#: The base class of a pool's queue (SQLAlchemy's internal interface).
QueueCommon = _sa_queue.QueueCommon


def pool_queue(pool: Any) -> Any:
    """The queue of idle connections of a QueuePool (None for other pools)."""
    return pool._pool if isinstance(pool, QueuePool) else None


def quiet_checkout(pool: Any, invalidated_at: float) -> bool:
    """Does a checkout from ``pool`` never talk to the server, unless a
    connection was invalidated? ``invalidated_at``: the pool's
    :func:`invalidated_at` its caller has accounted for (found the
    connections it made stale); False once the pool's has moved since."""
    return not pool._pre_ping and pool._recycle < 0 and pool._invalidate_time == invalidated_at


def invalidated_at(pool: Any) -> float:
    """When ``pool`` was last invalidated (0: never); every connection it
    opened before then reconnects at its next checkout."""
    return pool._invalidate_time


def stale_entry(record: Any) -> bool:
    """Does the next checkout of ``record`` (a pool entry) reconnect it?
    (Recycling by age aside: a quiet pool has none.)"""
    return record._is_hard_or_soft_invalidated()


def logs_as_its_engine(connection: Any) -> bool:
    """Does SQLAlchemy ``connection`` log its statements as a new one of its
    engine would now? A Connection reads the engine's echo (its logger's
    INFO level) once, when made: a block's connection kept for the next
    block (engines.kept_connection) must not keep a setting changed since."""
    return connection._echo == connection.engine.logger.isEnabledFor(logging.INFO)


def max_overflow(pool: Any) -> int | None:
    """The overflow a QueuePool allows; None for other pool classes."""
    return pool._max_overflow if isinstance(pool, QueuePool) else None


def invalidate_pool(pool: Any) -> None:
    """Mark every connection ``pool`` opened so far as stale (Pool._invalidate)."""
    pool._invalidate(None)


_need(
    "SQLAlchemy", NestedTransaction, "_savepoint",
    "a savepoint whose RELEASE the server refused is left inactive by SQLAlchemy (its rollback() sends nothing): "
    "vinyl sends ROLLBACK TO SAVEPOINT itself, as Django does, by the name only this attribute holds",
    present=_set_by(NestedTransaction.__init__, "_savepoint"),
)


def savepoint_name(nested: Any) -> str:
    """The name of the savepoint of ``nested`` (a sync NestedTransaction)."""
    return nested._savepoint


_need(
    "SQLAlchemy", _sa_concurrency, "in_greenlet",
    "is the current code running inside SQLAlchemy's greenlet bridge (not exported from sqlalchemy.util)",
)
in_greenlet: Callable[[], bool] = _sa_concurrency.in_greenlet


# -- sqlalchemy.ext.asyncio without the ORM -------------------------------------
#
# vinyl uses SQLAlchemy's async engine (sqlalchemy.ext.asyncio.engine), never
# its ORM; the package's __init__ also imports AsyncSession, which imports
# sqlalchemy.orm: 12-15% of the instructions of a cold process's first query
# (issue 17, cold start). So unless something imported the package already,
# it is put in sys.modules unexecuted (built from its own spec) before vinyl
# imports sqlalchemy.ext.asyncio.engine, and it runs its own __init__, in
# place, the first time anyone reads one of its names: the same module object
# and classes afterwards, and `from sqlalchemy.ext.asyncio import AsyncSession`
# works as before. vinyl's modules import from sqlalchemy.ext.asyncio.engine
# (tests/packaging/test_compat.py checks that nothing imports the ORM).


def _defer_asyncio_package() -> None:
    import importlib
    import importlib.util
    import sys
    import threading

    import sqlalchemy.ext

    name = "sqlalchemy.ext.asyncio"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:  # pragma: no cover - SQLAlchemy without it
        raise _missing("SQLAlchemy", "sqlalchemy.ext", "asyncio", "vinyl runs on SQLAlchemy's async engine")
    # (importlib.util.LazyLoader runs a package at any attribute read, its
    # __path__ too, which importing the submodule needs.)
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    lock = threading.RLock()

    def run_init() -> None:
        with lock:
            if package.__dict__.get("__getattr__") is not __getattr__:
                return  # ran already
            del package.__dict__["__getattr__"], package.__dict__["__dir__"]
            try:
                loader.exec_module(package)
            except BaseException:  # raised to this reader; the next one runs it again
                package.__dict__.update(__getattr__=__getattr__, __dir__=__dir__)
                raise

    def __getattr__(attr: str) -> Any:  # noqa: N807 - a module's __getattr__ (PEP 562)
        run_init()
        try:
            return package.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    def __dir__() -> list[str]:  # noqa: N807 - a module's __dir__ (PEP 562)
        run_init()
        return sorted(package.__dict__)

    sys.modules[name] = package
    sqlalchemy.ext.asyncio = package  # as an import sets it
    try:
        # (No __getattr__ yet: `from . import exc` in the engine module finds
        # no such name on the package, and the import system imports the
        # submodule, as for any package.)
        importlib.import_module(name + ".engine")
    except BaseException:
        del sys.modules[name], sqlalchemy.ext.asyncio
        raise
    package.__dict__.update(__getattr__=__getattr__, __dir__=__dir__)
    # What the package's __init__ does besides importing: greenlet, or an
    # ImportError now.
    _sa_concurrency._concurrency_shim._initialize()


_need(
    "SQLAlchemy", _sa_concurrency, "_concurrency_shim",
    "sqlalchemy.ext.asyncio's __init__ imports greenlet through it; vinyl runs that step when it defers the package",
)
_defer_asyncio_package()

# -- the backends: each checked when its package is imported -------------------
#
# A backend's names live in its SQLAlchemy dialect, its driver and (SQLite)
# Django's sqlite3 backend. Importing them all with vinyl cost every process
# the dialects and drivers of the backends it does not use (issue 17: cold
# start), so each backend's package (vinyl/postgresql_backend/__init__.py...)
# runs its check first: Django imports it for an alias before any statement
# runs there, and a missing name fails with the same ImportError.


def _once(check: Callable[[], None]) -> Callable[[], None]:
    """Run ``check`` on the first call only (again after it failed)."""
    done: list[bool] = []

    @functools.wraps(check)
    def run() -> None:
        if not done:
            # The dialect and driver it imports: see vinyl._coldstart.
            with collector_paused():
                check()
            done.append(True)

    return run


@_once
def check_postgresql() -> None:
    """Check the private names vinyl's PostgreSQL backend uses (SQLAlchemy's asyncpg dialect, asyncpg)."""
    import asyncpg.connection
    import asyncpg.cursor
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

    for name in ("_transaction", "_start_transaction"):
        _need(
            "SQLAlchemy", AsyncAdapt_asyncpg_connection, name,
            "the asyncpg adapter sends BEGIN with its first statement; one vinyl runs on asyncpg itself must not "
            "precede it",
        )
    for name in ("_close_portal", "_portal_name"):
        _need(
            "asyncpg", asyncpg.cursor.BaseCursor, name,
            "asyncpg has no public close for a cursor's portal; a stream cut short on a shared connection must end it",
        )
    _need(
        "asyncpg", asyncpg.connection.Connection, "_protocol",
        "is_in_transaction() is a call to the protocol's: every statement outside a block asks it, without "
        "that call (see asyncpg_idle)",
    )
    _need(
        "asyncpg", asyncpg.connection.Connection, "_aborted",
        "is_closed() is a call reading it and the protocol's is_connected(): every statement vinyl sends asks "
        "them, without that call (see asyncpg_statement)",
    )
    for name in ("_check_open", "_execute"):
        _need(
            "asyncpg", asyncpg.connection.Connection, name,
            "fetch() and execute() are a coroutine around _execute(): every statement vinyl sends awaits it "
            "directly, one coroutine (its frame, its resumption) less (see asyncpg_statement)",
            params=("self", "query", "args", "limit", "timeout") if name == "_execute" else None,
        )
    _need(
        "asyncpg", asyncpg.connection.Connection, "_transport",
        "a connection whose loop closed can only be ended by shutting its socket down",
    )
    import asyncpg.connect_utils

    _need(
        "asyncpg", asyncpg.connect_utils, "TLSUpgradeProto",
        "the SSL probe's answer future fails unread when asyncpg cuts a connect or a cancel request short "
        "(asyncpg issues 1211, 1310); vinyl reads that failure (vinyl.postgresql_backend.connect)",
    )


@_once
def check_mysql() -> None:
    """Check the private names vinyl's MySQL backend uses (asyncmy)."""
    import asyncmy.connection

    # Not checked, but imported here, with the collector paused (_once), as
    # the other backends' dialects: the backend's module imports it next.
    import sqlalchemy.dialects.mysql.asyncmy  # noqa: F401

    _need(
        "asyncmy", asyncmy.connection.Connection, "_execute_command",
        "asyncmy has no public call for COM_SET_OPTION (multi statements on and off)",
    )

    def transport() -> bool:
        # A C slot from 0.2.18; up to 0.2.17 an attribute __init__ sets (a
        # new Connection does not connect; it asks for the current loop).
        if hasattr(asyncmy.connection.Connection, "_transport"):
            return True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return hasattr(asyncmy.connection.Connection(), "_transport")  # type: ignore[no-untyped-call]

    _need(
        "asyncmy", asyncmy.connection.Connection, "_transport",
        "a connection whose loop closed can only be ended by shutting its socket down",
        present=transport,
    )


@_once
def check_sqlite() -> None:
    """Check the private names vinyl's SQLite backend uses (SQLAlchemy's aiosqlite dialect, Django's sqlite3 backend)."""
    from django.db.backends.sqlite3 import base as _sqlite_base  # noqa: F401 (imports the package in its order)
    from django.db.backends.sqlite3 import _functions as sqlite_functions
    from django.db.backends.sqlite3.operations import DatabaseOperations as SQLiteOperations
    from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

    _need(
        "SQLAlchemy", AsyncAdapt_aiosqlite_dbapi, "_init_dbapi_attributes",
        "the aiosqlite DB-API copies only some of sqlite3's exception classes; Django's error mapping reads them all",
        how="override", params=("self",),
    )
    _need(
        "Django", SQLiteOperations, "_quote_params_for_last_executed_query",
        "Django quotes DEBUG's last query on the sqlite3 connection; vinyl's is an aiosqlite adapter",
        how="override", params=("self", "params"),
    )
    _need(
        "Django", sqlite_functions, "register",
        "vinyl's SQLite connections get the SQL functions Django's own get (django_date_extract...)",
        params=("connection",),
    )


# SQLAlchemy's adapted DB-API modules: vinyl's backends subclass them to add
# what Django reads (all PEP 249 exception classes, vinyl's cursors).


def asyncpg_dbapi() -> Any:
    """SQLAlchemy's DB-API class for asyncpg (the PostgreSQL backend's names checked)."""
    check_postgresql()
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

    return AsyncAdapt_asyncpg_dbapi


def asyncmy_dbapi() -> Any:
    """SQLAlchemy's DB-API class for asyncmy (the MySQL backend's names checked)."""
    check_mysql()
    from sqlalchemy.dialects.mysql.asyncmy import AsyncAdapt_asyncmy_dbapi

    return AsyncAdapt_asyncmy_dbapi


def aiosqlite_dbapi() -> Any:
    """SQLAlchemy's DB-API class for aiosqlite (the SQLite backend's names checked)."""
    check_sqlite()
    from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

    return AsyncAdapt_aiosqlite_dbapi


def register_sqlite_functions(connection: Any) -> None:
    """Register Django's SQL functions on a sqlite3 connection."""
    from django.db.backends.sqlite3._functions import register

    register(connection)


def begin_asyncpg_transaction(adapter: Any) -> Awaitable[None] | None:
    """The BEGIN SQLAlchemy's asyncpg adapter has pending, to await; None
    if it has none (checked without a coroutine: every statement of a block
    asks)."""
    if adapter._transaction is None and adapter.isolation_level != "autocommit":
        return adapter._start_transaction()
    return None


def asyncpg_idle(connection: Any) -> bool:
    """``not connection.is_in_transaction()`` without its call (asyncpg's
    is that of its protocol)."""
    return not connection._protocol.is_in_transaction()


def asyncpg_statement(connection: Any, sql: str, params: tuple, status: bool = False) -> Awaitable[Any]:
    """What asyncpg's ``fetch(sql, *params)`` awaits (its rows), or with
    ``status`` its ``execute(sql, *params)`` (``(rows, status, completed)``,
    the status as bytes: b"UPDATE 3"), without their coroutine around it.
    ``params``: a tuple, not empty (execute() without parameters sends a
    simple query: it stays asyncpg's)."""
    if connection._aborted or not connection._protocol.is_connected():  # (is_closed(), without its call)
        connection._check_open()  # (asyncpg's own error)
    if status:
        return connection._execute(sql, params, 0, None, return_status=True)
    return connection._execute(sql, params, 0, None)


def read_ssl_probe_failures(read: Callable[[Any], None]) -> None:
    """Have every asyncpg SSL probe call ``read(future)`` when its answer future is done.

    asyncpg reads the answer of a probe (SSLRequest) through a future its
    protocol object makes; when the connect or cancel request awaiting it is
    cut short (asyncpg's own timeout, a connection's teardown cancelling its
    cancel request), the transport closes and the future fails unread, which
    asyncio logs as "Future exception was never retrieved" (asyncpg issues
    1211 and 1310). asyncpg builds the protocol from this module global, so
    a subclass put there adds the callback; the awaiting code, when there is
    one, still gets the failure as before.
    """
    import asyncpg.connect_utils

    probe = asyncpg.connect_utils.TLSUpgradeProto
    if getattr(probe, "_vinyl_reads_failures", False):
        return

    class ProbeReadingItsFailure(probe):  # type: ignore[misc, valid-type]
        _vinyl_reads_failures = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.on_data.add_done_callback(read)

    asyncpg.connect_utils.TLSUpgradeProto = ProbeReadingItsFailure


async def close_portal(cursor: Any) -> None:
    """Close the portal of an asyncpg cursor, if it has one open."""
    if cursor._portal_name:
        await cursor._close_portal(None)


def driver_transport(driver_connection: Any) -> Any:
    """The asyncio transport of an asyncpg or asyncmy connection (None for aiosqlite's)."""
    return getattr(driver_connection, "_transport", None)


async def mysql_set_option(driver_connection: Any, command: int, argument: bytes) -> None:
    """Send a MySQL command asyncmy has no public call for (COM_SET_OPTION)."""
    await driver_connection._execute_command(command, argument)


# -- Django: the database wrapper -----------------------------------------------

_ASYNC_UNSAFE_CODE = async_unsafe(lambda: None).__code__
_need(
    "Django", async_unsafe, "__code__",
    "vinyl unwraps Django's async-misuse guard on its wrappers (every statement runs awaited in the greenlet); "
    "@async_unsafe functions are told apart by their shared code object",
    present=lambda: async_unsafe(lambda: 1).__code__ is _ASYNC_UNSAFE_CODE
    and hasattr(async_unsafe(lambda: 1), "__wrapped__"),
)


def unwrap_async_unsafe(attr: Any) -> Any:
    """What ``attr`` wraps if it is @async_unsafe, else None."""
    if getattr(attr, "__code__", None) is _ASYNC_UNSAFE_CODE:
        return attr.__wrapped__
    return None


for _name in ("_commit", "_rollback", "_set_autocommit"):
    _need(
        "Django", BaseDatabaseWrapper, _name,
        "vinyl's wrappers refuse to end a transaction vinyl.atomic() owns, and call Django's otherwise",
        how="override",
    )
_need(
    "Django", BaseDatabaseWrapper, "_cursor",
    "chunked_cursor() opens a plain (or named) cursor as Django's own does, without the debug wrapping",
    params=("self", "name"),
)


def wrapper_cursor(wrapper: Any, name: str | None = None) -> Any:
    """A cursor of ``wrapper`` as ``chunked_cursor()`` opens it."""
    return wrapper._cursor(name) if name is not None else wrapper._cursor()


_need(
    "Django", BaseDatabaseWrapper, "_savepoint_allowed",
    "savepoints follow vinyl's transaction scope, not the wrapper's own autocommit flag",
    how="override", params=("self",),
)

#: The transaction attributes BaseDatabaseWrapper.__init__ sets: vinyl keeps
#: them in the engine scope, per task.
WRAPPER_TRANSACTION_ATTRIBUTES = (
    "autocommit", "in_atomic_block", "savepoint_state", "savepoint_ids", "atomic_blocks", "commit_on_exit",
    "rollback_exc", "closed_in_transaction", "run_on_commit", "run_commit_hooks_on_set_autocommit_on",
    "errors_occurred", "health_check_done", "close_at",
)
for _name in WRAPPER_TRANSACTION_ATTRIBUTES:
    _need(
        "Django", BaseDatabaseWrapper.__init__, _name,
        "a transaction flag of Django's wrapper: vinyl keeps it in the engine scope, per task",
        present=_set_by(BaseDatabaseWrapper.__init__, _name),
    )

# -- Django: querysets ----------------------------------------------------------


def _queryset() -> QuerySet:
    return QuerySet()


for _name, _reason in (
    ("_hints", "the routing hints Django's QuerySet.db passes to the router: vinyl's routing passes the same"),
    ("_for_write", "whether Django routes a queryset as a write: vinyl's routing and delete() do the same"),
    ("_db", "the alias a queryset was given with using(), before routing (QuerySet.db routes)"),
    ("_fields", "a values()/values_list() queryset refuses delete(), as Django's delete() does"),
    ("_iterable_class", "what a queryset builds (instances, dicts, tuples): vinyl plans each kind"),
    ("_prefetch_related_lookups", "a queryset with prefetch_related() is evaluated with Django's prefetching"),
    ("_known_related_objects", "a related manager's queryset sets the owner on each row: Django builds those"),
    ("_result_cache", "an evaluated queryset is not evaluated again (prefetched rows)"),
    ("_prefetch_done", "a prefetched queryset is not prefetched again"),
    ("_query", "a prefetched queryset builds its Query only if code chains on it"),
    ("_deferred_filter", "a prefetched queryset filters on its owner only if code chains on it"),
):
    _need("Django", QuerySet, _name, _reason, present=_instance_attr(_queryset, _name))

for _name in ("_iterable_class", "_has_filters"):
    _need(
        "Django", QuerySet, _name,
        "Django reads it from any queryset it is given (Prefetch, related managers): VinylQuerySet answers it",
        how="implement", present=lambda: _name in vars(_queryset()) or hasattr(QuerySet, _name),
    )

#: Django 6.0 runs a bulk_create of one INSERT outside ``atomic(savepoint=False)``:
#: its failure no longer leaves an enclosing block only able to roll back
#: (5.2 marks the block, whatever failed).
BULK_CREATE_OF_ONE_INSERT_MARKS_BLOCK = django.VERSION < (6, 0)

#: Django 6.1 deprecates select_related() without fields (RemovedInDjango2028Warning).
BARE_SELECT_RELATED_DEPRECATED = django.VERSION >= (6, 1)
_VINYL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_bare_select_related() -> None:
    """Django's deprecation warning of ``select_related()`` without fields,
    pointing at the application's call (the first frame outside vinyl), as
    Django's own points at the caller of its QuerySet."""
    from django.utils.deprecation import RemovedInDjango2028Warning  # Django >= 6.1

    # (skip_file_prefixes: Python >= 3.12, which Django 6.1 requires.)
    warnings.warn(  # type: ignore[call-overload]
        "Calling select_related() with no arguments is deprecated. Specify the fields to fetch instead.",
        RemovedInDjango2028Warning,
        skip_file_prefixes=(_VINYL_DIR,),
    )


def django_step(qs: QuerySet, method: str, args: tuple, kwargs: dict) -> QuerySet:
    """``getattr(qs, method)(*args, **kwargs)``: one recorded step of a vinyl
    QuerySet run on Django's.

    vinyl runs a step on Django's QuerySet at the application's call and again
    whenever it rebuilds that QuerySet from its steps. Django would warn at
    each of those calls of a deprecated ``select_related()``, pointing at
    vinyl: vinyl warns once per call itself (:func:`warn_bare_select_related`)
    and runs Django's step with that warning ignored. (catch_warnings changes
    the process's filters for the call; only this deprecated call takes it.)
    """
    if BARE_SELECT_RELATED_DEPRECATED and method == "select_related" and not args:
        from django.utils.deprecation import RemovedInDjango2028Warning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RemovedInDjango2028Warning)
            return qs.select_related()
    return getattr(qs, method)(*args, **kwargs)


#: Django 6.1 gives querysets and instances a fetch mode.
DJANGO_FETCH_MODES = django.VERSION >= (6, 1)
if DJANGO_FETCH_MODES:
    _need(
        "Django", QuerySet, "_fetch_mode",
        "instances built by vinyl's plans carry their queryset's fetch mode, as Django's do",
        present=_instance_attr(_queryset, "_fetch_mode"),
    )
_need(
    "Django", QuerySet, "_chain",
    "a copy of a queryset to change, as Django's own methods take it (all() may be overridden)",
    params=("self",),
)
_need(
    "Django", QuerySet, "_add_hints",
    "a related manager's queryset is marked in Django's own hint store, which every clone carries",
)
_need(
    "Django", QuerySet, "_not_support_combined_queries",
    "delete() refuses union()/intersection()/difference() with Django's own error",
    params=("self", "operation_name"),
)
_need(
    "Django", QuerySet, "_raw_delete",
    "vinyl's collector deletes a fast-delete queryset as Django's collector does, without collecting",
    params=("self", "using"),
)
_need(
    "Django", RawQuerySet, "_clone",
    "a raw query is evaluated on a copy, so the user's object stays unevaluated (RawQuerySet has no public copy)",
)


def chain(qs: QuerySet) -> QuerySet:
    """A copy of ``qs`` to change (``all()`` may be overridden by a custom QuerySet)."""
    return qs._chain()


def queryset_routing(qs: QuerySet) -> tuple[dict[str, Any], bool]:
    """The routing hints of ``qs`` and whether it is for a write."""
    return qs._hints, qs._for_write


def add_hints(qs: QuerySet, **hints: Any) -> None:
    """Add routing hints to ``qs`` (they follow its clones)."""
    qs._add_hints(**hints)


def for_write(qs: QuerySet) -> None:
    """Route ``qs`` as a write."""
    qs._for_write = True


def given_alias(qs: QuerySet) -> str | None:
    """The alias ``qs`` was given with using() (None: routed)."""
    return qs._db


def set_alias(qs: QuerySet, alias: str | None) -> None:
    """Give ``qs`` an alias in place (``using()`` would clone it)."""
    qs._db = alias


def is_values(qs: QuerySet) -> bool:
    """Is ``qs`` a values() or values_list() queryset?"""
    return qs._fields is not None


def refuse_combined(qs: QuerySet, operation: str) -> None:
    """Raise Django's error for ``operation`` on a combined queryset."""
    qs._not_support_combined_queries(operation)


def iterable_class(qs: QuerySet) -> Any:
    """What ``qs`` builds from its rows (ModelIterable, ValuesIterable...)."""
    return qs._iterable_class


def set_iterable_class(qs: QuerySet, cls: type) -> None:
    """Make ``qs`` build its rows with ``cls``."""
    qs._iterable_class = cls


def prefetch_lookups(qs: QuerySet) -> tuple[Any, ...]:
    """The prefetch_related() lookups of ``qs``."""
    return qs._prefetch_related_lookups


def known_related_objects(qs: QuerySet) -> dict[Any, Any]:
    """The owners a related manager's ``qs`` sets on each row."""
    return qs._known_related_objects


def is_evaluated(qs: QuerySet) -> bool:
    """Has ``qs`` fetched its rows?"""
    return qs._result_cache is not None


def fetch_mode(qs: QuerySet) -> Any:
    """The fetch mode of ``qs`` (Django 6.1); None before 6.1."""
    return qs._fetch_mode if DJANGO_FETCH_MODES else None


#: The attributes of a QuerySet that differ between prefetched querysets
#: (set on each one) or are mutable (``_hints``, ``_known_related_objects``).
_PER_QUERYSET = frozenset({"model", "_db", "_hints", "_query", "_result_cache", "_known_related_objects", "_deferred_filter"})


def install_prefetched_state(cls: Any, iterable: type, known: Callable[[QuerySet], dict], deferred: Callable[[QuerySet], Any]) -> None:
    """Give ``cls`` (a QuerySet subclass) class-level defaults for the state
    Django's ``__init__`` sets, as a prefetched queryset has it, so each
    one built by :func:`cache_prefetched` stores only what is its own.

    Every such attribute is an immutable value (a write makes it the
    instance's own, as ``__init__``'s would), or, for a mutable one a later
    Django may add, a property giving each queryset its own copy. ``_known_related_objects``
    and ``_deferred_filter`` (the owner filter Django's related manager
    defers) are properties: made by ``known(qs)`` and ``deferred(qs)`` when
    read (Django reads them only when the queryset is chained, copied or
    combined), stored when written.
    """
    blank = QuerySet.__new__(QuerySet)
    QuerySet.__init__(blank, model=None, query=object())
    owned: list[str] = []
    for name, value in blank.__dict__.items():
        if name in _PER_QUERYSET:
            continue
        if isinstance(value, (dict, list, set, bytearray)):
            # Not one Django 5.2-6.1 has: a mutable default can't be shared,
            # so each queryset gets its own copy when it first reads it.
            owned.append(name)
            setattr(cls, name, _owned_copy(name, value))
            continue
        setattr(cls, name, value)
    cls._vinyl_owned = tuple(owned)
    cls._iterable_class = iterable
    cls._prefetch_done = True
    unset = object()
    cls._vinyl_known = cls._vinyl_deferred = unset

    def get_known(qs: QuerySet) -> Any:
        value = qs._vinyl_known
        if value is unset:
            value = qs._vinyl_known = known(qs)
        return value

    def get_deferred(qs: QuerySet) -> Any:
        value = qs._vinyl_deferred
        return deferred(qs) if value is unset else value

    def put_known(qs: QuerySet, value: Any) -> None:
        qs._vinyl_known = value

    def put_deferred(qs: QuerySet, value: Any) -> None:
        qs._vinyl_deferred = value

    cls._known_related_objects = property(get_known, put_known)
    cls._deferred_filter = property(get_deferred, put_deferred)


def _owned_copy(name: str, default: Any) -> property:
    """A QuerySet attribute whose mutable ``default`` each queryset copies
    when it first reads it (stored under another name: the property holds
    the attribute's)."""
    stored = "_vinyl_own" + name

    def get(qs: QuerySet) -> Any:
        state = qs.__dict__
        if stored not in state:
            state[stored] = copy.copy(default)
        return state[stored]

    def put(qs: QuerySet, value: Any) -> None:
        qs.__dict__[stored] = value

    return property(get, put)


def store_prefetched_state(qs: QuerySet) -> None:
    """Store the state of ``qs`` that :func:`install_prefetched_state` makes when read."""
    qs._known_related_objects = qs._known_related_objects
    qs._deferred_filter = qs._deferred_filter
    for name in type(qs)._vinyl_owned:
        setattr(qs, name, getattr(qs, name))


def lazy_query(qs: QuerySet) -> Any:
    """The Query of ``qs`` if built, else None (a prefetched queryset's)."""
    return qs._query


def set_lazy_query(qs: QuerySet, query: Any) -> None:
    qs._query = query


def cache_prefetched(
    cls: type,
    model: type,
    db: str,
    call: tuple,
    cache_name: str,
    objs: list[Model],
    rows_of: list[list[Any]],
    filter_values: list[Any],
    keys: list[Any] | None = None,
    compiled: Callable[..., None] | None = None,
) -> None:
    """Cache a prefetched queryset of ``cls`` on each owner, in one loop.

    ``objs[i]`` gets ``_prefetched_objects_cache[cache_name]``: a queryset
    of ``model`` on ``db`` holding ``rows_of[i]``, built without __init__
    (``cls`` has the rest of the state, see
    :func:`install_prefetched_state`), filtered on ``filter_values[i]`` if
    code chains on it; ``call`` is what every queryset of this prefetch
    shares (the filter's name, ...). With ``keys`` (a reverse foreign key),
    ``objs[i]`` is the known owner of ``keys[i]``. One loop, no call and
    no dict but the cache per owner: this runs for every owner of every
    prefetch. ``compiled``: the same loop in C (``_rowbuild.cache_querysets``),
    run where it is given and every argument it walks is a list.
    """
    hints: dict = {}
    if compiled is not None and type(objs) is type(rows_of) is type(filter_values) is list and type(keys) in (list, type(None)):
        shared = (("model", model), ("_db", db), ("_hints", hints), ("_query", None), ("_vinyl_call", call))
        names: tuple[str, ...] = ("_result_cache", "_vinyl_value")
        columns: tuple[list, ...] = (rows_of, filter_values)
        if keys is not None:
            names, columns = (*names, "_vinyl_key"), (rows_of, objs, keys)
        compiled(cls, shared, names, columns, objs, "_prefetched_objects_cache", cache_name)
        return
    new = object.__new__
    qs: Any
    # (Attribute stores, not a copied __dict__: the values stay in the
    # instance, no dict object per queryset for the collector to walk.)
    if keys is None:
        for obj, rows, value in zip(objs, rows_of, filter_values):
            qs = new(cls)
            qs.model = model
            qs._db = db
            qs._hints = hints
            qs._query = None
            qs._vinyl_call = call
            qs._result_cache = rows
            qs._vinyl_value = value
            # (getattr, not the instance's __dict__: reading that would give a
            # new instance a dict object where its attributes live inline.)
            cache = getattr(obj, "_prefetched_objects_cache", None)
            if cache is None:
                obj._prefetched_objects_cache = {cache_name: qs}
            else:
                cache[cache_name] = qs
    else:
        for obj, rows, key in zip(objs, rows_of, keys):
            qs = new(cls)
            qs.model = model
            qs._db = db
            qs._hints = hints
            qs._query = None
            qs._vinyl_call = call
            qs._result_cache = rows
            qs._vinyl_value = obj
            qs._vinyl_key = key
            cache = getattr(obj, "_prefetched_objects_cache", None)
            if cache is None:
                obj._prefetched_objects_cache = {cache_name: qs}
            else:
                cache[cache_name] = qs


_need(
    "Django", Query, "add_q",
    "a Prefetch queryset's many-to-many prefetch filters on the owners reusing every join the queryset made, as "
    "Django's prefetcher does (reuse_all=True, a parameter only Django's own code passes): filter() would join "
    "the relation a second time and repeat each related row once per owner holding it",
    params=("self", "q_object", "reuse_all"),
)


def filter_reusing_joins(qs: QuerySet, q_object: Any) -> None:
    """Filter ``qs`` in place by ``q_object``, reusing the joins its query already has."""
    qs.query.add_q(q_object, reuse_all=True)


def raw_delete(qs: QuerySet, using: str) -> int:
    """DELETE the rows of ``qs`` in one statement (no signals, no cascade)."""
    return qs._raw_delete(using=using)


def clone_raw(raw: RawQuerySet) -> RawQuerySet:
    """An unevaluated copy of a raw query."""
    return raw._clone()


# -- Django: models -------------------------------------------------------------

_need(
    "Django", Model, "_save_parents",
    "vinyl's save() runs Django's save steps in the greenlet with vinyl's signals",
    params=("self", "cls", "using", "update_fields", "force_insert"),
)
_need(
    "Django", Model, "_save_table",
    "vinyl's save() runs Django's save steps in the greenlet with vinyl's signals",
    params=("self", "raw", "cls", "force_insert", "force_update", "using", "update_fields"),
)
_need(
    "Django", Model, "_validate_force_insert",
    "save(force_insert=...) is validated as Django validates it",
    params=("force_insert",),
)
#: Methods of Model that a create() goes through: a model that overrides one
#: keeps Django's full save path instead of vinyl's compiled INSERT.
SAVE_PATH = ("save", "save_base", "_save_parents", "_save_table", "_do_insert", "_prepare_related_fields_for_save")
for _name in SAVE_PATH[2:]:
    _need("Django", Model, _name, "a model overriding a step of Django's save path keeps that path")
for _name in ("_perform_unique_checks", "_perform_date_checks"):
    _need(
        "Django", Model, _name,
        "validate_unique() queries run on the instance's vinyl alias, not the default manager's",
        how="override", params=("self",),
    )
_need(
    "Django", prefetch_one_level, "_prefetched_objects_cache",
    "vinyl's prefetching fills the per-instance cache Django's related managers read",
    present=_set_by(prefetch_one_level, "_prefetched_objects_cache"),
)
_need(
    "Django", Options, "_reverse_one_to_one_field_names",
    "create() with a reverse one-to-one keyword is refused as Django refuses it",
)
_need(
    "Django", DeferredAttribute, "_check_parent_chain",
    "a deferred field reads an inherited key from the parent link, as Django's descriptor does",
    params=("self", "instance"),
)
_need(
    "Django", Collector, "_has_signal_listeners",
    "vinyl's collector asks about the user's model class, not vinyl's subclass of it",
    how="override", params=("self", "model"),
)


def prefetched_objects(obj: Model) -> dict[str, Any] | None:
    """The prefetched relations of ``obj`` (None: nothing prefetched)."""
    return obj.__dict__.get("_prefetched_objects_cache")


# (The two below read the cache with getattr, as Django's prefetcher does:
# reading an instance's __dict__ would give a new instance a dict object of
# its own, one more object for the cyclic collector, per instance.)


def without_prefetched(objs: list[Model], name: str) -> list[Model]:
    """The instances of ``objs`` that have no prefetched ``name``."""
    return [obj for obj in objs if name not in (getattr(obj, "_prefetched_objects_cache", None) or ())]


def prefetched_rows(objs: list[Model], name: str) -> list[Any]:
    """The rows of every instance's prefetched ``name``, in order."""
    rows: list[Any] = []
    extend = rows.extend
    for obj in objs:
        extend(obj._prefetched_objects_cache[name]._result_cache)
    return rows


def reverse_one_to_one_names(opts: Any) -> frozenset[str]:
    """The names of ``opts``'s reverse one-to-one relations."""
    return opts._reverse_one_to_one_field_names


def validate_force_insert(obj: Model, force_insert: Any) -> Any:
    return obj._validate_force_insert(force_insert)


def save_parents(obj: Model, cls: type, using: str, update_fields: Any, force_insert: Any) -> bool:
    return obj._save_parents(cls, using, update_fields, force_insert)


def save_table(obj: Model, raw: bool, cls: type, force_insert: Any, force_update: bool, using: str, update_fields: Any) -> bool:
    return obj._save_table(raw, cls, force_insert, force_update, using, update_fields)


def check_parent_chain(descriptor: Any, instance: Model) -> Any:
    """An inherited key read from the parent link, or None (DeferredAttribute's)."""
    return descriptor._check_parent_chain(instance)


def manager_alias(manager: Manager[Any]) -> str | None:
    """The alias a manager was given with db_manager()/using() (None: routed)."""
    return manager._db


@_once
def check_contenttypes() -> None:
    """Check the private name vinyl's generic relations use (ContentTypeManager's
    module can only be imported once Django's apps are loaded: checked at the
    first use of a content type, before any answer is read from it; reading
    its source at ``import vinyl`` instead cost every cold start a parse of it)."""
    from django.contrib.contenttypes.models import ContentTypeManager

    _need(
        "Django", ContentTypeManager, "_get_from_cache",
        "a generic relation reads ContentTypeManager's per-alias cache without querying",
        params=("self", "opts"),
    )


def content_type_from_cache(manager: Any, opts: Any) -> Any:
    """The ContentType ContentTypeManager cached for ``opts`` (KeyError if none)."""
    check_contenttypes()
    return manager._get_from_cache(opts)


# -- Django: related managers and populators -----------------------------------

_M2M = create_forward_many_to_many_manager(Manager, None, reverse=False)
_m2m_writes: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("_add_items", ("self", "source_field_name", "target_field_name", "objs")),
    ("_remove_items", ("self", "source_field_name", "target_field_name", "objs")),
)
for _name, _params in _m2m_writes:
    _need(
        "Django", _M2M, _name,
        "vinyl's many-to-many manager writes the through rows in one bridge call, with vinyl's signals",
        how="override", params=_params,
    )
if hasattr(_M2M, "_clear_base"):  # Django 6.1: set() clears through it (5.2 calls clear())
    _need(
        "Django", _M2M, "_clear_base",
        "vinyl's many-to-many manager clears the through rows with vinyl's signals, from clear() and set()",
        how="override", params=("self", "using", "raw"),
    )
_m2m_steps: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("_get_target_ids", ("self", "target_field_name", "objs")),
    ("_get_add_plan", ("self", "db", "source_field_name")),
    ("_get_missing_target_ids", ("self", "source_field_name", "target_field_name", "db", "target_ids")),
    ("_build_remove_filters", ("self", "removed_vals")),
    ("_remove_prefetched_objects", ("self",)),
)
for _name, _params in _m2m_steps:
    _need("Django", _M2M, _name, "vinyl's many-to-many writes take Django's steps", params=_params)

#: Django 6.1 added ``raw`` to m2m_changed (and ``using``/``raw`` to the helpers).
M2M_SIGNAL_HAS_RAW = "raw" in inspect.signature(_M2M._add_items).parameters


def m2m_target_ids(manager: Any, target_field_name: str, objs: Any) -> Any:
    return manager._get_target_ids(target_field_name, objs)


def m2m_add_plan(manager: Any, db: str, source_field_name: str) -> tuple[bool, bool, bool]:
    """(ignore_conflicts, send signals, one fast INSERT) for an add()."""
    return manager._get_add_plan(db, source_field_name)


def m2m_missing_target_ids(manager: Any, source_field_name: str, target_field_name: str, db: str, target_ids: Any) -> Any:
    return manager._get_missing_target_ids(source_field_name, target_field_name, db, target_ids)


def m2m_remove_filters(manager: Any, removed: Any) -> Any:
    return manager._build_remove_filters(removed)


def m2m_forget_prefetched(manager: Any) -> None:
    manager._remove_prefetched_objects()


# select_related: vinyl builds the joined instances with Django's populators
# (not underscored, but internal to django.db.models.query).
for _name in ("model_cls", "init_list", "related_populators"):
    _need(
        "Django", RelatedPopulator, _name,
        "vinyl's plans let Django's select_related populators build instances the fast way",
        present=_set_by(RelatedPopulator.__init__, _name),
    )
_need("Django", RelatedPopulator, "populate", "vinyl's plans fill joined instances with Django's populators")
if DJANGO_FETCH_MODES:
    _need(
        "Django", RelatedPopulator, "from_db",
        "Django 6.1's populators build through their from_db: vinyl's plans give theirs",
        present=_set_by(RelatedPopulator.__init__, "from_db"),
    )
for _name in ("klass_info", "select", "annotation_col_map", "col_count"):
    _need(
        "Django", SQLCompiler, _name,
        "vinyl's plans read where each model's columns are in a compiled row, as Django's iterables do",
        present=_set_by(SQLCompiler.setup_query, _name),
    )
_need(
    "Django", get_related_populators, "__call__",
    "vinyl's plans build select_related instances with Django's populators",
    present=lambda: list(inspect.signature(get_related_populators).parameters)[:3] == ["klass_info", "select", "db"],
)

del _name, _reason, _params
