"""The first connect of an engine: what vinyl sends beyond SQLAlchemy's own set-up.

A cold process pays every round trip of its first query (issue 17). On
PostgreSQL the server's version, which Django's backend asks vinyl for, is
the one SQLAlchemy's dialect read on that connect: vinyl sends no statement
of its own for it (and so no transaction around one). On MariaDB the
Galera check (@@wsrep_on) is asked with the other facts, in one statement,
outside any transaction (no BEGIN and ROLLBACK around it).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connections
from sqlalchemy import event

import vinyl
from tests.testapp.models import Author
from vinyl.postgresql_backend.base import version_number

def _record(engine: Any) -> list[str]:
    sent: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: sent.append(sql))
    return sent


@pytest.mark.usefixtures("vinyl_db")
@pytest.mark.backends("postgresql", reason="the version from SQLAlchemy's PostgreSQL dialect")
async def test_the_server_version_costs_no_statement_of_vinyls(backend: str) -> None:
    await vinyl.dispose()
    sent = _record(vinyl.get_engine())
    assert await Author.vinyl.count() == 0
    assert not [sql for sql in sent if "server_version" in sql.lower()], sent
    assert not [sql for sql in sent if sql.strip().upper() in ("BEGIN", "ROLLBACK")], sent
    # The same number the server reports (and Django's own backend reads).
    async with vinyl.get_engine().connect() as conn:
        number = int((await conn.exec_driver_sql("SHOW server_version_num")).scalar_one())
    assert connections["vinyl_default"].pg_version == number


@pytest.mark.usefixtures("vinyl_db")
@pytest.mark.backends("mysql", reason="the facts Django's MySQL backend reads, and MariaDB's Galera check")
async def test_the_mysql_facts_take_one_statement(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    await vinyl.dispose()
    engine = vinyl.get_engine()
    with caplog.at_level(logging.DEBUG, logger="vinyl.sql"):
        assert await Author.vinyl.count() == 0
    sent = [record.sql for record in caplog.records if record.name == "vinyl.sql"]
    facts = [sql for sql in sent if "@@" in sql]
    assert len(facts) == 1, sent
    assert ("@@wsrep_on" in facts[0]) == engine.dialect.is_mariadb
    # Read on the autocommitting connection: no transaction around it.
    assert sent.index(facts[0]) == 0 and sent[1].lstrip().upper().startswith("SELECT"), sent
    assert not [sql for sql in sent if sql.strip().upper() in ("BEGIN", "ROLLBACK")], sent
    wrapper = connections["vinyl_default"]
    async with engine.connect() as conn:
        version, sql_mode = (await conn.exec_driver_sql("SELECT VERSION(), @@sql_mode")).one()
    assert wrapper.mysql_server_data["version"] == version
    assert wrapper.sql_mode == set(sql_mode.split(",")) - {""}
    assert wrapper.vinyl_facts()["galera"] is False  # the test server is no Galera node


def test_the_version_number_of_a_parsed_version() -> None:
    assert version_number((15, 4)) == 150004
    assert version_number((17,)) == 170000  # 17beta1, 18devel
    assert version_number((10, 23)) == 100023
    # SQLAlchemy could not say as much as server_version_num: asked.
    assert version_number((9, 6, 24)) is None
    assert version_number(None) is None
    assert version_number(()) is None
