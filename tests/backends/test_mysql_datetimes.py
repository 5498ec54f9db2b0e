"""MySQL datetimes read into instances: with asyncmy's own decoders (naive,
of fold 0) the generated code makes them aware by their type alone; with a
connection's own decoders (``OPTIONS["conv"]``) each value goes through the
checks Django's converter makes (fold kept, an aware value refused)."""

from __future__ import annotations

import datetime

import asyncmy
import pytest
from asyncmy.constants import FIELD_TYPE
from django.db import connections
from django.utils import timezone

import vinyl
from tests.testapp.models import AllTypes

pytestmark = [pytest.mark.usefixtures("vinyl_db"), pytest.mark.backends("mysql", reason="asyncmy's decoders (OPTIONS['conv'])")]

MOMENT = datetime.datetime(2024, 10, 27, 1, 30, 5, 123456, tzinfo=datetime.timezone.utc)


def _alias_decoding_datetimes(decode) -> str:
    conv = {**asyncmy.converters.conversions, FIELD_TYPE.DATETIME: decode}
    alias = "vinyl_mysql_datetimes"
    connections.settings[alias] = {**connections.settings["vinyl_mysql"], "OPTIONS": {"conv": conv}}
    return alias


async def _read_twice(alias: str) -> list:
    # The second read runs on the plan the first one made.
    qs = AllTypes.vinyl.using(alias).filter(moment__isnull=False).order_by("pk")
    first = [obj.moment for obj in await qs]
    second = [obj.moment for obj in await qs]
    assert first == second
    return second


async def test_asyncmys_own_decoders_give_aware_values_by_type():
    assert connections["vinyl_mysql"].vinyl_driver_datetimes_naive
    await AllTypes.vinyl.create(moment=MOMENT)
    await AllTypes.vinyl.create(moment=None)
    for _ in range(2):
        moments = [obj.moment for obj in await AllTypes.vinyl.order_by("pk")]
        assert moments == [MOMENT, None]
        assert moments[0].tzinfo is connections["vinyl_mysql"].timezone and moments[0].fold == 0


async def test_a_connections_own_decoders_go_through_djangos_checks():
    await AllTypes.vinyl.create(moment=MOMENT)
    alias = _alias_decoding_datetimes(lambda value: asyncmy.converters.convert_datetime(value).replace(fold=1))
    try:
        assert not connections[alias].vinyl_driver_datetimes_naive
        moments = await _read_twice(alias)
    finally:
        await vinyl.dispose(alias)
        del connections.settings[alias]
    expected = timezone.make_aware(MOMENT.replace(tzinfo=None, fold=1), connections["vinyl_mysql"].timezone)
    assert moments == [expected] and moments[0].fold == 1


async def test_an_aware_value_of_a_connections_own_decoders_raises_djangos_error():
    await AllTypes.vinyl.create(moment=MOMENT)
    alias = _alias_decoding_datetimes(lambda value: asyncmy.converters.convert_datetime(value).replace(tzinfo=datetime.timezone.utc))
    try:
        for _ in range(2):
            with pytest.raises(ValueError, match="make_aware expects a naive datetime"):
                await AllTypes.vinyl.using(alias).filter(moment__isnull=False)
    finally:
        await vinyl.dispose(alias)
        del connections.settings[alias]
