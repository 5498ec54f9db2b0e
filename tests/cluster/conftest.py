"""A three-node MariaDB Galera cluster the suite starts: ``make test-cluster``.

The nodes run in temp dirs on free ports (see ``tests/scale/servers.py``);
``vinyl_galera_1`` .. ``vinyl_galera_3`` reach them, each with
``wsrep_sync_wait=1`` so a read sees every write the cluster committed
before it (causal reads). A cluster that cannot start fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connections

import vinyl
from tests.scale.servers import GaleraCluster
from tests.scaleapp.models import Account, Branch


@dataclass
class Cluster:
    servers: GaleraCluster
    aliases: list[str]


def _register(alias: str, template: str, port: int, **extra: object) -> None:
    connections.settings[alias] = {**connections.settings[template], "PORT": str(port), **extra}
    try:
        del connections[alias]
    except AttributeError:
        pass


@pytest.fixture(scope="session")
def galera() -> Iterator[Cluster]:
    servers = GaleraCluster().start()
    aliases = [f"vinyl_galera_{index + 1}" for index in range(len(servers.nodes))]
    try:
        _register("sync_galera", "sync_mysql", servers.nodes[0].port, NAME=servers.database, USER="root", PASSWORD="")
        for alias, node in zip(aliases, servers.nodes):
            _register(
                alias, "vinyl_mysql", node.port, NAME=servers.database, USER=servers.user, PASSWORD="",
                OPTIONS={"init_command": "SET SESSION wsrep_sync_wait=1"},
            )  # fmt: skip
        with connections["sync_galera"].schema_editor() as editor:
            editor.create_model(Branch)
            editor.create_model(Account)
        connections["sync_galera"].close()
        yield Cluster(servers, aliases)
    finally:
        for alias in ["sync_galera", *aliases]:
            connections.settings.pop(alias, None)
        servers.stop()


@pytest.fixture
async def cluster(galera: Cluster) -> object:
    """The cluster, its tables emptied after the test."""
    yield galera
    await vinyl.dispose()
    await Account.vinyl.using(galera.aliases[0]).delete()
    await Branch.vinyl.using(galera.aliases[0]).delete()
    await vinyl.dispose()
