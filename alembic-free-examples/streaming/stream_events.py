"""Stream a large table with ``async for``, in bounded memory.

    python stream_events.py --rows 200000

Fills the ``events_event`` table (schema from Django's migrations) up to
``--rows`` rows, then walks it with ``async for`` in chunks, and compares the
memory this took with loading the whole table as a list.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "events.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

import vinyl  # noqa: E402
from events.models import Event  # noqa: E402

KINDS = ("click", "view", "buy")


@dataclass
class Report:
    rows: int
    total: int
    by_kind: dict[str, int]
    seconds: float
    peak_bytes: int


async def fill(rows: int, batch: int = 5000) -> None:
    """Insert rows until the table has ``rows`` of them."""
    have = await Event.vinyl.count()
    while have < rows:
        n = min(batch, rows - have)
        await Event.vinyl.bulk_create(
            Event(kind=KINDS[i % 3], amount=i % 100, payload="x" * 200) for i in range(have, have + n)
        )
        have += n


async def stream(chunk_size: int = 1000) -> Report:
    """Aggregate every row in Python, holding one chunk at a time."""
    by_kind: Counter[str] = Counter()
    total = rows = 0
    started = time.perf_counter()
    tracemalloc.start()
    try:
        async for event in Event.vinyl.order_by("id").iterator(chunk_size=chunk_size):
            rows += 1
            total += event.amount
            by_kind[event.kind] += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Report(rows, total, dict(by_kind), time.perf_counter() - started, peak)


async def load_all() -> Report:
    """The same walk over ``await qs``: the whole table in memory at once."""
    started = time.perf_counter()
    tracemalloc.start()
    try:
        events = await Event.vinyl.order_by("id")
        total = sum(e.amount for e in events)
        by_kind = Counter(e.kind for e in events)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Report(len(events), total, dict(by_kind), time.perf_counter() - started, peak)


async def main(rows: int, chunk_size: int, compare: bool) -> tuple[Report, Report | None]:
    try:
        await fill(rows)
        streamed = await stream(chunk_size)
        loaded = await load_all() if compare else None
    finally:
        await vinyl.dispose()
    return streamed, loaded


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--no-compare", action="store_true", help="skip loading the table as a list")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    streamed, loaded = asyncio.run(main(args.rows, args.chunk_size, not args.no_compare))
    print(f"streamed {streamed.rows} rows in {streamed.seconds:.2f} s, "
          f"peak {streamed.peak_bytes / 1e6:.1f} MB: total={streamed.total} {streamed.by_kind}")
    if loaded:
        print(f"as a list: {loaded.seconds:.2f} s, peak {loaded.peak_bytes / 1e6:.1f} MB")
