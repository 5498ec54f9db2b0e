"""MySQL's zero dates ('0000-00-00'), read by Django's sync ORM and by vinyl.

A MySQL server with a lenient ``sql_mode`` stores dates no Python ``date``
can hold. Whatever Django answers for such a row (a value, or an error of
some class), vinyl answers the same, on every path that builds rows.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.db.models import F

from tests.diffapp.models import Item
from tests.differential.test_converted_values import django, mine, stream, stream_chunks

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("mysql", reason="zero dates exist only on MySQL and MariaDB"),
]

ZERO_DAY = "0000-00-00"
ZERO_MOMENT = "0000-00-00 00:00:00"


def _insert_zero_rows(alias: str) -> None:
    table = Item._meta.db_table
    with connections[alias].cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = ''")
        try:
            cursor.execute(
                f"INSERT INTO {table} (name, flag, slug, day, at) VALUES "
                f"('zero day', 0, '', %s, NULL), ('zero moment', 0, '', NULL, %s), "
                f"('both', 0, '', %s, %s), ('fine', 0, '', '2024-02-29', '2024-02-29 12:00:00')",
                [ZERO_DAY, ZERO_MOMENT, ZERO_DAY, ZERO_MOMENT],
            )
        finally:
            cursor.execute("SET SESSION sql_mode = DEFAULT")


CHAINS: list[tuple[str, Callable[[Any], Any]]] = [
    ("day rows", lambda m: m.filter(at__isnull=True).order_by("pk")),
    ("day values", lambda m: m.values_list("name", "day").order_by("pk")),
    ("day flat", lambda m: m.values_list("day", flat=True).order_by("pk")),
    ("moment rows", lambda m: m.filter(name="zero moment")),
    ("moment values", lambda m: m.values("name", "at").order_by("pk")),
    ("moment annotated", lambda m: m.annotate(a=F("at")).values_list("a", flat=True).order_by("pk")),
    ("all rows", lambda m: m.order_by("pk")),
    ("only day", lambda m: m.only("day").order_by("pk")),
]


@pytest.mark.parametrize("name", [name for name, _ in CHAINS])
async def test_zero_dates_read_as_django_reads_them(backend: str, name: str) -> None:
    chain = dict(CHAINS)[name]
    alias = settings.SYNC_ALIAS[backend]
    await sync_to_async(_insert_zero_rows)(alias)
    theirs = await django(lambda: list(chain(Item.objects.using(alias))))
    for how, run in (("await", lambda qs: qs), ("async for", stream), ("iterator(2)", lambda qs: stream_chunks(qs, 2))):
        got = await mine(run(chain(Item.vinyl.all())))
        assert got == theirs, f"{name} ({how}): Django {theirs!r:.400} != vinyl {got!r:.400}"
