"""Fixtures of the scale-out tests: replica sets the suite starts, and their aliases.

``replica_set`` starts (once per session and vendor) a primary and a replica
in temp dirs on free ports (see ``servers.py``), creates the scale app's
tables on the primary through a sync Django alias, waits for the replica to
have them, and registers two vinyl aliases: ``vinyl_<vendor>_primary`` and
``vinyl_<vendor>_replica``. A server that cannot start fails the tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

import vinyl
from tests.scale.servers import MariaDBReplicaSet, PostgresReplicaSet
from tests.scaleapp.models import Account, Branch

SYNC_TEMPLATE = {"postgresql": "sync_postgresql", "mysql": "sync_mysql"}
VINYL_TEMPLATE = {"postgresql": "vinyl_postgresql", "mysql": "vinyl_mysql"}


@dataclass
class ReplicaSet:
    """A started primary/replica pair and the aliases that reach it."""

    vendor: str
    servers: Any
    primary: str  # vinyl alias
    replica: str  # vinyl alias
    sync_primary: str  # Django alias (schema, checks)

    def wait_for_replica(self, timeout: float = 30.0) -> float:
        """Block until the replica has replayed everything the primary committed.

        Returns the seconds waited (the replication lag seen).
        """
        started = time.monotonic()
        if self.vendor == "postgresql":
            lsn = self.servers.primary.psql("select pg_current_wal_lsn()")
            done = self.servers.replica.psql(
                f"select pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '{lsn}') >= 0"
            )
            while done != "t":
                if time.monotonic() - started > timeout:
                    raise AssertionError(f"the PostgreSQL replica did not reach {lsn} in {timeout}s")
                time.sleep(0.005)
                done = self.servers.replica.psql(
                    f"select pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '{lsn}') >= 0"
                )
        else:
            gtid = self.servers.primary.sql("select @@gtid_binlog_pos")
            waited = self.servers.replica.sql(f"select master_gtid_wait('{gtid}', {timeout})")
            if waited != "0":
                raise AssertionError(f"the MariaDB replica did not reach GTID {gtid} in {timeout}s")
        return time.monotonic() - started


def _register(alias: str, template: str, port: int, name: str, user: str | None = None) -> None:
    entry = {**connections.settings[template], "PORT": str(port), "NAME": name}
    if user is not None:
        entry.update(USER=user, PASSWORD="")
    else:
        entry.update(USER="root" if "mysql" in template else "postgres", PASSWORD="")
    connections.settings[alias] = entry
    try:
        del connections[alias]
    except AttributeError:
        pass


def _unregister(alias: str) -> None:
    try:
        connections[alias].close()
        del connections[alias]
    except Exception:  # noqa: BLE001 - never opened in this thread
        pass
    connections.settings.pop(alias, None)


def _start(vendor: str) -> ReplicaSet:
    servers = (PostgresReplicaSet() if vendor == "postgresql" else MariaDBReplicaSet()).start()
    prefix = "pg" if vendor == "postgresql" else "mysql"
    aliases = ReplicaSet(
        vendor,
        servers,
        primary=f"vinyl_{prefix}_primary",
        replica=f"vinyl_{prefix}_replica",
        sync_primary=f"sync_{prefix}_primary",
    )
    _register(aliases.sync_primary, SYNC_TEMPLATE[vendor], servers.primary.port, servers.database)
    user = getattr(servers, "user", None)
    _register(aliases.primary, VINYL_TEMPLATE[vendor], servers.primary.port, servers.database, user)
    _register(aliases.replica, VINYL_TEMPLATE[vendor], servers.replica.port, servers.database, user)
    connection = connections[aliases.sync_primary]
    with connection.schema_editor() as editor:
        editor.create_model(Branch)
        editor.create_model(Account)
    connection.close()
    aliases.wait_for_replica()
    return aliases


_started: dict[str, ReplicaSet] = {}


@pytest.fixture(scope="session")
def _replica_sets() -> Iterator[dict[str, ReplicaSet]]:
    yield _started
    for aliases in _started.values():
        for alias in (aliases.sync_primary, aliases.primary, aliases.replica):
            _unregister(alias)
        aliases.servers.stop()
    _started.clear()


# Replicas need a server: SQLite has none (the routing rules run on it in test_routers.py).
REPLICA_VENDORS = [b for b in settings.BACKENDS if b in SYNC_TEMPLATE]


@pytest.fixture(params=REPLICA_VENDORS)
def _started_set(request: pytest.FixtureRequest, _replica_sets: dict[str, ReplicaSet]) -> ReplicaSet:
    # Sync: Django's schema editor may not run in the event loop.
    vendor = request.param
    if vendor not in _replica_sets:
        _replica_sets[vendor] = _start(vendor)
    return _replica_sets[vendor]


@pytest.fixture
async def replica_set(_started_set: ReplicaSet) -> Any:
    """A primary/replica pair of the vendor under test, tables empty."""
    yield _started_set
    await vinyl.dispose()
    await Account.vinyl.using(_started_set.primary).delete()
    await Branch.vinyl.using(_started_set.primary).delete()
    await vinyl.dispose()
