"""Which vinyl alias a query runs on: Django's ``DATABASE_ROUTERS``, for vinyl.

vinyl asks the routers of ``settings.DATABASE_ROUTERS`` as Django does for
its sync aliases, with the vinyl model class and the hint ``vinyl=True``
(put :class:`VinylRouter` first when routers answer Django's own calls with
Django's aliases)::

    class PrimaryReplicaRouter:
        def db_for_read(self, model, **hints):
            return "vinyl_replica" if hints.get("vinyl") else "replica"

        def db_for_write(self, model, **hints):
            return "vinyl_primary" if hints.get("vinyl") else "default"

        def allow_relation(self, obj1, obj2, **hints):
            return True   # both aliases hold the same data

        # vinyl only: where a read goes when db_for_read's alias is down
        def db_for_read_fallback(self, model, unavailable, **hints):
            return "vinyl_primary"

The rules, in order:

1. ``qs.using(alias)`` / ``VinylManager(using=alias)`` win over everything.
2. Related-object loads (``await book.author``, ``author.book_set.all()``)
   run on the instance's own alias (where it was loaded or saved).
3. Otherwise the first router whose ``db_for_read`` / ``db_for_write``
   answers decides; with no answer, the instance's alias (hint
   ``instance``) or ``vinyl_default``.
4. Inside ``vinyl.atomic()``, a read that would leave the block goes to the
   block's alias when the block is on the alias the model is written to:
   a transaction reads its own writes, never a replica that lags behind.

A router may answer with a Django alias (``"replica"``) instead of a vinyl
one: vinyl then uses the vinyl alias that points at the same database (same
vendor, NAME, HOST and PORT); when none does, or several do (and none is
``vinyl_default``), it raises :class:`~vinyl.exceptions.VinylConfigurationError`.

Fallback: when a read outside a transaction cannot connect to the alias the
routers chose (:class:`~vinyl.exceptions.DatabaseUnavailable`, which names
the alias), vinyl asks the routers' optional ``db_for_read_fallback(model,
unavailable, **hints)`` and, given an alias, runs the read there once,
logging a warning. No router method, no fallback: the error propagates.
Nothing had reached the server, so running the read again is safe. Writes
never fall back, nor do reads pinned with ``using()``.

``allow_relation`` is Django's own check (``book.author = author`` asks
``django.db.router``): return True from it for aliases that hold the same
rows, as for Django's primary/replica set-up.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections, router

from vinyl import _compat
from vinyl.engine.engines import DEFAULT_ALIAS
from vinyl.engine import scope as scopes
from vinyl.engine.scope import active_scope, in_bridge
from vinyl.exceptions import VinylConfigurationError

logger = logging.getLogger("vinyl.routing")

_NO_HINTS: dict[str, Any] = {}

#: The router method vinyl asks when a routed read cannot connect.
FALLBACK_METHOD = "db_for_read_fallback"

#: The hint on a related manager's QuerySet (``author.book_set.all()``): its
#: reads follow the instance's alias (rule 2).
RELATED_HINT = "vinyl_related"


def db_for_read(model: type, **hints: Any) -> str:
    """Return the vinyl alias a read of ``model`` runs on (rules 2 to 4)."""
    if not hints and not router.routers:
        return DEFAULT_ALIAS  # the usual case: nothing to ask, reads and writes alike
    if hints.get(RELATED_HINT) and "instance" in hints:
        return db_for_related(model, hints["instance"])
    alias = _ask("db_for_read", model, hints)
    if alias is None:
        alias = _instance_alias(hints) or DEFAULT_ALIAS
    return _in_block(alias, model, hints)


def db_for_write(model: type, **hints: Any) -> str:
    """Return the vinyl alias a write of ``model`` runs on (rule 3)."""
    if not hints and not router.routers:
        return DEFAULT_ALIAS
    alias = _ask("db_for_write", model, hints)
    if alias is None:
        alias = _instance_alias(hints) or DEFAULT_ALIAS
    return alias


def db_for_related(model: type, instance: Any) -> str:
    """Return the alias related rows of ``instance`` are loaded from (rules 2 and 4)."""
    alias = _instance_alias({"instance": instance})
    if alias is None:
        return db_for_read(model, instance=instance)
    return _in_block(alias, model, {"instance": instance})


class VinylRouter:
    """Put it first in ``DATABASE_ROUTERS``: Django's own calls inside vinyl's operations.

    ::

        DATABASE_ROUTERS = ["vinyl.routing.VinylRouter", "myproject.routers.PrimaryReplicaRouter"]

    vinyl runs Django's own code for some operations (related managers'
    ``add``/``remove``/``set``, deletion cascades); that code asks the routers
    itself, without the ``vinyl`` hint. A router that answers such calls with a
    Django alias would send them to Django's sync connection. This router
    answers them first, with the alias of the vinyl operation they belong to
    (the connection that code runs on), and leaves every other call to the
    routers after it. It needs no configuration.
    """

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        return _operation_alias(hints)

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return _operation_alias(hints)


def _operation_alias(hints: dict[str, Any]) -> str | None:
    """The alias of the vinyl operation running Django's code in this greenlet, if any."""
    if hints.get("vinyl") or not in_bridge():
        return None
    # The bridge's own record of the scopes bound to this greenlet's sync code.
    bound = scopes._bound.get()
    instance_db = getattr(getattr(hints.get("instance"), "_state", None), "db", None)
    if instance_db in bound:
        return instance_db
    return next(iter(bound)) if len(bound) == 1 else None


def queryset_routing(queryset: Any) -> tuple[dict[str, Any], bool]:
    """The routing hints of a Django QuerySet, and whether it is for a write.

    Django keeps both private (what its own ``QuerySet.db`` passes to the
    router); read through vinyl._compat, for vinyl's.
    """
    if queryset is None:
        return _NO_HINTS, False
    return _compat.queryset_routing(queryset)


def mark_related(queryset: Any) -> None:
    """Mark a related manager's QuerySet: its reads follow the instance's alias."""
    _compat.add_hints(queryset, **{RELATED_HINT: True})  # Django's own hint store


def read_fallback(model: type, unavailable: str, **hints: Any) -> str | None:
    """Return the alias a router gives for reads while ``unavailable`` is down."""
    for candidate in router.routers:
        method = getattr(candidate, FALLBACK_METHOD, None)
        if method is None:
            continue
        chosen = method(model, unavailable, vinyl=True, **hints)
        if chosen:
            alias = vinyl_alias(chosen, f"{type(candidate).__name__}.{FALLBACK_METHOD}")
            if alias != unavailable:
                return alias
    return None


def is_vinyl_alias(alias: str) -> bool:
    """Is ``alias`` in ``DATABASES`` with a vinyl backend?"""
    if alias not in connections.settings:
        return False
    return hasattr(connections[alias], "vinyl_engine_config")


def same_database(a: str | None, b: str) -> bool:
    """Do two aliases name the same database (a vinyl alias beside Django's)?"""
    if a is None or a not in connections.settings or b not in connections.settings:
        return False
    first, second = connections.settings[a], connections.settings[b]
    keys = ("NAME", "HOST", "PORT")
    return connections[a].vendor == connections[b].vendor and all(
        (first.get(k) or "") == (second.get(k) or "") for k in keys
    )


def vinyl_alias(alias: str, asked: str = "the router") -> str:
    """Return ``alias`` if it is a vinyl alias, else the vinyl alias of its database."""
    if is_vinyl_alias(alias):
        return alias
    twins = [a for a in connections.settings if a != alias and is_vinyl_alias(a) and same_database(a, alias)]
    if len(twins) == 1:
        return twins[0]
    if DEFAULT_ALIAS in twins:
        return DEFAULT_ALIAS
    which = f"several do ({', '.join(sorted(twins))})" if twins else "none does"
    raise VinylConfigurationError(
        f"{asked} chose the database alias {alias!r} for a vinyl query, which is "
        f"not a vinyl alias, and {which} point at its database: return a vinyl "
        f"alias when hints.get('vinyl') is true, or add one vinyl alias "
        f"(ENGINE 'vinyl.<vendor>_backend') with the same NAME, HOST and PORT"
    )


def _ask(method_name: str, model: type, hints: dict[str, Any]) -> str | None:
    routers = router.routers
    if not routers:
        return None
    for candidate in routers:
        method = getattr(candidate, method_name, None)
        if method is None:
            continue
        chosen = method(model, vinyl=True, **hints)
        if chosen:
            return vinyl_alias(chosen, f"{type(candidate).__name__}.{method_name}")
    return None


def _instance_alias(hints: dict[str, Any]) -> str | None:
    instance = hints.get("instance")
    db = getattr(getattr(instance, "_state", None), "db", None)
    if db is None:
        return None
    return db if is_vinyl_alias(db) else vinyl_alias(db, f"the instance {instance!r}")


def _in_block(alias: str, model: type, hints: dict[str, Any]) -> str:
    """Rule 4: a read in a block on the model's write alias stays in the block."""
    if active_scope(alias) is not None:
        return alias
    write = db_for_write(model, **hints)
    if write != alias and active_scope(write) is not None:
        return write
    return alias


__all__ = [
    "FALLBACK_METHOD",
    "VinylRouter",
    "RELATED_HINT",
    "db_for_read",
    "db_for_related",
    "db_for_write",
    "is_vinyl_alias",
    "mark_related",
    "queryset_routing",
    "read_fallback",
    "same_database",
    "vinyl_alias",
]
