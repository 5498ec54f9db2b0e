"""Row locks taken in a nested block (a savepoint) that rolled back, as Django's.

The outer block goes on after the nested one rolled back (its error caught
outside it). Whether the database still holds the nested block's row locks
then is its own answer (PostgreSQL and MariaDB 10.11 drop them, MySQL's
manual says InnoDB keeps them; a lock the outer block took before holds
either way): vinyl gives the one Django's sync ORM gets on the same server.
Another connection, Django's sync one (a thread of its own), asks with
``select_for_update(nowait=True)``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.models import F

import vinyl
from tests.testapp.models import Author

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="SQLite has no row locks: a write locks the whole database"),
]

#: What the other connection's nowait gave: None when it locked Bob, else its error's class.
Probe = type | None


def _probe(backend: str) -> Probe:
    """``select_for_update(nowait=True)`` on Bob, on Django's sync connection of this thread."""
    alias = settings.SYNC_ALIAS[backend]
    try:
        with transaction.atomic(using=alias):
            Author.objects.using(alias).select_for_update(nowait=True).get(name="Bob")
    except DatabaseError as exc:
        return type(exc)
    finally:
        connections[alias].close()
    return None


def _probe_elsewhere(backend: str) -> Probe:
    """:func:`_probe` from another thread (another connection), waited for."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_probe, backend).result()


# What the outer block does before its nested block, and what the nested
# block does to Bob before it raises.
BEFORE = ["nothing", "lock"]
NESTED = ["lock", "update"]
ENDS = ["commit", "rollback"]


def _django_case(backend: str, before: str, nested: str, ends: str) -> list[Probe]:
    alias = settings.SYNC_ALIAS[backend]
    objects = Author.objects.using(alias)
    probes: list[Probe] = []
    try:
        with contextlib.suppress(KeyError), transaction.atomic(using=alias):
            if before == "lock":
                objects.select_for_update().get(name="Bob")
            with contextlib.suppress(LookupError), transaction.atomic(using=alias):
                if nested == "lock":
                    objects.select_for_update().get(name="Bob")
                else:
                    objects.filter(name="Bob").update(age=F("age") + 1)
                probes.append(_probe_elsewhere(backend))
                raise LookupError
            probes.append(_probe_elsewhere(backend))
            objects.count()  # the outer block goes on
            probes.append(_probe_elsewhere(backend))
            if ends == "rollback":
                raise KeyError
        probes.append(_probe_elsewhere(backend))
    finally:
        connections[alias].close()
    return probes


async def _nested_vinyl(backend: str, nested: str, probes: list[Probe]) -> None:
    async with vinyl.atomic():
        if nested == "lock":
            await Author.vinyl.select_for_update().get(name="Bob")
        else:
            await Author.vinyl.filter(name="Bob").update(age=F("age") + 1)
        probes.append(await asyncio.to_thread(_probe, backend))
        raise LookupError


async def _in_this_task(backend: str, nested: str, probes: list[Probe]) -> None:
    with contextlib.suppress(LookupError):
        await _nested_vinyl(backend, nested, probes)


async def _in_a_child_task(backend: str, nested: str, probes: list[Probe]) -> None:
    with contextlib.suppress(LookupError):
        await asyncio.create_task(_nested_vinyl(backend, nested, probes))


async def _vinyl_case(
    backend: str, before: str, nested: str, ends: str, run: Callable[[str, str, list[Probe]], Awaitable[None]]
) -> list[Probe]:
    probes: list[Probe] = []
    with contextlib.suppress(KeyError):
        async with vinyl.atomic():
            if before == "lock":
                await Author.vinyl.select_for_update().get(name="Bob")
            await run(backend, nested, probes)
            probes.append(await asyncio.to_thread(_probe, backend))
            await Author.vinyl.count()
            probes.append(await asyncio.to_thread(_probe, backend))
            if ends == "rollback":
                raise KeyError
    probes.append(await asyncio.to_thread(_probe, backend))
    return probes


@pytest.mark.parametrize("ends", ENDS)
@pytest.mark.parametrize("nested", NESTED)
@pytest.mark.parametrize("before", BEFORE)
@pytest.mark.parametrize("run", [_in_this_task, _in_a_child_task])
async def test_locks_of_a_rolled_back_nested_block_hold_as_djangos(backend, before, nested, ends, run):
    """Held or not inside the nested block, after it rolled back while the
    outer block goes on, and after that ends: as with Django's atomic on the
    same server (the nested block run by the block's task or by a task it
    started)."""
    await Author.vinyl.create(name="Bob", age=1)
    expected = await asyncio.to_thread(_django_case, backend, before, nested, ends)
    got = await _vinyl_case(backend, before, nested, ends, run)
    assert got == expected
    assert expected[0] is OperationalError  # the nested block holds a lock
    assert expected[-1] is None  # free once the outer block has ended
    if before == "lock":
        assert expected[1:3] == [OperationalError, OperationalError]  # the outer block's own lock holds
    assert (await Author.vinyl.get(name="Bob")).age == 1  # the nested update was rolled back


async def test_each_server_drops_the_locks_of_a_rolled_back_savepoint(backend):
    """The database's answer, which the differential test above compares
    vinyl with: PostgreSQL drops the row locks a rolled-back subtransaction
    took; so does MariaDB (10.11 here), although MySQL's manual says InnoDB
    keeps them until the transaction ends."""
    await Author.vinyl.create(name="Bob", age=1)
    probes = await asyncio.to_thread(_django_case, backend, "nothing", "lock", "commit")
    assert probes == [OperationalError, None, None, None]
