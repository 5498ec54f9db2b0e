"""Cold start of one system: imports, set-up and first query, in this process.

``python -m benchmarks.cold SYSTEM`` (``BENCH_DB`` picks the database)
prints ``{"total_ms": ...}``: the time from before the system's first import
to its first row, as a fresh worker process would pay it.
"""

import time

T0 = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


FIRST_ROW: list[float] = []


def _mark() -> None:
    """Note the moment the first row arrived (closing is not counted)."""
    FIRST_ROW.append(time.perf_counter())


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()


def raw(db: str) -> None:
    from benchmarks.config import server

    s = server(db)
    if db == "postgresql":
        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(host=s["HOST"], port=int(s["PORT"]), user=s["USER"], password=s["PASSWORD"] or None, database=s["NAME"])
            await conn.fetchrow("SELECT id, name, age, email FROM benchapp_author WHERE id = $1", 1)
            _mark()
            await conn.close()
    else:
        import asyncmy

        async def go() -> None:
            conn = await asyncmy.connect(host=s["HOST"], port=int(s["PORT"]), user=s["USER"], password=s["PASSWORD"], db=s["NAME"], autocommit=True)
            async with conn.cursor() as cur:
                await cur.execute("SELECT id, name, age, email FROM benchapp_author WHERE id = %s", (1,))
                await cur.fetchone()
                _mark()
            conn.close()

    asyncio.run(go())


def vinyl(db: str) -> None:
    _django()
    import vinyl as v
    from benchmarks.benchapp.models import Author

    async def go() -> None:
        await Author.vinyl.get(pk=1)
        _mark()
        await v.dispose()

    asyncio.run(go())


def _django_alone() -> None:
    """Django without vinyl: the models get no VinylManager (benchapp/models.py)."""
    os.environ["BENCH_WITHOUT_VINYL"] = "1"
    _django()


def django(db: str) -> None:
    _django_alone()
    from benchmarks.benchapp.models import Author

    Author.objects.get(pk=1)
    _mark()


def django_raw(db: str) -> None:
    """Django set up (no vinyl), then the raw driver's first row: the floor of
    any async ORM on Django (vinyl's cold start less SQLAlchemy and vinyl)."""
    _django_alone()
    raw(db)


def django_sa(db: str) -> None:
    """Django set up (no vinyl), then SQLAlchemy's async engine and the driver,
    a ``text()`` first row: the floor of an ORM on Django and SQLAlchemy's
    engine. ``sqlalchemy.ext.asyncio`` is imported as an application would,
    so its ``__init__`` imports SQLAlchemy's ORM, which vinyl does not run."""
    _django_alone()
    from sqlalchemy import URL, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from benchmarks.config import server

    s = server(db)
    url = URL.create(
        "postgresql+asyncpg" if db == "postgresql" else "mysql+asyncmy", username=s["USER"],
        password=s["PASSWORD"] or None, host=s["HOST"], port=int(s["PORT"]), database=s["NAME"],
    )

    async def go() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            (await conn.execute(text("SELECT id, name, age, email FROM benchapp_author WHERE id = :id"), {"id": 1})).first()
            _mark()
        await engine.dispose()

    asyncio.run(go())


def django_async(db: str) -> None:
    _django_alone()
    from benchmarks.benchapp.models import Author

    asyncio.run(Author.objects.aget(pk=1))
    _mark()


def sa_core(db: str) -> None:
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from benchmarks.systems.sa_models import Author, url

    async def go() -> None:
        engine = create_async_engine(url(db), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            (await conn.execute(select(Author.__table__).where(Author.__table__.c.id == 1))).first()
            _mark()
        await engine.dispose()

    asyncio.run(go())


def sa_orm(db: str) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from benchmarks.systems.sa_models import Author, url

    async def go() -> None:
        engine = create_async_engine(url(db))
        async with async_sessionmaker(engine)() as session:
            await session.get(Author, 1)
            _mark()
        await engine.dispose()

    asyncio.run(go())


def tortoise(db: str) -> None:
    from tortoise import Tortoise

    from benchmarks.systems.tortoise_sys import Author, init

    async def go() -> None:
        await init(db, 1)
        await Author.get(id=1)
        _mark()
        await Tortoise.close_connections()

    asyncio.run(go())


if __name__ == "__main__":
    system = sys.argv[1]
    globals()[system](os.environ.get("BENCH_DB", "postgresql"))
    print(json.dumps({"total_ms": (FIRST_ROW[0] - T0) * 1000}))
