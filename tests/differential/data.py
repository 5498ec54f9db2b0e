"""The rows both ORMs read: drawn from a seed, restored between writes, compared whole.

``Dataset.draw(seed)`` makes a small, tricky data set (strings with ``% _ \\``
quotes and unicode, integers at their ranges' ends, NULLs in every nullable
column, aware datetimes near midnight in several zones...). ``restore`` puts
it back with Django on the sync alias (sequences included, so both ORMs'
inserts get the same keys); ``snapshot`` reads every table in key order.
"""

from __future__ import annotations

import datetime
import decimal
import random
import unicodedata
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.core.management.color import no_style
from django.db import connections, transaction

from tests.diffapp.models import Item, Owner, Premium, Profile, Tag

UTC = datetime.timezone.utc
ZONES = ["Asia/Tokyo", "America/New_York", "Europe/Paris", "Australia/Adelaide", "Pacific/Kiritimati", "America/St_Johns"]

STRINGS = [
    "", "a", "A", "ab", "Ab", "a_b", "a%b", "aXb", "axb", "a\\b", "a\\\\b", "it's", 'say "hi"', "é", "É",
    "naïve", "日本語", "☃", "100%", "_", "%", "\\", "x'y", "Ann", "ann", "ANN", "bob", "Bob", " bob",
    "%s", "%(x)s", "{}", "NULL", "null", "tab\tx", "line\nbreak", "emoji 🎉", "ß", "straße", "STRASSE", "i̇",
    "O'Brien", "a.b", "a*b", "[ab]", "^a", "a$", "Zoë", "zoe",
]
SLUGS = ["", "a", "a-b", "a_b", "b-2", "x"]
IPS = ["127.0.0.1", "10.0.0.2", "::1", "2001:db8::1", "192.168.1.1"]
JSONS = [
    {"a": 1}, {"a": "x"}, {"a": None}, {"a": 2, "b": [1, 2]}, [1, 2], [], {}, "str", 5, 1.5, True, False,
    {"k": {"n": 2}}, {"k": {"n": "2"}}, {"a": [1, {"b": 2}]}, {"é": "ü", "%": "_"}, None,
]

def fold(word: str) -> str:
    """``word`` as a case- and accent-insensitive collation compares it."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return stripped.casefold().replace("ss", "s").rstrip(" ")


INT_RANGES = {
    "small": (-32768, 32767),
    "psmall": (0, 32767),
    "integer": (-2147483648, 2147483647),
    "pint": (0, 2147483647),
    "big": (-9223372036854775808, 9223372036854775807),
    "pbig": (0, 9223372036854775807),
}


def pick_int(rng: random.Random, name: str) -> int:
    lo, hi = INT_RANGES[name]
    return rng.choice([lo, hi, 0, 1, -1 if lo < 0 else 2, rng.randint(-5, 5) if lo < 0 else rng.randint(0, 9),
                       rng.randint(lo, hi), rng.randint(-100, 100) if lo < 0 else rng.randint(0, 100)])


def pick_datetime(rng: random.Random) -> datetime.datetime:
    base = rng.choice([datetime.datetime(2024, 1, 1), datetime.datetime(2024, 2, 29), datetime.datetime(2023, 12, 31),
                       datetime.datetime(2024, 3, 10), datetime.datetime(2024, 10, 27), datetime.datetime(1999, 12, 31)])
    moment = base + datetime.timedelta(hours=rng.choice([0, 1, 9, 14, 15, 22, 23]), minutes=rng.choice([0, 30, 59]),
                                       seconds=rng.choice([0, 1, 59]), microseconds=rng.choice([0, 0, 123456]))
    return moment.replace(tzinfo=ZoneInfo(rng.choice(ZONES)) if rng.random() < 0.5 else UTC).astimezone(UTC)


def pick_date(rng: random.Random) -> datetime.date:
    return rng.choice([datetime.date(2024, 1, 1), datetime.date(2024, 2, 29), datetime.date(2023, 12, 31),
                       datetime.date(2000, 1, 1), datetime.date(1970, 1, 1), datetime.date(2024, 12, 30),
                       datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randint(0, 400))])


def pick_decimal(rng: random.Random) -> decimal.Decimal:
    return rng.choice([decimal.Decimal("0"), decimal.Decimal("0.001"), decimal.Decimal("-0.5"), decimal.Decimal("1.500"),
                       decimal.Decimal("999999999.999"), decimal.Decimal("-999999999.999"), decimal.Decimal("12.345"),
                       decimal.Decimal(rng.randint(-10**6, 10**6)) / 1000])


def pick_float(rng: random.Random) -> float:
    return rng.choice([0.0, -0.0, 1.5, -2.25, 0.1, 1e300, -1e-300, 3.0, 2.5, rng.uniform(-1000, 1000)])


@dataclass
class Dataset:
    """Rows per model as field dicts (explicit keys) and the item-tag pairs."""

    tags: list[dict]
    owners: list[dict]
    premiums: list[dict]
    profiles: list[dict]
    items: list[dict]
    item_tags: list[tuple[int, int]]

    @classmethod
    def draw(cls, seed: int, n_items: int = 36) -> Dataset:
        rng = random.Random(f"data-{seed}")
        names = []
        for word in rng.sample(STRINGS, len(STRINGS)):
            # Unique under every backend's collation (MySQL: case- and accent-insensitive).
            if word and fold(word) not in {fold(n) for n in names}:
                names.append(word)
            if len(names) == 10:
                break
        tags = [{"id": i + 1, "name": n, "weight": rng.randint(-3, 3)} for i, n in enumerate(names)]
        owners = []
        for i in range(12):
            owners.append({"id": i + 1, "name": rng.choice(STRINGS[:30]), "age": rng.choice([None, 0, 17, 30, 30, 45, -1, 2147483647]),
                           "joined": rng.choice([None, pick_date(rng)])})
        premiums = [{"owner_ptr_id": pk, "level": rng.choice([0, 1, 2, 65535 // 2]), "since": rng.choice([None, pick_datetime(rng)]),
                     "code": rng.choice([None, "Ann", "ANN", "Bob", "É", "STRASSE", "Zoë", "O'Brien", "a_b", "ß"])}
                    for pk in (3, 5, 8, 11)]
        profiles = [{"id": j + 1, "owner_id": pk, "bio": rng.choice(STRINGS), "score": rng.choice([None, pick_float(rng)])}
                    for j, pk in enumerate(sorted(rng.sample(range(1, 13), 7)))]
        items = []
        for i in range(n_items):
            null = lambda p=0.2: rng.random() < p  # noqa: E731
            items.append({
                "id": i + 1,
                "name": rng.choice(STRINGS),
                "text": None if null() else rng.choice(STRINGS) + rng.choice(["", " ", "x"]) + rng.choice(STRINGS),
                **{k: (None if null() else pick_int(rng, k)) for k in INT_RANGES},
                "dec": None if null() else pick_decimal(rng),
                "flt": None if null() else pick_float(rng),
                "flag": rng.random() < 0.5,
                "maybe": rng.choice([None, True, False]),
                "day": None if null() else pick_date(rng),
                "at": None if null() else pick_datetime(rng),
                "clock": None if null() else datetime.time(rng.choice([0, 9, 12, 23]), rng.choice([0, 30, 59]), rng.choice([0, 15])),
                "span": None if null() else datetime.timedelta(seconds=rng.choice([0, 1, 3600, 86400 * 3, -60]), microseconds=rng.choice([0, 5])),
                "uid": None if null() else uuid.UUID(int=rng.getrandbits(128), version=4),
                "data": None if null(0.15) else rng.choice(JSONS),
                "blob": None if null() else bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 6))),
                "slug": rng.choice(SLUGS),
                "ip": None if null() else rng.choice(IPS),
                "owner_id": None if null(0.25) else rng.randint(1, 12),
            })
        pairs = sorted({(rng.randint(1, n_items), rng.randint(1, len(tags))) for _ in range(n_items * 2)})
        return cls(tags, owners, premiums, profiles, items, pairs)


THROUGH = Item.tags.through
#: Deletion order (children first); insertion is the reverse.
TABLE_MODELS = [THROUGH, Item, Profile, Premium, Owner, Tag]


def _delete_all(alias: str) -> None:
    connection = connections[alias]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in TABLE_MODELS:
            cursor.execute(f"DELETE FROM {qn(model._meta.db_table)}")
        if connection.vendor == "sqlite":
            names = ", ".join("'%s'" % m._meta.db_table for m in TABLE_MODELS)
            cursor.execute(f"DELETE FROM sqlite_sequence WHERE name IN ({names})")


def _reset_sequences(alias: str) -> None:
    connection = connections[alias]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for sql in connection.ops.sequence_reset_sql(no_style(), [m for m in TABLE_MODELS if m is not Premium]):
                cursor.execute(sql)
        elif connection.vendor == "mysql":
            for model in TABLE_MODELS:
                if model is not Premium:
                    # InnoDB moves the counter to max(key) + 1.
                    cursor.execute(f"ALTER TABLE {qn(model._meta.db_table)} AUTO_INCREMENT = 1")


def _raw_code(premium: Premium, row: dict) -> Premium:
    """``premium`` holding its ``code`` as drawn (mixed case), past its descriptor's lower-casing setter:
    the rows hold values that loading them lower-cases (as rows update() wrote do)."""
    premium.__dict__["code"] = row["code"]
    return premium


def restore(alias: str, data: Dataset) -> None:
    """Make the diffapp tables hold exactly ``data`` (run in a thread: Django's sync ORM)."""
    with transaction.atomic(using=alias):
        _delete_all(alias)
        Tag.objects.using(alias).bulk_create([Tag(**r) for r in data.tags])
        Owner.objects.using(alias).bulk_create([Owner(**r) for r in data.owners])
        for r in data.premiums:
            # The child row only (raw save): its parent row is inserted above.
            _raw_code(Premium(**r), r).save_base(using=alias, raw=True, force_insert=True)
        Profile.objects.using(alias).bulk_create([Profile(**r) for r in data.profiles])
        Item.objects.using(alias).bulk_create([Item(**r) for r in data.items])
        THROUGH.objects.using(alias).bulk_create([THROUGH(id=i + 1, item_id=a, tag_id=b) for i, (a, b) in enumerate(data.item_tags)])
    _reset_sequences(alias)


def snapshot(alias: str) -> dict[str, list[tuple]]:
    """Every row of every diffapp table in key order, as the driver reads the columns.

    Raw SQL: no field converters, so a stored value Django could not read back
    (an over-long decimal on SQLite) is compared too instead of failing.
    """
    connection = connections[alias]
    qn = connection.ops.quote_name
    out = {}
    with connection.cursor() as cursor:
        for model in TABLE_MODELS:
            # PostgreSQL: as text, so that values psycopg cannot load ('-infinity'
            # in a date column, which asyncpg writes for date.min) compare too.
            cast = "::text" if connection.vendor == "postgresql" else ""
            columns = ", ".join(qn(f.column) + cast for f in model._meta.local_concrete_fields)
            cursor.execute(f"SELECT {columns} FROM {qn(model._meta.db_table)} ORDER BY {qn(model._meta.pk.column)}")
            out[model._meta.label] = [tuple(row) for row in cursor.fetchall()]
    return out
