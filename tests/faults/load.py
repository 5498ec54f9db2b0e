"""A money-transfer load for the fault suite, and what must hold after it.

Accounts are ``Author`` rows (``age`` is the balance); every transfer moves
an amount between two accounts and writes its ledger entry (a ``Tag`` whose
name encodes source, destination and amount) in the same transaction. So:

- the sum of the balances never changes, and every read sees that sum;
- the balances equal the initial ones plus the ledger entries present;
- every transfer (and single write) that was acknowledged is present once.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import Error as DjangoDatabaseError
from django.db import InterfaceError, OperationalError
from django.db.models import F, Sum
from django.db.transaction import TransactionManagementError

import vinyl
from tests.faults.sessions import Sessions
from tests.txhelpers import closed_and_returned
from vinyl.engine.engines import open_connections
from vinyl.exceptions import PoolExhausted
from tests.testapp.models import Author, Tag

ACCOUNTS = 20
INITIAL = 1000
TOTAL = ACCOUNTS * INITIAL

#: Long versions (make test-faults-long): VINYL_FAULTS_LONG=1.
LONG = os.environ.get("VINYL_FAULTS_LONG") == "1"


def scaled(short: float, long: float) -> float:
    return long if LONG else short


@dataclass
class Outcome:
    """What a load saw: operations, errors by class, acknowledged writes."""

    ops: int = 0
    ok: int = 0
    cancelled: int = 0
    failures: Counter = field(default_factory=Counter)
    # Errors that are not Django's (driver, SQLAlchemy, AttributeError...).
    unmapped: list[str] = field(default_factory=list)
    # Errors where none was allowed (see Load.allowed).
    unexpected: list[str] = field(default_factory=list)
    # Reads that saw another sum than TOTAL.
    inconsistent: list[str] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    # (monotonic time, class name) of each error.
    error_times: list[tuple[float, str]] = field(default_factory=list)

    def summary(self) -> str:
        failures = ", ".join(f"{name} {n}" for name, n in self.failures.most_common()) or "none"
        return (
            f"ops {self.ops}, ok {self.ok}, cancelled {self.cancelled}, failures: {failures}; "
            f"unmapped {len(self.unmapped)}, unexpected {len(self.unexpected)}, "
            f"inconsistent reads {len(self.inconsistent)}, acknowledged writes {len(self.acked)}"
        )


class Load:
    """Random operations on the accounts, each recorded in an Outcome.

    ``allowed`` are the error classes a fault may cause (a killed session is
    an OperationalError); any other error is unexpected, and so is
    ``PoolExhausted`` unless named (an OperationalError too, but no fault of
    a connection makes another task wait ``pool_timeout``).
    """

    def __init__(self, outcome: Outcome | None = None, allowed: tuple[type, ...] = (), seed: int | None = None) -> None:
        self.outcome = outcome or Outcome()
        self.allowed = allowed
        self.random = random.Random(seed)
        self.ids: list[int] = []

    async def setup(self) -> None:
        await vinyl.execute("DELETE FROM testapp_tag")
        await vinyl.execute("DELETE FROM testapp_author")
        await Author.vinyl.bulk_create([Author(name=f"acct{i}", age=INITIAL) for i in range(ACCOUNTS)])
        self.ids = [a.pk for a in await Author.vinyl.order_by("pk")]

    # -- operations ------------------------------------------------------

    def _pair(self) -> tuple[int, int, int]:
        src, dst = self.random.sample(self.ids, 2)
        return src, dst, self.random.randint(1, 50)

    @staticmethod
    def _token(kind: str, src: int = 0, dst: int = 0, amount: int = 0) -> str:
        return f"{kind}:{src}:{dst}:{amount}:{uuid.uuid4().hex[:16]}"

    async def _move(self, src: int, dst: int, amount: int) -> str:
        token = self._token("x", src, dst, amount)
        await Author.vinyl.filter(pk=src).update(age=F("age") - amount)
        await Author.vinyl.filter(pk=dst).update(age=F("age") + amount)
        await Tag.vinyl.create(name=token)
        return token

    @staticmethod
    async def _lock(*pks: int) -> None:
        """Lock the rows a transaction will change, in key order: concurrent
        transfers then wait for each other instead of deadlocking (a
        deadlock is an error the application causes, not a fault)."""
        rows = await Author.vinyl.select_for_update().filter(pk__in=sorted(set(pks))).order_by("pk").values_list("pk", flat=True)
        assert len(rows) == len(set(pks))

    async def transfer(self) -> list[str]:
        src, dst, amount = self._pair()
        async with vinyl.atomic():
            await self._lock(src, dst)
            token = await self._move(src, dst, amount)
        return [token]

    async def nested_transfers(self) -> list[str]:
        """An atomic block whose body gathers children with nested blocks."""
        pairs = [self._pair() for _ in range(3)]

        async def child(src: int, dst: int, amount: int) -> str:
            async with vinyl.atomic():
                return await self._move(src, dst, amount)

        async with vinyl.atomic():
            await self._lock(*(pk for src, dst, _ in pairs for pk in (src, dst)))
            tokens = await asyncio.gather(child(*pairs[0]), child(*pairs[1]))
            tokens.append(await self._move(*pairs[2]))
        return list(tokens)

    async def read_sum(self) -> list[str]:
        total = (await Author.vinyl.aggregate(total=Sum("age")))["total"]
        if total != TOTAL:
            self.outcome.inconsistent.append(f"aggregate saw {total}")
        return []

    async def stream_sum(self) -> list[str]:
        total = 0
        async for author in Author.vinyl.order_by("pk").iterator(chunk_size=7):
            total += author.age
        if total != TOTAL:
            self.outcome.inconsistent.append(f"stream saw {total}")
        return []

    async def read_in_block(self) -> list[str]:
        async with vinyl.atomic():
            rows = await Author.vinyl.filter(pk__in=self.ids[:5]).values_list("age", flat=True)
            assert len(rows) == 5
        return []

    async def single_write(self) -> list[str]:
        token = self._token("w")
        await Tag.vinyl.create(name=token)
        return [token]

    OPERATIONS = ("transfer", "transfer", "nested_transfers", "read_sum", "stream_sum", "read_in_block", "single_write")

    def pick(self) -> Any:
        return getattr(self, self.random.choice(self.OPERATIONS))

    async def run_one(self, op: Any = None, *, may_be_cancelled: bool = False) -> None:
        """Run one operation and record its outcome (a cancellation that
        ``may_be_cancelled`` is counted, and re-raised)."""
        op = op or self.pick()
        out = self.outcome
        out.ops += 1
        try:
            tokens = await op()
        except asyncio.CancelledError:
            out.cancelled += 1
            if not may_be_cancelled:
                out.unexpected.append(f"{op.__name__}: cancelled")
            raise
        except Exception as exc:  # every error is recorded and classified
            name = type(exc).__name__
            out.failures[name] += 1
            out.error_times.append((time.monotonic(), name))
            if not isinstance(exc, (DjangoDatabaseError, TransactionManagementError)):
                out.unmapped.append(f"{op.__name__}: {type(exc).__module__}.{name}: {exc}")
            elif not isinstance(exc, self.allowed) or (isinstance(exc, PoolExhausted) and PoolExhausted not in self.allowed):
                # A fault may cost the tasks on the connection it hits, never
                # a timeout of the pool to a task that waited for one.
                out.unexpected.append(f"{op.__name__}: {type(exc).__module__}.{name}: {exc}")
            return
        out.ok += 1
        out.acked.update(tokens)

    async def worker(self, until: float) -> None:
        while time.monotonic() < until:
            await self.run_one()


CONNECTION_ERRORS = (OperationalError, InterfaceError)


class PeakSessions:
    """Sample, every ``interval`` s, the connections vinyl's pool has open
    (``peak``) and the sessions the server lists for the database
    (``server_peak``). The server lists a session vinyl has just closed
    until its process has exited, beside the one that replaces it: its
    figure may exceed the pool's by the connections being torn down."""

    def __init__(self, sessions: Sessions, interval: float = 0.05) -> None:
        self.sessions = sessions
        self.interval = interval
        self.peak = 0
        self.server_peak = 0
        self.task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, open_connections())
            try:
                self.server_peak = max(self.server_peak, await self.sessions.count())
            except Exception:  # the server is down (restart scenario)  # noqa: BLE001
                pass
            await asyncio.sleep(self.interval)

    def __enter__(self) -> PeakSessions:
        self.task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.task.cancel()


async def ledger_check(sessions: Sessions, outcome: Outcome) -> dict[str, int]:
    """Check the invariant and the acknowledged writes from outside vinyl."""
    async with sessions.engine.connect() as conn:
        balances = dict((await conn.exec_driver_sql("SELECT id, age FROM testapp_author")).all())
        names = (await conn.exec_driver_sql("SELECT name FROM testapp_tag")).scalars().all()
    assert sum(balances.values()) == TOTAL, f"the balances sum to {sum(balances.values())}, not {TOTAL}"
    expected = {pk: INITIAL for pk in balances}
    for name in names:
        kind, src, dst, amount, _ = name.split(":")
        if kind == "x":
            expected[int(src)] -= int(amount)
            expected[int(dst)] += int(amount)
    assert balances == expected, "balances differ from the ledger: a transfer was half-committed"
    counts = Counter(names)
    missing = [t for t in outcome.acked if counts[t] != 1]
    assert missing == [], f"{len(missing)} acknowledged writes are not present exactly once: {missing[:5]}"
    return {"ledger": len(names), "acknowledged": len(outcome.acked)}


# Sessions the server may still list while their connection is being torn
# down (see PeakSessions): a leak shows as many more, and stays after dispose().
TEARDOWN_SLACK = 3


async def after_load(
    sessions: Sessions, outcome: Outcome, *, limit: int, peak: PeakSessions, remaining: Any = None
) -> dict[str, int]:
    """Everything that must hold once a load is over (see the module docstring).

    Returns the figures: ledger size, sessions at peak and after dispose().
    """
    # (The spares, idle ones, checked: vinyl keeps them for its next
    # statements and blocks; those a full pool does not keep are closed in
    # the greenlet.)
    await closed_and_returned()
    pool = vinyl.get_engine().sync_engine.pool
    assert pool.checkedout() == 0, f"{pool.checkedout()} connections still checked out"
    assert await sessions.settled_open_transactions() == 0, "server transactions left open"
    figures = await ledger_check(sessions, outcome)
    assert outcome.unmapped == [], f"errors that are not Django's: {outcome.unmapped[:5]}"
    assert outcome.unexpected == [], f"errors where none may happen: {outcome.unexpected[:5]}"
    assert outcome.inconsistent == [], f"reads that broke the invariant: {outcome.inconsistent[:5]}"
    assert peak.peak <= limit, f"{peak.peak} connections open at peak, more than pool_size + max_overflow = {limit}"
    assert peak.server_peak <= limit + TEARDOWN_SLACK, f"{peak.server_peak} server sessions at peak (pool: {limit})"
    await vinyl.dispose()
    after = await (remaining() if remaining is not None else sessions.settled_count(0))
    assert after == 0, f"{after} server sessions left after dispose()"
    figures.update(peak_connections=peak.peak, peak_server_sessions=peak.server_peak, sessions_after_dispose=after)
    return figures
