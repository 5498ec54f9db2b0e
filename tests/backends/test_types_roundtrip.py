"""Every common field type comes back as Django's sync ORM gives it."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest

from tests.testapp.models import AllTypes

pytestmark = pytest.mark.usefixtures("vinyl_db")

VALUES = {
    "big": 2**40,
    "small": -3,
    "positive": 7,
    "flag": True,
    "text": "long ✓ text",
    "char": "50%_off",
    "decimal": decimal.Decimal("1234.5678"),
    "floating": 1.5,
    "day": datetime.date(2024, 2, 29),
    "moment": datetime.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=datetime.timezone.utc),
    "clock": datetime.time(23, 59, 58, 500),
    "span": datetime.timedelta(days=2, seconds=5, microseconds=7),
    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "data": {"a": [1, 2, {"b": None}], "c": "d"},
    "blob": b"\x00\x01binary\xff",
    "ip": "192.168.0.1",
    "slug": "a-slug",
    "email": "a@example.org",
    "url": "https://example.org/x?y=1",
}


async def test_every_field_type_round_trips():
    created = await AllTypes.vinyl.create(**VALUES)
    loaded = await AllTypes.vinyl.get(pk=created.pk)
    for name, value in VALUES.items():
        got = getattr(loaded, name)
        if name == "blob":
            got = bytes(got)
        assert got == value, name
    empty = await AllTypes.vinyl.create()
    loaded = await AllTypes.vinyl.get(pk=empty.pk)
    assert all(getattr(loaded, name) is None for name in VALUES)


async def test_lookups_on_typed_values():
    await AllTypes.vinyl.create(**VALUES)
    assert await AllTypes.vinyl.filter(moment__year=2024, day__month=2).count() == 1
    assert await AllTypes.vinyl.filter(data__c="d").count() == 1
    assert await AllTypes.vinyl.filter(char__contains="%_").count() == 1
    assert await AllTypes.vinyl.filter(uid=VALUES["uid"]).count() == 1
    assert await AllTypes.vinyl.filter(span__gt=datetime.timedelta(days=1)).count() == 1
