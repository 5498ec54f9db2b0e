"""Reads routed to a real streaming replica (PostgreSQL) and binlog replica (MariaDB).

The suite starts both pairs itself (see conftest.py / servers.py).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import DatabaseError, OperationalError
from django.test import override_settings

import vinyl
from tests.scale.conftest import ReplicaSet
from tests.scaleapp.models import Account, Branch
from vinyl.exceptions import DatabaseUnavailable


class ReplicaRoutes:
    """Reads to the replica, writes to the primary; optional fallback to the primary."""

    def __init__(self, aliases: ReplicaSet, fallback: bool = False) -> None:
        self.aliases = aliases
        self.fallback = fallback

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.aliases.replica if hints.get("vinyl") else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self.aliases.primary if hints.get("vinyl") else None

    def db_for_read_fallback(self, model: Any, unavailable: str, **hints: Any) -> str | None:
        return self.aliases.primary if self.fallback else None


class ReplicaRouter(ReplicaRoutes):
    """The same, and instances of both aliases may be related (same rows)."""

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        pair = {self.aliases.primary, self.aliases.replica}
        return True if {obj1._state.db, obj2._state.db} <= pair else None


async def test_the_replica_is_a_read_only_copy(replica_set: ReplicaSet) -> None:
    await Branch.vinyl.using(replica_set.primary).create(name="north")
    replica_set.wait_for_replica()
    assert [b.name for b in await Branch.vinyl.using(replica_set.replica).all()] == ["north"]
    with pytest.raises(DatabaseError) as raised:
        await Branch.vinyl.using(replica_set.replica).create(name="south")
    # Django's class for the server's refusal (read-only transaction / --read-only).
    assert "read" in str(raised.value).lower()
    assert type(raised.value).__module__ == "django.db.utils"


async def test_reads_go_to_the_replica_and_writes_to_the_primary(replica_set: ReplicaSet) -> None:
    with override_settings(DATABASE_ROUTERS=[ReplicaRouter(replica_set)]):
        branch = await Branch.vinyl.create(name="north")
        assert branch._state.db == replica_set.primary
        lag = replica_set.wait_for_replica()
        print(f"replica lag seen ({replica_set.vendor}): {lag * 1000:.1f} ms")
        loaded = await Branch.vinyl.get(pk=branch.pk)
        assert loaded._state.db == replica_set.replica
        assert await Branch.vinyl.count() == 1
        # A routed save of a replica-loaded instance writes on the primary.
        loaded.name = "north-2"
        await loaded.save()
        replica_set.wait_for_replica()
        assert (await Branch.vinyl.get(pk=branch.pk)).name == "north-2"
        # using() overrides the router.
        assert (await Branch.vinyl.using(replica_set.primary).get(pk=branch.pk))._state.db == replica_set.primary


async def test_a_block_reads_its_own_writes_on_the_primary(replica_set: ReplicaSet) -> None:
    with override_settings(DATABASE_ROUTERS=[ReplicaRouter(replica_set)]):
        async with vinyl.atomic(using=replica_set.primary):
            branch = await Branch.vinyl.create(name="in-block")
            # Not committed: the replica cannot have it; the block's alias does.
            found = await Branch.vinyl.get(pk=branch.pk)
            assert found._state.db == replica_set.primary
            assert await Branch.vinyl.filter(name="in-block").exists()
            account = await Account.vinyl.create(branch=branch, owner="ann", balance=5)
            assert (await account.branch).pk == branch.pk
            assert [a.owner for a in await branch.accounts.all()] == ["ann"]
        # Outside the block, reads go to the replica again.
        replica_set.wait_for_replica()
        again = await Branch.vinyl.get(pk=branch.pk)
        assert again._state.db == replica_set.replica


async def test_related_loads_follow_the_instance_alias(replica_set: ReplicaSet) -> None:
    with override_settings(DATABASE_ROUTERS=[ReplicaRouter(replica_set)]):
        branch = await Branch.vinyl.create(name="north")
        await Account.vinyl.create(branch=branch, owner="ann", balance=1)
        # Created on the primary: its related rows are read there, at once
        # (no waiting for the replica).
        assert [a.owner for a in await branch.accounts.all()] == ["ann"]
        replica_set.wait_for_replica()
        account = await Account.vinyl.get(owner="ann")
        assert account._state.db == replica_set.replica
        owner_branch = await account.branch
        assert owner_branch._state.db == replica_set.replica
        # allow_relation: an instance read from the replica may be related to
        # one saved on the primary, as the router allows.
        other = await Branch.vinyl.create(name="south")
        account.branch = other
        await account.save()
        assert (await Account.vinyl.using(replica_set.primary).get(pk=account.pk)).branch_id == other.pk


async def test_without_allow_relation_django_refuses_cross_alias_relations(replica_set: ReplicaSet) -> None:
    with override_settings(DATABASE_ROUTERS=[ReplicaRoutes(replica_set)]):
        branch = await Branch.vinyl.create(name="north")
        await Account.vinyl.create(branch=branch, owner="ann")
        replica_set.wait_for_replica()
        account = await Account.vinyl.get(owner="ann")
        with pytest.raises(ValueError, match="database"):
            account.branch = branch


async def test_a_replica_that_is_down_is_an_operational_error_naming_it(replica_set: ReplicaSet) -> None:
    await Branch.vinyl.using(replica_set.primary).create(name="north")
    replica_set.wait_for_replica()
    replica_set.servers.replica.stop()
    try:
        await vinyl.dispose()
        with override_settings(DATABASE_ROUTERS=[ReplicaRouter(replica_set)]):
            with pytest.raises(OperationalError) as raised:
                await Branch.vinyl.count()
            assert isinstance(raised.value, DatabaseUnavailable)
            assert raised.value.alias == replica_set.replica
            assert repr(replica_set.replica) in str(raised.value)
            # Writes are unaffected.
            await Branch.vinyl.create(name="south")
    finally:
        _restart_replica(replica_set)


async def test_the_router_may_send_reads_to_the_primary_while_the_replica_is_down(
    replica_set: ReplicaSet, caplog: pytest.LogCaptureFixture
) -> None:
    await Branch.vinyl.using(replica_set.primary).create(name="north")
    replica_set.wait_for_replica()
    replica_set.servers.replica.stop()
    try:
        await vinyl.dispose()
        with override_settings(DATABASE_ROUTERS=[ReplicaRouter(replica_set, fallback=True)]):
            with caplog.at_level(logging.WARNING, logger="vinyl.routing"):
                assert await Branch.vinyl.count() == 1
                found = await Branch.vinyl.get(name="north")
                assert [b.name for b in await Branch.vinyl.all()] == ["north"]
            assert found._state.db == replica_set.primary
            assert any(replica_set.replica in r.getMessage() for r in caplog.records)
            # using() pins the alias: no fallback.
            with pytest.raises(DatabaseUnavailable):
                await Branch.vinyl.using(replica_set.replica).count()
    finally:
        _restart_replica(replica_set)


def _restart_replica(replica_set: ReplicaSet) -> None:
    replica_set.servers.replica.start() if replica_set.vendor == "postgresql" else _restart_mariadb(replica_set)
    replica_set.wait_for_replica()


def _restart_mariadb(replica_set: ReplicaSet) -> None:
    replica_set.servers.replica.start()
    replica_set.servers.replica.sql("START SLAVE")
