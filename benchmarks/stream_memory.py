"""Peak Python memory: streaming a table with ``async for`` vs ``await qs``.

Run from the repository root against the test databases (tables created by
the test suite)::

    VINYL_TEST_PG_NAME=... VINYL_TEST_MYSQL_NAME=... \\
        python -m benchmarks.stream_memory [rows] [postgresql|mysql ...]

It fills ``testapp_author`` with ``rows`` rows, measures the tracemalloc peak
of each way of reading them, then empties the table.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tracemalloc

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.db import connections  # noqa: E402
from sqlalchemy import text  # noqa: E402

import vinyl  # noqa: E402
from tests.testapp.models import Author  # noqa: E402


async def _peak(coro_fn) -> tuple[int, float]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    count = await coro_fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return count, peak / 2**20


async def _streamed() -> int:
    count = 0
    async for _ in Author.vinyl.iterator(chunk_size=2000):
        count += 1
    return count


async def _buffered() -> int:
    return len(await Author.vinyl.all())


async def _empty() -> None:
    async with vinyl.get_engine().begin() as conn:
        for table in ("testapp_book_tags", "testapp_book", "testapp_profile", "testapp_author"):
            await conn.execute(text(f"DELETE FROM {table}"))


async def run(backend: str, rows: int) -> None:
    connections.settings["vinyl_default"] = dict(connections.settings[f"vinyl_{backend}"])
    try:
        del connections["vinyl_default"]
    except AttributeError:
        pass
    await _empty()
    batch = 2_000
    for start in range(0, rows, batch):
        await Author.vinyl.bulk_create(
            [Author(name=f"author {i:08}", age=i % 90) for i in range(start, min(rows, start + batch))],
            batch_size=batch,
        )
    streamed, stream_peak = await _peak(_streamed)
    buffered, buffer_peak = await _peak(_buffered)
    print(
        f"{backend}: {rows} rows; async for (chunk_size=2000): {stream_peak:.1f} MiB peak "
        f"({streamed} rows); await qs: {buffer_peak:.1f} MiB peak ({buffered} rows)"
    )
    await _empty()
    await vinyl.dispose()


async def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for backend in sys.argv[2:] or ["postgresql", "mysql"]:
        await run(backend, rows)


if __name__ == "__main__":
    asyncio.run(main())
