"""The streaming script on a table far larger than one chunk."""

from __future__ import annotations

import pytest

from stream_events import fill, load_all, stream  # sets Django up

from django.core.management import call_command  # noqa: E402

import vinyl  # noqa: E402
from events.models import Event  # noqa: E402

ROWS = 20_000


@pytest.fixture(scope="module", autouse=True)
def schema() -> None:
    call_command("migrate", verbosity=0)


async def test_async_for_sees_every_row_in_bounded_memory() -> None:
    await Event.vinyl.all().delete()
    try:
        await fill(ROWS)
        streamed = await stream(chunk_size=500)
        loaded = await load_all()
    finally:
        await Event.vinyl.all().delete()
        await vinyl.dispose()
    assert streamed.rows == loaded.rows == ROWS
    assert streamed.total == loaded.total == sum(i % 100 for i in range(ROWS))
    assert streamed.by_kind == loaded.by_kind
    # One chunk at a time, not the table: a small fraction of the list's peak.
    assert streamed.peak_bytes < loaded.peak_bytes / 4, (streamed.peak_bytes, loaded.peak_bytes)
