"""vinyl on a three-node MariaDB Galera cluster: any node, and certification conflicts."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError
from django.db.models import F

import vinyl
from tests.cluster.conftest import Cluster
from tests.scaleapp.models import Account, Branch


async def test_every_node_sees_the_writes_of_the_others(cluster: Cluster) -> None:
    first, second, third = cluster.aliases
    branch = await Branch.vinyl.using(first).create(name="north")
    account = await Account.vinyl.using(second).create(branch_id=branch.pk, owner="ann", balance=10)
    await Account.vinyl.using(third).filter(pk=account.pk).update(balance=F("balance") + 5)
    for alias in cluster.aliases:
        found = await Account.vinyl.using(alias).select_related("branch").get(pk=account.pk)
        assert (found.balance, found["branch"].name) == (15, "north")


async def test_transactions_and_savepoints_on_any_node(cluster: Cluster) -> None:
    for alias in cluster.aliases:
        async with vinyl.atomic(using=alias):
            branch = await Branch.vinyl.using(alias).create(name=alias)
            with pytest.raises(ZeroDivisionError):
                async with vinyl.atomic(using=alias):
                    await Account.vinyl.using(alias).create(branch_id=branch.pk, owner="gone")
                    1 / 0
            await Account.vinyl.using(alias).create(branch_id=branch.pk, owner="kept")
    for alias in cluster.aliases:
        assert await Branch.vinyl.using(alias).count() == 3
        assert sorted(await Account.vinyl.using(alias).values_list("owner", flat=True)) == ["kept"] * 3


async def test_a_certification_conflict_is_an_operational_error(cluster: Cluster) -> None:
    first, second, third = cluster.aliases
    account = await Account.vinyl.using(first).create(owner="ann", balance=0)
    updated = asyncio.Event()
    winner_committed = asyncio.Event()

    async def loser() -> None:
        async with vinyl.atomic(using=second):
            await Account.vinyl.using(second).filter(pk=account.pk).update(balance=F("balance") + 1)
            updated.set()
            await winner_committed.wait()

    async def winner() -> None:
        await updated.wait()
        async with vinyl.atomic(using=third):
            await Account.vinyl.using(third).filter(pk=account.pk).update(balance=F("balance") + 10)
        winner_committed.set()

    results = await asyncio.gather(loser(), winner(), return_exceptions=True)
    assert results[1] is None
    assert isinstance(results[0], OperationalError), results[0]
    assert (await Account.vinyl.using(first).get(pk=account.pk)).balance == 10
