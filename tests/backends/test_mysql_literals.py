"""Many plain parameters written into the SQL by vinyl (vinyl.mysql_backend.literals)
give the server the statement asyncmy would have sent, byte for byte."""

from __future__ import annotations

import random

import asyncmy
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from tests.testapp.models import Author
from vinyl.mysql_backend import literals

pytestmark = pytest.mark.usefixtures("vinyl_db")

# Characters asyncmy escapes, a placeholder's percent sign, and multi-byte ones.
_CHARS = ["a", "'", '"', "\\", "\n", "\r", "\x00", "\x1a", "%", "%s", "é", "😀", "\t"]


async def _driver_connection() -> asyncmy.Connection:
    db = settings.DATABASES["vinyl_mysql"]
    return await asyncmy.connect(
        host=db["HOST"], port=int(db["PORT"]), user=db["USER"], password=db["PASSWORD"], db=db["NAME"], charset="utf8mb4"
    )


def _params(rnd: random.Random, n: int) -> tuple:
    def one() -> object:
        kind = rnd.randrange(3)
        if kind == 0:
            return None
        if kind == 1:
            return rnd.randint(-(2**70), 2**70)
        return "".join(rnd.choice(_CHARS) for _ in range(rnd.randrange(9)))

    return tuple(one() for _ in range(n))


@pytest.mark.backends("mysql", reason="asyncmy's literals, MySQL's text protocol")
async def test_written_sql_is_asyncmys_and_other_parameters_go_to_asyncmy_as_given():
    conn = await _driver_connection()
    try:
        cursor = conn.cursor()
        rnd = random.Random(1717)
        written = 0
        for n in [1, literals.MANY - 1, literals.MANY, 200] * 50:
            params = _params(rnd, n)
            sql = "SELECT " + ", ".join(["%s"] * n) + " FROM DUAL WHERE 3 %% 2 = 1"
            got = literals.arguments(conn, sql, params)
            if n < literals.MANY:
                assert got == (sql, params)
            else:
                assert got == (cursor.mogrify(sql, params),)
                written += 1
        assert written == 100
        # Another type, or a list: asyncmy writes them.
        many = (1,) * literals.MANY
        for params in [(*many, 1.5), (*many, True), (*many, b"x"), list(many)]:
            sql = ", ".join(["%s"] * len(params))
            assert literals.arguments(conn, sql, params) == (sql, params)
        # A session where quotes are doubled, not escaped: asyncmy writes them.
        await cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        params = ("it's",) * literals.MANY
        sql = ", ".join(["%s"] * len(params))
        assert literals.arguments(conn, sql, params) == (sql, params)
    finally:
        conn.close()


@pytest.mark.backends("mysql", reason="asyncmy's literals, MySQL's text protocol")
async def test_bulk_create_of_awkward_strings_stores_them_as_django_reads_them():
    rnd = random.Random(7)
    names = ["".join(rnd.choice(_CHARS) for _ in range(rnd.randrange(1, 12))) for _ in range(100)]
    authors = await Author.vinyl.bulk_create([Author(name=name, age=i) for i, name in enumerate(names)])
    stored = await sync_to_async(
        lambda: list(Author.objects.using(settings.SYNC_ALIAS["mysql"]).order_by("age").values_list("pk", "name"))
    )()
    assert stored == [(author.pk, name) for author, name in zip(authors, names)]


@pytest.mark.backends("mysql", reason="asyncmy's encoders (OPTIONS['conv']), MySQL's text protocol")
async def test_encoders_of_the_connection_write_every_parameter_when_options_give_them():
    # An engine whose OPTIONS["conv"] writes integers its own way: vinyl
    # leaves every literal to asyncmy there, many parameters or few.
    from django.db import connections

    import vinyl

    conv = {**asyncmy.converters.conversions, int: lambda value, mapping: str(value * 10)}
    alias = "vinyl_mysql_conv"
    connections.settings[alias] = {**connections.settings["vinyl_mysql"], "OPTIONS": {"conv": conv}}
    try:
        # (The engine's first statement learns the server's facts: the
        # planned bulk INSERT, which vinyl could write, runs from then on.)
        assert await Author.vinyl.using(alias).count() == 0
        n = literals.MANY + 8
        await Author.vinyl.using(alias).bulk_create([Author(name=f"c{i}", age=i) for i in range(n)])
        await Author.vinyl.using(alias).create(name="one", age=4)
        stored = await Author.vinyl.using("vinyl_mysql").order_by("pk").values_list("name", "age")
    finally:
        await vinyl.dispose(alias)
        del connections.settings[alias]
    assert stored == [(f"c{i}", i * 10) for i in range(n)] + [("one", 40)]
