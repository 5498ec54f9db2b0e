"""Aware datetimes a plan sends to MySQL/MariaDB: vinyl writes the text
Django's ``adapt_datetimefield_value`` gives (the wall time in the
connection's zone), and filters by them answer the rows Django's sync ORM
answers, on every backend."""

from __future__ import annotations

import datetime
import random
import zoneinfo

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.db.models import F
from django.test import override_settings

from tests.testapp.models import AllTypes
from vinyl.translate.plans import value_adapters

pytestmark = pytest.mark.usefixtures("vinyl_db")

UTC = datetime.timezone.utc
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
ZONES = [
    UTC,
    datetime.timezone(datetime.timedelta(hours=5, minutes=45)),
    datetime.timezone(-datetime.timedelta(hours=9, minutes=30, seconds=15)),
    PARIS,
    zoneinfo.ZoneInfo("America/New_York"),
]
# The second 02:30 of Paris's last Sunday of October 2024 (fold 1), and the
# first.
FOLDED = [datetime.datetime(2024, 10, 27, 2, 30, fold=f, tzinfo=PARIS) for f in (0, 1)]


def _moments(rnd: random.Random, n: int) -> list[datetime.datetime]:
    moments = [*FOLDED, datetime.datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC), datetime.datetime(9999, 12, 30, 1, tzinfo=UTC)]
    for _ in range(n):
        moment = datetime.datetime(rnd.randrange(1, 10000), rnd.randrange(1, 13), rnd.randrange(1, 29),
                                   rnd.randrange(24), rnd.randrange(60), rnd.randrange(60),
                                   rnd.choice([0, 0, 1, 999_999, rnd.randrange(1_000_000)]), tzinfo=UTC)
        try:
            moments.append(moment.astimezone(rnd.choice(ZONES)))
        except (OverflowError, ValueError):
            moments.append(moment)
    return moments


@pytest.mark.backends("mysql", reason="MySQL's adapter of datetimes (PostgreSQL sends them as they are)")
async def test_the_plans_datetime_adapter_writes_the_text_djangos_writes(backend):
    ops = connections["vinyl_default"].ops
    adapt = value_adapters("vinyl_default")[datetime.datetime]
    # vinyl's own adapter, not Django's method (about a third of its cost).
    assert getattr(adapt, "__func__", None) is not type(ops).adapt_datetimefield_value
    naive = datetime.datetime(2024, 1, 2, 3, 4, 5)
    others = [None, naive, F("moment"), datetime.datetime(2024, 1, 2, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))]
    connection = connections["vinyl_default"]
    for zone in [None, PARIS, datetime.timezone(datetime.timedelta(hours=-3))]:
        # The connection's zone (DATABASES[...]["TIME_ZONE"]), read at each call.
        if zone is not None:
            connection.__dict__["timezone"] = zone
        try:
            for value in [*_moments(random.Random(1717), 300), *others]:
                try:
                    expected = ops.adapt_datetimefield_value(value)
                except (OverflowError, ValueError) as exc:
                    with pytest.raises(type(exc)):
                        adapt(value)
                    continue
                assert adapt(value) == expected, value
        finally:
            connection.__dict__.pop("timezone", None)


@pytest.mark.backends("mysql", reason="MySQL's adapter of datetimes (PostgreSQL sends them as they are)")
async def test_without_use_tz_a_plan_keeps_djangos_adapter(backend):
    with override_settings(USE_TZ=False):
        adapt = value_adapters("vinyl_default")[datetime.datetime]
    assert adapt.__func__ is type(connections["vinyl_default"].ops).adapt_datetimefield_value


async def test_filters_by_aware_datetimes_answer_as_django(backend):
    rnd = random.Random(1717)
    stored = [m for m in _moments(rnd, 40) if 1000 < m.astimezone(UTC).year < 9999]
    await AllTypes.vinyl.bulk_create([AllTypes(moment=m) for m in stored])
    sync = AllTypes.objects.using(settings.SYNC_ALIAS[backend])
    for bound in [*FOLDED, *_moments(rnd, 20)]:
        if not 1000 < bound.astimezone(UTC).year < 9999:
            continue
        expected = await sync_to_async(lambda: list(sync.filter(moment__gte=bound).order_by("moment", "pk").values_list("pk", "moment")))()
        # Twice: the first compiles the shape, the second runs its plan.
        for _ in range(2):
            got = [(obj.pk, obj.moment) for obj in await AllTypes.vinyl.filter(moment__gte=bound).order_by("moment", "pk")]
            assert got == expected, bound
