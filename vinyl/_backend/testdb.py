"""A vinyl alias follows the test database of its sync alias.

A vinyl alias has no synchronous connection, so Django's test runner (and
pytest-django, which calls the same ``setup_databases``) cannot create a test
database through it. It does not need to: a vinyl alias names the same
database as a sync alias (``default``), its *twin*. Unless ``TEST["MIRROR"]``
says otherwise, a vinyl alias is a test mirror of its twin: when the test
runner creates ``test_<NAME>`` through the twin, the vinyl alias points at it
too, and Django's ``TestCase`` leaves mirrors out of its own transactions.

A twin on SQLite with an in-memory test database (Django's default) gets a
file instead, ``test_<NAME>`` beside the database file: the pooled
connections of concurrent tasks cannot share an in-memory database.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import connections
from django.db.backends.base.creation import BaseDatabaseCreation

from vinyl.exceptions import SyncConnectionError

logger = logging.getLogger("vinyl.testdb")

_IDENTITY = ("NAME", "HOST", "PORT")


def is_vinyl_engine(engine: Any) -> bool:
    return str(engine or "").startswith("vinyl.")


def find_twin(alias: str, vendor: str) -> str | None:
    """The sync alias that names the same database as vinyl alias ``alias``.

    ``default`` wins when several do.
    """
    mine = connections.settings[alias]
    candidates = []
    for other, settings_dict in connections.settings.items():
        if other == alias or is_vinyl_engine(settings_dict.get("ENGINE")):
            continue
        if any(str(settings_dict.get(key) or "") != str(mine.get(key) or "") for key in _IDENTITY):
            continue
        if connections[other].vendor != vendor:
            continue
        candidates.append(other)
    if not candidates:
        return None
    return "default" if "default" in candidates else candidates[0]


def follow_twin(wrapper: Any) -> None:
    """Make ``wrapper``'s alias a test mirror of its twin (see the module doc)."""
    test = wrapper.settings_dict.setdefault("TEST", {})
    if test.get("MIRROR"):
        return
    twin = find_twin(wrapper.alias, wrapper.vendor)
    if twin is None:
        return
    test["MIRROR"] = twin
    twin_settings = connections.settings[twin]
    if wrapper.vendor == "sqlite":
        twin_test = twin_settings.setdefault("TEST", {})
        name = twin_settings.get("NAME")
        if not twin_test.get("NAME") and name and not wrapper.creation.is_in_memory_db(str(name)):
            head, tail = os.path.split(str(name))
            twin_test["NAME"] = os.path.join(head, f"test_{tail}")


class VinylCreationMixin:
    """Test database handling of a vinyl alias: it only ever mirrors."""

    connection: Any

    def _no_twin(self) -> SyncConnectionError:
        alias = self.connection.alias
        return SyncConnectionError(
            f"vinyl alias {alias!r} cannot create a test database: it has no "
            f"synchronous connection. Add a sync alias with the same NAME, HOST "
            f"and PORT (e.g. 'default' with Django's own ENGINE), which creates "
            f"it, or set DATABASES[{alias!r}]['TEST'] = {{'MIRROR': '<sync alias>'}}"
        )

    def create_test_db(self, *args: Any, **kwargs: Any) -> str:
        raise self._no_twin()

    def clone_test_db(self, *args: Any, **kwargs: Any) -> None:
        raise self._no_twin()

    def destroy_test_db(self, *args: Any, **kwargs: Any) -> None:
        raise self._no_twin()

    def set_as_test_mirror(self, primary_settings_dict: dict[str, Any]) -> None:
        BaseDatabaseCreation.set_as_test_mirror(self, primary_settings_dict)
        _settings_changed(self.connection.alias)
        self.connection.vinyl_test_database_ready()

    def setup_worker_connection(self, _worker_id: Any) -> None:
        super().setup_worker_connection(_worker_id)  # type: ignore[misc]
        _settings_changed(self.connection.alias)


def _settings_changed(alias: str) -> None:
    from vinyl.engine.engines import settings_changed

    logger.debug("vinyl alias %r now uses database %r", alias, connections.settings[alias].get("NAME"))
    settings_changed(alias)


def creation_class(django_creation: type) -> type:
    """Django's creation class of a backend, as a vinyl alias's."""
    if issubclass(django_creation, VinylCreationMixin):
        return django_creation
    return type(f"Vinyl{django_creation.__name__}", (VinylCreationMixin, django_creation), {})


__all__ = ["VinylCreationMixin", "creation_class", "find_twin", "follow_twin", "is_vinyl_engine"]
