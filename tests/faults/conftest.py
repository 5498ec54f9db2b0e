"""Fixtures of the fault suite: its own servers, vinyl pointed at them.

``fault_servers`` starts (once per session) a PostgreSQL cluster, a MariaDB
instance and pgbouncer in transaction mode in temporary directories, on
free ports, and creates the schema there through Django. A server that
cannot start fails every test that needs it. ``fault_target`` points
``vinyl_default`` at one of them, with the pool the test asks for.
"""

from __future__ import annotations

import atexit
import copy
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connections

import vinyl
from tests.faults.servers import MariaDBServer, PgBouncer, PostgresServer
from tests.faults.sessions import Sessions
from tests.testapp.models import AllTypes, Author, Tag

DATABASE = "vinyl_faults"
MODELS = (Author, Tag, AllTypes)


@dataclass
class FaultServers:
    postgresql: PostgresServer
    mysql: MariaDBServer
    pgbouncer: PgBouncer


def _add_alias(alias: str, template: str, server_settings: dict) -> None:
    settings = copy.deepcopy(connections.settings[template])
    settings.update(server_settings)
    settings.pop("OPTIONS", None)
    settings["OPTIONS"] = {}
    connections.settings[alias] = settings
    try:
        del connections[alias]
    except AttributeError:
        pass


def _create_schema(alias: str) -> None:
    connection = connections[alias]
    with connection.schema_editor() as editor:
        for model in MODELS:
            editor.create_model(model)
    connection.close()


def _destroy_on_exit(started: list[Any]) -> None:
    """Stop the servers even if the run is killed (SIGTERM: the session's
    finalizers would not run, and a server would outlive it)."""
    atexit.register(lambda: [server.destroy() for server in reversed(started)])
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def stop(signum: int, frame: Any) -> None:
            raise SystemExit(f"terminated by signal {signum}")

        signal.signal(signal.SIGTERM, stop)


@pytest.fixture(scope="session")
def fault_servers() -> Iterator[FaultServers]:
    started: list[Any] = []
    _destroy_on_exit(started)
    try:
        pg = PostgresServer()
        started.append(pg)
        pg.start()
        pg.create_database(DATABASE)
        maria = MariaDBServer()
        started.append(maria)
        maria.start()
        maria.create_database(DATABASE)
        bouncer = PgBouncer(pg, DATABASE)
        started.append(bouncer)
        bouncer.start()
        for name, server, template in (("postgresql", pg, "sync_postgresql"), ("mysql", maria, "sync_mysql")):
            _add_alias(f"faults_sync_{name}", template, server.settings(DATABASE))
            _create_schema(f"faults_sync_{name}")
        yield FaultServers(pg, maria, bouncer)
    finally:
        for alias in ("faults_sync_postgresql", "faults_sync_mysql"):
            if alias in connections.settings:
                connections[alias].close()
        while started:
            started.pop().destroy()


@dataclass
class FaultTarget:
    """The server a fault test runs against, and a counter of its sessions."""

    backend: str
    server: Any
    sessions: Sessions
    limit: int  # pool_size + max_overflow

    def point(self, via: Any = None, **options: Any) -> None:
        """(Re)point ``vinyl_default`` at the server (or ``via``: pgbouncer)."""
        template = "vinyl_postgresql" if self.backend == "postgresql" else "vinyl_mysql"
        _add_alias("vinyl_default", template, (via or self.server).settings(DATABASE))
        if self.backend == "postgresql":
            # asyncpg's SSL negotiation (sslmode "prefer") leaves a future
            # whose error nobody retrieves when a connect is cancelled (the
            # storm cancels some); these servers have no SSL: skip it.
            options = {"ssl": False, **options}
        else:
            # asyncmy's connect timeout (10 s) counts wall time, and a storm
            # round starts 10,000 tasks whose first steps block the loop for
            # seconds (3 to 4.6 s measured on 2 shared cores, more under
            # load): a connect begun before such a stall failed with 2003
            # "Can't connect ... ()" (its TimeoutError) while the server was
            # up, and every task waiting for a connection with it. asyncpg's
            # default is 60 s.
            options = {"connect_timeout": 60, **options}
        connections.settings["vinyl_default"]["OPTIONS"] = options


def pool_options(pool_size: int = 5, max_overflow: int = 5, **pool: Any) -> dict:
    return {"pool": {"pool_size": pool_size, "max_overflow": max_overflow, **pool}}


@pytest.fixture
async def fault_target(fault_servers: FaultServers, backend: str, request: pytest.FixtureRequest) -> AsyncIterator[FaultTarget]:
    """``vinyl_default`` on the fault server of ``backend``, pool 5 + 5 unless
    the test's ``fault_pool`` marker says otherwise."""
    marker = request.node.get_closest_marker("fault_pool")
    pool = dict(marker.kwargs) if marker is not None else {}
    options = pool_options(**pool)
    server = getattr(fault_servers, backend)
    await vinyl.dispose()
    target = FaultTarget(backend, server, Sessions(_url(server, backend)), options["pool"]["pool_size"] + options["pool"]["max_overflow"])
    target.point(**options)
    try:
        yield target
    finally:
        await vinyl.dispose()
        await target.sessions.close()


def _url(server: Any, backend: str) -> Any:
    from sqlalchemy.engine import URL

    driver = "postgresql+asyncpg" if backend == "postgresql" else "mysql+asyncmy"
    s = server.settings(DATABASE)
    return URL.create(driver, username=s["USER"], host=s["HOST"], port=int(s["PORT"]), database=DATABASE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault_pool(**pool): the pool options of fault_target")
