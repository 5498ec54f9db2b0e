"""Where vinyl's cold start goes: the phases up to the first row, in fresh processes.

``python -m benchmarks.coldphases [--runs N]`` (``BENCH_DB`` picks the
database) runs ``benchmarks.cold vinyl``'s path N times, each in a fresh
interpreter, and prints per phase the median wall and CPU (process) time it
added. The phases:

- ``import django``;
- ``import vinyl``: Django's ORM modules, SQLAlchemy's core and async
  engine, vinyl's own modules (``benchmarks.cold`` imports vinyl inside
  ``django.setup()``, through the models; here it is imported just before);
- ``django.setup()``: the apps and models, and the ``default`` alias's
  backend, Django's own (the model metaclass asks it for
  ``max_name_length()``): psycopg on PostgreSQL, PyMySQL on MariaDB;
- ``vinyl backend``: ``connections["vinyl_default"]``: SQLAlchemy's dialect,
  the async driver, vinyl's backend modules;
- ``engine``: ``vinyl.get_engine()`` creates the engine and its pool;
- ``connected``: the driver's connect (SQLAlchemy's ``first_connect``);
- ``dialect initialized``: SQLAlchemy's first-connect queries (server
  version, schema, isolation level...; SQLAlchemy's ``connect`` event);
- ``first row``: Django compiles the query, vinyl runs it.

With ``--child`` it runs the phases once in this process and prints them as
JSON. CPU time is steadier than wall time on a shared machine; the sum of
the phases is ``benchmarks.cold``'s total less the interpreter's own start.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()
C0 = time.process_time()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

MARKS: list[tuple[str, float, float]] = []


def _mark(phase: str) -> None:
    MARKS.append((phase, (time.perf_counter() - T0) * 1000, (time.process_time() - C0) * 1000))


def child() -> None:
    """Run vinyl's cold start once, marking each phase."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    _mark("import django")
    import vinyl

    _mark("import vinyl (Django ORM, SQLAlchemy, vinyl)")
    django.setup()
    _mark("django.setup (default alias: Django's backend)")
    from django.db import connections
    from sqlalchemy import event

    from benchmarks.benchapp.models import Author

    connections["vinyl_default"].ops
    _mark("vinyl backend (dialect, driver)")

    async def go() -> None:
        engine = vinyl.get_engine("vinyl_default")
        _mark("engine")
        event.listen(engine.sync_engine, "first_connect", lambda *a: _mark("connected"))
        event.listen(engine.sync_engine, "connect", lambda *a: _mark("dialect initialized"))
        await Author.vinyl.get(pk=1)
        _mark("first row")
        await vinyl.dispose()

    asyncio.run(go())
    print(json.dumps(MARKS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    from benchmarks.runner import compile_sources

    compile_sources()
    runs = []
    for _ in range(args.runs):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.coldphases", "--child"], capture_output=True, text=True, timeout=120, check=True
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{os.environ.get('BENCH_DB', 'postgresql')}: median of {args.runs} fresh processes (ms)")
    print(f"{'phase':48} {'wall':>8} {'cpu':>8}")
    for k, (phase, _, _) in enumerate(runs[0]):
        wall = statistics.median(r[k][1] - (r[k - 1][1] if k else 0) for r in runs)
        cpu = statistics.median(r[k][2] - (r[k - 1][2] if k else 0) for r in runs)
        print(f"{phase:48} {wall:8.1f} {cpu:8.1f}")
    print(f"{'to the first row':48} {statistics.median(r[-1][1] for r in runs):8.1f} {statistics.median(r[-1][2] for r in runs):8.1f}")


if __name__ == "__main__":
    main()
