"""Where vinyl's time goes on get-by-pk, count and 100 rows with a datetime, on each database.

``python -m benchmarks.profile_vinyl [--db postgresql,mysql] [--n 3000]``
(``make bench-profile``) prints, per database and workload:

1. the per-query cost split, in µs per op: baselines timed on their own
   (the driver alone and SQLAlchemy's ``exec_driver_sql`` on a held
   connection, an empty ``run_sync``), then the whole
   ``await Model.vinyl.get(...)`` / ``.count()`` call with its layers timed
   from inside (pool checkout + BEGIN, COMMIT + checkin, the ``run_sync``
   bridge, Django's QuerySet machinery, compile, cursor wrapper, execute,
   row -> instance); the instrumentation adds ~1 µs per timed call;
2. the top functions by cumulative time under cProfile;
3. with ``--py-spy``, the top functions by inclusive samples of py-spy
   (sampling, so it sees through the greenlet switches that cProfile's
   call/return accounting can blur).

Unlike the benchmark itself, this script reaches into vinyl's internals
(``vinyl.engine.statements``) to time the layers apart; it may need updating when
they change.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any, Awaitable, Callable

from benchmarks.config import DATABASES

REPEATS = 5


async def _per_op(fn: Callable[[int], Awaitable[Any]], n: int) -> float:
    """Median µs per call of ``fn(i)`` over ``REPEATS`` runs of ``n`` calls."""
    for i in range(min(200, n)):
        await fn(i)
    runs = []
    for r in range(REPEATS):
        t0 = time.perf_counter()
        for i in range(n):
            await fn(r * n + i)
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


def _per_op_sync(fn: Callable[[int], Any], n: int) -> float:
    for i in range(min(200, n)):
        fn(i)
    runs = []
    for r in range(REPEATS):
        t0 = time.perf_counter()
        for i in range(n):
            fn(r * n + i)
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


def _key(i: int, authors: int) -> int:
    return 1 + (i * 7919) % (authors - 1)


class Timers:
    """Wall time spent inside chosen functions, summed (inclusive)."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attr: str, label: str, *, kind: str = "plain") -> None:
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        total = self.total
        perf = time.perf_counter
        if kind == "async":
            async def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = perf()
                try:
                    return await original(*args, **kwargs)
                finally:
                    total[label] += perf() - t0
            replacement: Any = timed
        elif kind == "classmethod":
            func = original.__func__

            def timed_cm(*args: Any, **kwargs: Any) -> Any:
                t0 = perf()
                try:
                    return func(*args, **kwargs)
                finally:
                    total[label] += perf() - t0
            replacement = classmethod(timed_cm)
        else:
            def timed_plain(*args: Any, **kwargs: Any) -> Any:
                t0 = perf()
                try:
                    return original(*args, **kwargs)
                finally:
                    total[label] += perf() - t0
            replacement = timed_plain
        setattr(owner, attr, replacement)
        self._undo.append(lambda: setattr(owner, attr, original))

    def undo(self) -> None:
        for fn in reversed(self._undo):
            fn()
        self._undo.clear()


async def split(db: str, n: int) -> dict[str, dict[str, float]]:
    """Split one get-by-pk and one count into their layers (µs per op)."""
    from benchmarks.benchapp.models import Author, Book
    from vinyl.engine import statements as scope_mod  # the pooled statement path
    from vinyl.engine.engines import get_engine
    from vinyl.translate.placeholders import format_to_numeric_dollar

    alias = "vinyl_default"
    authors = await Author.vinyl.count()
    calls = {
        "get": lambda i: Author.vinyl.get(pk=_key(i, authors)),
        "count": lambda i: Book.vinyl.filter(author_id=_key(i, authors)).count(),
        # 100 rows of a model with a datetime (Django's converter on MySQL).
        "authors100": lambda i: Author.vinyl.filter(id__gte=_key(i, authors)).order_by("id")[:100],
    }
    sqls = {
        "get": "SELECT id, name, age, email, joined, rating FROM benchapp_author WHERE id = %s LIMIT 21",
        "authors100": "SELECT id, name, age, email, joined, rating FROM benchapp_author WHERE id >= %s ORDER BY id LIMIT 100",
        "count": "SELECT COUNT(*) AS __count FROM benchapp_book WHERE author_id = %s",
    }
    out: dict[str, dict[str, float]] = {}
    engine = get_engine(alias)
    for name, call in calls.items():
        parts: dict[str, float] = {}
        sql = sqls[name]
        # Baselines on one held connection: the driver alone, then SQLAlchemy's adapter.
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if db == "postgresql":
                drv_sql = format_to_numeric_dollar(sql, (1,))
                parts["baseline: driver alone, held connection"] = await _per_op(
                    lambda i: driver.fetch(drv_sql, _key(i, authors)), n)
            else:
                drv_sql = sql

                async def mysql_exec(i: int) -> Any:
                    async with driver.cursor() as cur:
                        await cur.execute(drv_sql, (_key(i, authors),))
                        return await cur.fetchall()

                parts["baseline: driver alone, held connection"] = await _per_op(mysql_exec, n)
            await conn.commit()
            parts["baseline: SQLAlchemy exec_driver_sql, held connection"] = await _per_op(
                lambda i: _sa_all(conn, drv_sql, (_key(i, authors),)), n)
            await conn.rollback()
        parts["baseline: vinyl's own CPU (driver answer replaced by a stored one)"] = await _own_cpu(call, n)

        # The whole call, with its layers timed from inside.
        await _per_op(call, 200)
        timers = Timers()
        from vinyl.engine.engines import engine_entry

        timers.wrap(scope_mod, "take_idle", "take")
        timers.wrap(scope_mod, "pooled_in_turn", "pooled", kind="async")
        timers.wrap(scope_mod, "_give_back_now", "give back")
        # statements.fetch awaits the backend's fetch itself (no _run_on_driver on its usual path).
        timers.wrap(engine_entry(alias).config, "fetch", "driver", kind="async")
        try:
            t0 = time.perf_counter()
            for i in range(n):
                await call(i)
            total = (time.perf_counter() - t0) / n * 1e6
        finally:
            timers.undo()
        t = {k: v / n * 1e6 for k, v in timers.total.items()}
        split_parts = {
            "connection: kept from this loop step, or pool checkout": t.get("take", 0.0) + t.get("pooled", 0.0),
            "connection: kept for the step, or pool checkin": t.get("give back", 0.0),
            "statement on the driver (send, wait, rows)": t.get("driver", 0.0),
        }
        split_parts["rest: manager, QuerySet recipe, plan lookup, parameters, rows -> instance, asyncio"] = total - sum(split_parts.values())
        parts.update({"split: " + k: v for k, v in split_parts.items()})
        parts["= whole call (instrumented)"] = total
        parts["= whole call (plain)"] = await _per_op(call, n)
        out[name] = parts
    # The pool belongs to this event loop: close it before the loop ends.
    import vinyl

    await vinyl.dispose()
    return out


async def _own_cpu(call: Callable[[int], Awaitable[Any]], n: int) -> float:
    """µs per call with every statement answered from a store, no I/O."""
    from vinyl.engine.engines import engine_entry

    config = engine_entry("vinyl_default").config
    real = config.fetch
    answers: dict[str, Any] = {}

    async def stored(driver: Any, sql: str, params: tuple) -> Any:
        if sql not in answers:  # one answer per statement: the rows' shape is what counts
            answers[sql] = await real(driver, sql, params)
        return answers[sql]

    object.__setattr__(config, "fetch", stored)
    try:
        return await _per_op(call, n)
    finally:
        object.__setattr__(config, "fetch", real)


async def _sa_all(conn: Any, sql: str, params: tuple) -> Any:
    return (await conn.exec_driver_sql(sql, params)).all()


def _noop() -> None:
    return None


async def _loop(workload: str, n: int) -> None:
    from benchmarks.benchapp.models import Author, Book

    authors = await Author.vinyl.count()
    if workload == "get":
        for i in range(n):
            await Author.vinyl.get(pk=_key(i, authors))
    elif workload == "authors100":
        for i in range(n):
            await Author.vinyl.filter(id__gte=_key(i, authors)).order_by("id")[:100]
    else:
        for i in range(n):
            await Book.vinyl.filter(author_id=_key(i, authors)).count()


async def _warm_then_loop(workload: str, n: int) -> None:
    """The py-spy target: connect and import outside ``_loop``, then loop."""
    from benchmarks.benchapp.models import Author, Book

    await Author.vinyl.get(pk=1)
    await Book.vinyl.filter(author_id=1).count()
    await _loop(workload, n)


def cprofile(workload: str, n: int, top: int) -> str:
    prof = cProfile.Profile()

    async def profiled() -> None:
        import vinyl

        await _loop(workload, 200)  # warm: connect, server facts
        prof.enable()
        await _loop(workload, n)
        prof.disable()
        await vinyl.dispose()

    asyncio.run(profiled())
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats(top)
    text = buf.getvalue()
    return text[text.find("   ncalls"):]


def pyspy(db: str, workload: str, n: int, top: int) -> str:
    exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(exe):
        return "py-spy is not installed (pip install py-spy)"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "stacks.txt")
        cmd = [exe, "record", "--format", "raw", "--rate", "500", "-o", out, "--",
               sys.executable, "-m", "benchmarks.profile_vinyl", "--loop", workload, "--n", str(n), "--db", db]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BENCH_DB": db})
        if proc.returncode != 0 or not os.path.exists(out):
            return f"py-spy failed: {proc.stderr.strip()[-500:]}"
        inclusive: Counter[str] = Counter()
        total = 0
        with open(out) as f:
            for line in f:
                stack, _, count = line.rstrip().rpartition(" ")
                frames = {_short(frame) for frame in stack.split(";")}
                # Leave out interpreter start, imports and django.setup(). Code
                # running inside a greenlet (Django, in the bridge) is sampled
                # as a stack of its own, not under _loop: keep those too.
                if any(fr.startswith(_STARTUP) for fr in frames):
                    continue
                c = int(count)
                total += c
                for frame in frames:
                    inclusive[frame] += c
    if not total:
        return "py-spy recorded no sample of the measured loop"
    # Frames on every sample (the runner, the event loop) say nothing.
    ranked = [(name, c) for name, c in inclusive.most_common() if c < total * 0.98][:top]
    lines = [f"{100 * c / total:5.1f}%  {name}" for name, c in ranked]
    return (
        f"{total} samples after start-up (CPU; frames run in a greenlet are their own stacks); "
        f"inclusive share per function:\n" + "\n".join(lines)
    )


_STARTUP = ("_find_and_load (", "setup (django/__init__.py)")


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (pkg/file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    path = path.split("site-packages/")[-1]
    if "/vinyl/" in path:
        path = "vinyl/" + path.split("/vinyl/", 1)[1]
    if "/benchmarks/" in path:
        path = "benchmarks/" + path.split("/benchmarks/", 1)[1]
    return f"{name} ({path})"


def one_db(db: str, n: int, top: int, use_pyspy: bool) -> None:
    os.environ["BENCH_DB"] = db
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    print(f"=== {db}: per-query cost split (µs per op, median of {REPEATS} x {n}) ===")
    parts = asyncio.run(split(db, n))
    for workload, p in parts.items():
        print(f"--- {workload}")
        for k, v in p.items():
            print(f"  {v:8.1f} µs  {k}")
    for workload in ("get", "count", "authors100"):
        print(f"\n=== {db}: cProfile of {n} x {workload}, top {top} by cumulative time ===")
        print(cprofile(workload, n, top))
        if use_pyspy:
            print(f"=== {db}: py-spy of {n * 3} x {workload} ===")
            print(pyspy(db, workload, n * 3, top))
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=",".join(DATABASES))
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--py-spy", action="store_true", dest="pyspy")
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dbs = [d for d in args.db.split(",") if d]
    if args.loop:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
        import django

        django.setup()
        asyncio.run(_warm_then_loop(args.loop, args.n))
        return
    if len(dbs) > 1:
        # One process per database: Django settings are per process.
        for db in dbs:
            subprocess.run([sys.executable, "-m", "benchmarks.profile_vinyl", "--db", db, "--n", str(args.n),
                            "--top", str(args.top)] + ["--py-spy"] * args.pyspy, check=True)
        return
    one_db(dbs[0], args.n, args.top, args.pyspy)


if __name__ == "__main__":
    main()
