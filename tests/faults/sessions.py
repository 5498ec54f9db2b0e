"""Count a database's server sessions from outside vinyl's pools."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

_COUNT = {
    "postgresql": (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ),
    "mysql": (
        "SELECT count(*) FROM information_schema.PROCESSLIST "
        "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
    ),
}
_IDS = {
    "postgresql": (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ),
    "mysql": (
        "SELECT ID FROM information_schema.PROCESSLIST "
        "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
    ),
}
_IDLE_IN_TRANSACTION = {
    "postgresql": (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
    ),
    "mysql": (
        "SELECT count(*) FROM information_schema.INNODB_TRX t "
        "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID()"
    ),
}


class Sessions:
    """A connection outside vinyl that counts the sessions of one database."""

    def __init__(self, url: Any) -> None:
        self.backend = "postgresql" if url.get_backend_name() == "postgresql" else "mysql"
        self.engine = create_async_engine(url, poolclass=NullPool)
        # Sessions that are not vinyl's (the sync aliases' of the test run):
        # counts are relative to these.
        self.baseline = 0
        self.foreign: set[int] = set()
        # Sessions this object killed: the server may list one for a moment
        # while it exits, beside the connection that replaces it.
        self.killed: set[int] = set()

    async def start(self) -> "Sessions":
        """Take the sessions open now as the baseline (none is vinyl's)."""
        self.baseline = 0
        self.foreign = set(await self.ids())
        self.baseline = len(self.foreign)
        return self

    async def ids(self) -> list[int]:
        """The server ids of the database's other client sessions."""
        sql = _IDS[self.backend]
        async with self.engine.connect() as conn:
            return [int(i) for i in (await conn.exec_driver_sql(sql)).scalars().all()]

    async def _scalar(self, sql: str) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.exec_driver_sql(sql)).scalar_one())

    async def count(self) -> int:
        """Client sessions on the database right now, left out this one,
        those open at start() and those killed by this object."""
        return len([i for i in await self.ids() if i not in self.foreign and i not in self.killed])

    async def open_transactions(self) -> int:
        """Sessions with a transaction open right now."""
        return await self._scalar(_IDLE_IN_TRANSACTION[self.backend])

    async def settled_count(self, target: int = 0, rounds: int = 50) -> int:
        """count(), polled (bounded) until it reaches ``target``: the server
        lists a session that was closed until its process has gone."""
        for _ in range(rounds):
            n = await self.count()
            if n <= target:
                return n
            await asyncio.sleep(0.1)
        return n

    async def settled_open_transactions(self, rounds: int = 40) -> int:
        for _ in range(rounds):
            n = await self.open_transactions()
            if n == 0:
                return 0
            await asyncio.sleep(0.15)
        return n

    async def terminate_all(self) -> int:
        """Kill every session opened since start(); return how many."""
        victims = [i for i in await self.ids() if i not in self.foreign]
        for server_id in victims:
            await self.terminate(server_id)
        return len(victims)

    async def terminate(self, server_id: int) -> None:
        """Kill one session (gone already: nothing happens)."""
        self.killed.add(server_id)
        async with self.engine.connect() as conn:
            if self.backend == "postgresql":
                await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(server_id)})")
                return
            try:
                await conn.exec_driver_sql(f"KILL {int(server_id)}")
            except Exception as exc:  # 1094: unknown thread id, it ended meanwhile
                if "1094" not in str(exc):
                    raise

    async def close(self) -> None:
        await self.engine.dispose()
