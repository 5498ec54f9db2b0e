"""@vinyl.atomic(retries=N): transactions the database rolled back for a conflict run again."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import IntegrityError, OperationalError, connections
from django.db.models import F

import vinyl
from tests.txhelpers import retry_reasons
from tests.scaleapp.models import Account, Branch
from vinyl import retry
from vinyl.exceptions import CertificationConflict, TransactionConflict

SERIALIZABLE = "vinyl_scale_serializable"


@pytest.fixture
def serializable(vinyl_db: str) -> Iterator[str]:
    """A vinyl alias of the backend under test whose transactions are SERIALIZABLE."""
    template = connections.settings[settings.VINYL_ALIAS[vinyl_db]]
    options = dict(template.get("OPTIONS") or {})
    if vinyl_db == "postgresql":
        # (vinyl's own server_settings: the session time zone, as Django's.)
        options["server_settings"] = {"TimeZone": "UTC", "default_transaction_isolation": "serializable"}
    elif vinyl_db == "mysql":
        options["isolation_level"] = "serializable"
    connections.settings[SERIALIZABLE] = {**template, "OPTIONS": options}
    yield SERIALIZABLE
    connections.settings.pop(SERIALIZABLE, None)


def retries_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.vinyl_retry_reason for r in caplog.records if r.name == "vinyl.retry"]


async def test_a_function_without_conflicts_runs_once(vinyl_db: str) -> None:
    calls = []

    @vinyl.atomic(retries=3)
    async def create(name: str) -> Branch:
        calls.append(name)
        return await Branch.vinyl.create(name=name)

    branch = await create("north")
    assert calls == ["north"]
    assert await Branch.vinyl.get(pk=branch.pk) == branch


async def test_other_errors_are_not_retried(vinyl_db: str) -> None:
    branch = await Branch.vinyl.create(name="north")
    calls = []

    @vinyl.atomic(retries=3)
    async def duplicate() -> None:
        calls.append(1)
        await Branch.vinyl.create(pk=branch.pk, name="again")

    with pytest.raises(IntegrityError):
        await duplicate()
    assert calls == [1]


def test_conflict_reasons() -> None:
    assert retry.conflict_reason(OperationalError(1213, "Deadlock found")) is not None
    assert retry.conflict_reason(OperationalError(1205, "Lock wait timeout")) is not None
    # A lost connection: COMMIT may have been applied, never retried.
    assert retry.conflict_reason(OperationalError(2013, "Lost connection to server during query")) is None
    assert retry.conflict_reason(OperationalError("server closed the connection unexpectedly")) is None


async def test_retries_need_a_function(vinyl_db: str) -> None:
    with pytest.raises(TypeError, match="decorate it"):
        async with vinyl.atomic(retries=2):
            pass
    with pytest.raises(TypeError, match="retries"):
        vinyl.atomic(retries=-1)


@pytest.mark.backends("postgresql", reason="SQLSTATE 40001 under SERIALIZABLE is PostgreSQL's")
async def test_a_serialization_failure_runs_the_function_again(
    serializable: str, caplog: pytest.LogCaptureFixture
) -> None:
    account = await Account.vinyl.using(serializable).create(owner="ann", balance=0)
    read = asyncio.Event()
    other_committed = asyncio.Event()
    attempts = []
    committed = []

    @vinyl.atomic(using=serializable, retries=2)
    async def add_ten() -> None:
        attempts.append(1)
        found = await Account.vinyl.using(serializable).get(pk=account.pk)
        read.set()
        await other_committed.wait()
        # The other transaction changed the row since this one read it.
        await Account.vinyl.using(serializable).filter(pk=account.pk).update(balance=found.balance + 10)
        vinyl.on_commit(lambda: committed.append("add_ten"), using=serializable)

    async def add_one() -> None:
        await read.wait()
        await Account.vinyl.using(serializable).filter(pk=account.pk).update(balance=F("balance") + 1)
        other_committed.set()

    with caplog.at_level(logging.INFO, logger="vinyl.retry"):
        await asyncio.gather(add_ten(), add_one())
    assert len(attempts) == 2
    assert committed == ["add_ten"]  # on_commit of the rolled-back attempt was dropped
    assert (await Account.vinyl.using(serializable).get(pk=account.pk)).balance == 11
    assert [reason.split()[1] for reason in retries_logged(caplog)] == ["40001"]


@pytest.mark.backends("postgresql", "mysql", reason="deadlocks between row locks need a server")
async def test_a_deadlock_victim_runs_again(vinyl_db: str, caplog: pytest.LogCaptureFixture) -> None:
    first = await Account.vinyl.create(owner="a", balance=0)
    second = await Account.vinyl.create(owner="b", balance=0)
    locked = {first.pk: asyncio.Event(), second.pk: asyncio.Event()}
    attempts: list[int] = []

    @vinyl.atomic(retries=4)
    async def touch(mine: int, other: int) -> None:
        attempts.append(mine)
        await Account.vinyl.filter(pk=mine).update(balance=F("balance") + 1)
        locked[mine].set()
        await locked[other].wait()
        await Account.vinyl.filter(pk=other).update(balance=F("balance") + 1)

    with caplog.at_level(logging.INFO, logger="vinyl.retry"):
        await asyncio.gather(touch(first.pk, second.pk), touch(second.pk, first.pk))
    # A victim, run again (the retry may deadlock once more with the
    # winner if it takes its first row lock before the winner wakes up).
    retried = retries_logged(caplog)
    assert 1 <= len(retried) <= 4
    assert len(attempts) == 2 + len(retried)
    assert sorted(await Account.vinyl.order_by("pk").values_list("balance", flat=True)) == [2, 2]


@pytest.mark.backends("postgresql", reason="SQLSTATE 40001 under SERIALIZABLE is PostgreSQL's")
async def test_retries_are_bounded(serializable: str) -> None:
    account = await Account.vinyl.using(serializable).create(owner="ann", balance=0)
    attempts = []

    @vinyl.atomic(using=serializable, retries=2)
    async def always_loses() -> None:
        attempts.append(1)
        await Account.vinyl.using(serializable).get(pk=account.pk)
        # A concurrent transaction commits a change to the row read above.
        await _bump_elsewhere(account.pk)
        await Account.vinyl.using(serializable).filter(pk=account.pk).update(balance=F("balance") + 10)

    with pytest.raises(TransactionConflict) as raised:
        await always_loses()
    assert len(attempts) == 3
    assert isinstance(raised.value, OperationalError)
    assert raised.value.reason.startswith("SQLSTATE 40001")


async def _bump_elsewhere(pk: int) -> None:
    # A fresh context: the task is outside the block (tasks started inside a
    # block share its transaction).
    await asyncio.create_task(_bump(pk), context=contextvars.Context())


async def _bump(pk: int) -> None:
    await Account.vinyl.using(SERIALIZABLE).filter(pk=pk).update(balance=F("balance") + 1)


async def test_a_nested_block_never_retries(vinyl_db: str) -> None:
    calls = []

    @vinyl.atomic(retries=3)
    async def inner() -> None:
        calls.append(1)
        raise OperationalError(1213, "Deadlock found when trying to get lock")

    with pytest.raises(OperationalError):
        async with vinyl.atomic():
            await inner()
    assert calls == [1]


@pytest.mark.backends("postgresql", reason="concurrent SERIALIZABLE transfers: PostgreSQL's 40001")
async def test_concurrent_transfers_under_serializable_keep_the_total(serializable: str) -> None:
    """Measured figure: retries per 1,000 transfers (printed; see benchmarks/README.md)."""
    accounts = [await Account.vinyl.using(serializable).create(owner=str(i), balance=100) for i in range(5)]
    pks = [a.pk for a in accounts]
    rng = random.Random(16)

    @vinyl.atomic(using=serializable, retries=20)
    async def transfer(source: int, target: int, amount: int) -> None:
        found = await Account.vinyl.using(serializable).get(pk=source)
        if found.balance < amount:
            return
        await Account.vinyl.using(serializable).filter(pk=source).update(balance=F("balance") - amount)
        await Account.vinyl.using(serializable).filter(pk=target).update(balance=F("balance") + amount)

    async def worker(count: int) -> None:
        for _ in range(count):
            source, target = rng.sample(pks, 2)
            await transfer(source, target, rng.randint(1, 30))

    transfers = 8 * 25
    with retry_reasons() as reasons:
        await asyncio.gather(*(worker(25) for _ in range(8)))
    balances = await Account.vinyl.using(serializable).values_list("balance", flat=True)
    assert sum(balances) == 500
    assert min(balances) >= 0
    print(f"retries per 1,000 transfers (PostgreSQL SERIALIZABLE, 8 tasks, 5 accounts): "
          f"{len(reasons) * 1000 / transfers:.0f}")


@pytest.mark.backends("postgresql", "mysql", reason="deadlocks between row locks need a server")
async def test_a_deadlock_is_a_transaction_conflict(vinyl_db: str) -> None:
    first = await Account.vinyl.create(owner="a", balance=0)
    second = await Account.vinyl.create(owner="b", balance=0)
    locked = {first.pk: asyncio.Event(), second.pk: asyncio.Event()}

    async def touch(mine: int, other: int) -> None:
        async with vinyl.atomic():
            await Account.vinyl.filter(pk=mine).update(balance=F("balance") + 1)
            locked[mine].set()
            await locked[other].wait()
            await Account.vinyl.filter(pk=other).update(balance=F("balance") + 1)

    results = await asyncio.gather(touch(first.pk, second.pk), touch(second.pk, first.pk), return_exceptions=True)
    errors = [r for r in results if r is not None]
    assert len(errors) == 1
    assert type(errors[0]) is TransactionConflict  # a plain server: no certification
    assert isinstance(errors[0], OperationalError)
    assert "40P01" in errors[0].reason or "1213" in errors[0].reason
