"""Fault injection on the suite's own servers (see conftest.py), both databases.

Each scenario runs the money-transfer load (load.py) under one fault and
then checks: the invariant holds, every acknowledged write is present once,
no connection is checked out and no server transaction is open, the server
never had more sessions than pool_size + max_overflow and has none after
dispose(), every error is Django's, and no error reached a task that was
neither cancelled nor on a killed connection. Bounded: a few seconds each
here; ``make test-faults-long`` (VINYL_FAULTS_LONG=1) runs the long versions
and prints their figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

import vinyl
from tests.faults.load import CONNECTION_ERRORS, Load, Outcome, PeakSessions, after_load, scaled
from tests.testapp.models import Author
from vinyl.exceptions import PoolExhausted

pytestmark = pytest.mark.backends("postgresql", "mysql", reason="fault injection needs servers; SQLite has none")


def report(name: str, backend: str, figures: dict, outcome: Outcome | None = None) -> None:
    line = f"\n[faults] {name} on {backend}: " + ", ".join(f"{k} {v}" for k, v in figures.items())
    if outcome is not None:
        line += f"; {outcome.summary()}"
    print(line)


async def _killer(target, until: float, every: float, rng: random.Random) -> int:
    kills = 0
    while time.monotonic() < until:
        await asyncio.sleep(every)
        ids = [i for i in await target.sessions.ids() if i not in target.sessions.foreign]
        if ids:
            await target.sessions.terminate(rng.choice(ids))
            kills += 1
    return kills


async def test_random_backend_kills_under_load(fault_target, backend):
    await target_start(fault_target)
    load = Load(allowed=CONNECTION_ERRORS, seed=1)
    await load.setup()

    tasks_n = int(scaled(20, 50))
    seconds = scaled(6, 60)
    until = time.monotonic() + seconds
    with PeakSessions(fault_target.sessions) as peak:
        killer = asyncio.create_task(_killer(fault_target, until, 0.5, random.Random(2)))
        await asyncio.wait_for(asyncio.gather(*(load.worker(until) for _ in range(tasks_n))), seconds + 120)
        kills = await killer
    figures = await after_load(fault_target.sessions, load.outcome, limit=fault_target.limit, peak=peak)
    assert kills > 0 and load.outcome.ok > 0
    # Each kill can fail at most the one operation on that connection.
    failed = sum(load.outcome.failures.values())
    assert failed <= kills, f"{failed} failed operations for {kills} kills: {load.outcome.summary()}"
    report("kills", backend, {"seconds": seconds, "tasks": tasks_n, "kills": kills, **figures}, load.outcome)


async def target_start(target) -> None:
    """Take the sessions that are not vinyl's as the baseline."""
    await vinyl.dispose()
    await target.sessions.start()


async def test_server_restart_mid_load(fault_target, backend):
    await target_start(fault_target)
    load = Load(allowed=CONNECTION_ERRORS, seed=3)
    await load.setup()
    server = fault_target.server
    seconds = scaled(6, 20)
    until = time.monotonic() + seconds
    loop = asyncio.get_running_loop()
    with PeakSessions(fault_target.sessions) as peak:
        workers = asyncio.gather(*(load.worker(until) for _ in range(10)))
        await asyncio.sleep(seconds / 3)
        down_at = time.monotonic()
        await loop.run_in_executor(None, server.stop, "fast")
        await asyncio.sleep(1)
        await loop.run_in_executor(None, server.start)
        up_at = time.monotonic()
        await asyncio.wait_for(workers, seconds + 120)
    errors = [t for t, _ in load.outcome.error_times]
    # Once the server is back, the first statement on each stale pooled
    # connection fails at most once; after that nothing may fail.
    stale = [t for t in errors if t > up_at + 0.5]
    figures = await after_load(fault_target.sessions, load.outcome, limit=fault_target.limit, peak=peak)
    window = (max(errors) - min(errors)) if errors else 0.0
    assert stale == [], f"{len(stale)} errors after the server was back"
    assert load.outcome.ok > 0
    report(
        "restart", backend,
        {"downtime_s": round(up_at - down_at, 2), "error_window_s": round(window, 2), "stale_errors_after": len(stale), **figures},
        load.outcome,
    )


async def test_server_down_at_start_then_up(fault_target, backend):
    # Server down: each operation fails with the connect error at once (the
    # pool_timeout is an hour: waiting for it would hang the test).
    fault_target.point(pool={"pool_size": 2, "max_overflow": 0, "pool_timeout": 3600})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, fault_target.server.stop, "fast")
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(Author.vinyl.count() for _ in range(10)), return_exceptions=True), 60
        )
    finally:
        await loop.run_in_executor(None, fault_target.server.start)
    from django.db import OperationalError

    assert all(isinstance(r, OperationalError) for r in results), results
    assert "could not connect" in str(results[0])
    assert vinyl.get_engine().sync_engine.pool.checkedout() == 0
    # Up again: the same engine works, no restart of the application.
    assert await asyncio.wait_for(asyncio.gather(*(Author.vinyl.count() for _ in range(10))), 60) == [await Author.vinyl.count()] * 10
    await vinyl.dispose()
    assert await fault_target.sessions.settled_count(0) == 0


@pytest.mark.fault_pool(pool_size=2, max_overflow=1, pool_timeout=0.3)
async def test_pool_exhaustion(fault_target, backend):
    await target_start(fault_target)
    load = Load(allowed=(PoolExhausted,), seed=5)
    await load.setup()
    release = asyncio.Event()

    async def hold() -> None:
        async with vinyl.atomic():
            await Author.vinyl.count()
            await release.wait()

    with PeakSessions(fault_target.sessions) as peak:
        holders = [asyncio.create_task(hold()) for _ in range(3)]
        await asyncio.sleep(0.2)
        await asyncio.gather(*(load.run_one() for _ in range(10)))
        exhausted = load.outcome.failures["PoolExhausted"]
        release.set()
        await asyncio.gather(*holders)
        ok_before = load.outcome.ok
        # The same pool serves again (one at a time: with pool_timeout=0.3 s,
        # 20 at once on 3 connections would time out on a loaded machine).
        for _ in range(20):
            await load.run_one(load.transfer)
    assert exhausted == 10 and load.outcome.ok == ok_before + 20
    figures = await after_load(fault_target.sessions, load.outcome, limit=fault_target.limit, peak=peak)
    report("pool exhaustion", backend, {"exhausted": exhausted, **figures}, load.outcome)


async def _storm_round(load: Load, tasks_n: int, rng: random.Random) -> tuple[int, int]:
    """Start ``tasks_n`` operations, cancel a random third of them at random
    moments; return (cancelled, hung)."""
    tasks = [asyncio.create_task(load.run_one(may_be_cancelled=True)) for _ in range(tasks_n)]
    victims = rng.sample(tasks, tasks_n // 3)
    for task in victims:
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.01)
        task.cancel()
    done, pending = await asyncio.wait(tasks, timeout=scaled(120, 900))
    for task in pending:
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            load.outcome.unexpected.append(repr(task.exception()))
    return sum(t.cancelled() for t in done), len(pending)


@pytest.mark.fault_pool(pool_size=5, max_overflow=5, pool_timeout=900)
async def test_cancellation_storm(fault_target, backend):
    await target_start(fault_target)
    load = Load(seed=7)
    await load.setup()
    rng = random.Random(8)
    tasks_n = int(scaled(300, 10_000))
    rounds = int(os.environ.get("VINYL_FAULTS_STORM_ROUNDS") or scaled(3, 20))
    hung = 0
    orphaned = 0
    cancelled = 0
    with PeakSessions(fault_target.sessions) as peak:
        for _ in range(rounds):
            c, h = await _storm_round(load, tasks_n, rng)
            cancelled += c
            hung += h
            await asyncio.sleep(0)
            orphaned += await fault_target.sessions.settled_open_transactions()
    assert hung == 0, f"{hung} tasks hung"
    assert orphaned == 0, f"{orphaned} transactions left open after rounds"
    figures = await after_load(fault_target.sessions, load.outcome, limit=fault_target.limit, peak=peak)
    report(
        "cancellation storm", backend,
        {"rounds": rounds, "tasks_per_round": tasks_n, "cancelled": cancelled, "hung": hung, "orphaned_transactions": orphaned, **figures},
        load.outcome,
    )


@pytest.mark.backends("postgresql", reason="pgbouncer pools PostgreSQL connections")
async def test_load_through_pgbouncer_in_transaction_mode(fault_target, fault_servers, backend):
    # prepared_statements=False: no named statement may outlive its
    # transaction (pgbouncer hands each transaction another server session).
    fault_target.point(via=fault_servers.pgbouncer, prepared_statements=False, pool={"pool_size": 5, "max_overflow": 5})
    await fault_target.sessions.start()
    load = Load(seed=11)
    await load.setup()
    seconds = scaled(5, 60)
    until = time.monotonic() + seconds
    with PeakSessions(fault_target.sessions) as peak:
        await asyncio.wait_for(asyncio.gather(*(load.worker(until) for _ in range(20))), seconds + 120)
    streams = load.outcome.ok  # every operation, streams included, must succeed
    assert sum(load.outcome.failures.values()) == 0, load.outcome.summary() + f" {load.outcome.unexpected[:3]}"
    bouncer = fault_servers.pgbouncer

    async def clients_left() -> int:
        for _ in range(50):
            left = await asyncio.get_running_loop().run_in_executor(None, bouncer.clients, "vinyl_faults")
            if left == 0:
                break
            await asyncio.sleep(0.1)
        return left

    # The server's sessions are pgbouncer's (its pool): vinyl's are its clients.
    figures = await after_load(
        fault_target.sessions, load.outcome, limit=fault_target.limit, peak=peak, remaining=clients_left
    )
    report("pgbouncer", backend, {"seconds": seconds, "ok": streams, **figures}, load.outcome)


@pytest.mark.backends("postgresql", reason="pgbouncer pools PostgreSQL connections")
async def test_pgbouncer_with_prepared_statements_says_what_to_set(fault_target, fault_servers, backend):
    fault_target.point(via=fault_servers.pgbouncer, pool={"pool_size": 5, "max_overflow": 0})
    load = Load(seed=12)
    try:
        await load.setup()
    except Exception:  # the setup itself may already meet the error  # noqa: BLE001
        pass
    for _ in range(5):
        await asyncio.gather(*(load.run_one(load.read_sum) for _ in range(10)))
    messages = [m for m in load.outcome.unexpected if "prepared statement" in m]
    assert messages, load.outcome.summary()
    assert all("prepared_statements'] = False" in m for m in messages), messages[:3]
    assert load.outcome.unmapped == []


BAD_VALUES = {
    "nul in text": {"text": "a\x00b"},
    "lone surrogate": {"char": "a\ud800b"},
    "huge int": {"big": 2**70},
    "nan float": {"floating": float("nan")},
    "1 MB string": {"text": "x" * 1_000_000},
}


async def test_bad_input_raises_what_django_raises(fault_target, backend):
    from tests.faults.oracle import django_outcome, vinyl_outcome
    from tests.testapp.models import AllTypes

    await target_start(fault_target)
    sync_alias = f"faults_sync_{backend}"
    results = {}
    for name, values in BAD_VALUES.items():
        expected = await django_outcome(lambda: AllTypes.objects.using(sync_alias).create(**values) and "created")
        got = await vinyl_outcome(AllTypes.vinyl.create(**values))
        got = ("ok", "created") if got[0] == "ok" else got
        assert got == expected, f"{name}: vinyl {got}, Django {expected}"
        field, value = next(iter(values.items()))
        expected = await django_outcome(lambda: AllTypes.objects.using(sync_alias).filter(**{field: value}).count())
        got = await vinyl_outcome(AllTypes.vinyl.filter(**{field: value}).count())
        assert got == expected, f"{name} (filter): vinyl {got}, Django {expected}"
        results[name] = expected[1] if expected[0] == "error" else "ok"
    many = list(range(100_000))
    expected = await django_outcome(lambda: AllTypes.objects.using(sync_alias).filter(pk__in=many).count())
    got = await vinyl_outcome(AllTypes.vinyl.filter(pk__in=many).count())
    # PostgreSQL: more than asyncpg binds, sent as one array (manyparams.py).
    assert got == expected, f"100,000-value __in: vinyl {got}, Django {expected}"
    results["100,000-value __in"] = got[1] if got[0] == "error" else "ok"
    await asyncio.sleep(0)
    assert vinyl.get_engine().sync_engine.pool.checkedout() == 0
    assert await fault_target.sessions.settled_open_transactions() == 0
    assert await AllTypes.vinyl.count() >= 0  # the pool still works
    await vinyl.dispose()
    assert await fault_target.sessions.settled_count(0) == 0
    report("bad input", backend, results)
