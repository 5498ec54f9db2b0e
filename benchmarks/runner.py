"""Measure every system on one database; write the samples as JSON.

Run by ``python -m benchmarks`` once per database, in its own process::

    python -m benchmarks.runner --db postgresql --out results/postgresql.json [--quick]

Repetitions are interleaved: repetition ``r`` runs each workload on every
system (in an order rotated by ``r``) before repetition ``r + 1`` starts, so
a slow minute of the machine hits all systems alike. The op count of a cell
is calibrated once per (workload, system) to last about ``cell_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
import traceback
from importlib import metadata
from typing import Any

from benchmarks.config import LABELS as DB_LABELS
from benchmarks.config import scale as get_scale
from benchmarks.workloads import CHECKED, CONCURRENT, INSERTS, OPS, Keys


#: The event loops a run can use (``--loop``).
LOOPS = ("asyncio", "uvloop")


def loop_factory(name: str) -> Any:
    """The ``asyncio.Runner`` loop factory of ``name`` (None: asyncio's own loop)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def loop_label(name: str) -> str:
    """``name`` with its version, for the report (asyncio: Python's)."""
    if name == "uvloop":
        return f"uvloop {metadata.version('uvloop')}"
    return "asyncio"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("django", "sqlalchemy", "asyncpg", "asyncmy", "psycopg", "pymysql", "mysqlclient", "tortoise-orm", "vinyl"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def describe(exc: BaseException) -> str:
    """The exception, and the innermost frame outside the harness that raised it."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(here)]
    where = ""
    if frames:
        f = frames[-1]
        path = f.filename.split("site-packages/")[-1]
        path = os.path.relpath(path, root) if path.startswith(root) else path
        where = f" (raised in {f.name}() at {path}:{f.lineno})"
    text = str(exc).strip()
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


class Cell:
    """The samples of one (workload, system)."""

    def __init__(self) -> None:
        self.n = 0
        self.samples: list[float] = []
        self.error: str | None = None

    def as_json(self) -> dict[str, Any]:
        med = statistics.median(self.samples) if self.samples else None
        return {"n": self.n, "samples": self.samples, "median": med, "error": self.error}


async def _timed(system: Any, workload: str, n: int, start: int) -> float:
    """Run ``n`` ops; return the seconds they took."""
    if workload == CONCURRENT[0]:
        t0 = time.perf_counter()
        await system.concurrent(n, start)
        return time.perf_counter() - t0
    t0 = time.perf_counter()
    await system.run_ops(workload, n, start)
    return time.perf_counter() - t0


async def _calibrate(system: Any, workload: str, target: float, unit: int) -> int:
    """Warm up, then return an op count that lasts about ``target`` seconds."""
    n = unit
    await _timed(system, workload, n, 900_000)
    while True:
        dt = await _timed(system, workload, n, 900_000 + n)
        if dt >= target / 4 or n >= 1_000_000:
            break
        n *= 2
    per_op = dt / n
    return max(unit, int(round(target / per_op / unit)) * unit)


def row_ids(rows: Any) -> list[Any]:
    """The sorted ids of a list of rows: model instances, SQLAlchemy rows or driver tuples (id first)."""
    return sorted(r.id if hasattr(r, "id") else r[0] for r in rows)


async def check_answers(active: dict[str, Any], cells: dict[str, dict[str, "Cell"]], ops: int = 3) -> None:
    """Ops ``0..ops-1`` of each ``CHECKED`` workload return the same rows on
    every system (the raw driver's): a system that answers otherwise, or
    fails, has an error in its cell instead of a measure."""
    for workload in CHECKED:
        by = cells.get(workload, {})
        for i in range(ops):
            answers: dict[str, list[Any]] = {}
            for key, cell in by.items():
                if cell.error is None:
                    try:
                        answers[key] = row_ids(await active[key].answer(workload, i))
                    except Exception as exc:
                        cell.error = describe(exc)
            reference = answers.get("raw", next(iter(answers.values()), []))
            for key, ids in answers.items():
                if ids != reference:
                    by[key].error = f"op {i} returned other rows than the raw driver ({len(ids)} rows, raw {len(reference)})"
                    log(f"ERROR {workload} / {key}: {by[key].error}")


async def measure(db: str, quick: bool, system_keys: list[str], workloads: list[str]) -> dict[str, Any]:
    from benchmarks import systems as registry
    from benchmarks.data import Admin

    sc = get_scale(quick)
    keys = Keys(sc.authors, sc.books)
    admin = Admin(db)
    await admin.open()
    active: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for key in system_keys:
        system = registry.load(key)(db, keys, sc.pool_size, sc.tasks)
        try:
            await system.setup()
        except Exception as exc:  # a system that cannot start is reported, not fatal
            log(f"[{db}] {key}: setup failed: {exc!r}")
            notes[key] = f"setup failed: {exc!r}"
            continue
        active[key] = system
        if system.note:
            notes[key] = system.note

    op_keys = [k for k, _ in OPS if k in workloads]
    if CONCURRENT[0] in workloads:
        op_keys.append(CONCURRENT[0])
    # A system without a workload's method has no cell there ("–" in the report).
    cells: dict[str, dict[str, Cell]] = {
        w: {k: Cell() for k, s in active.items() if w == CONCURRENT[0] or hasattr(s, w)} for w in op_keys
    }
    order = list(active)
    await check_answers(active, cells)

    async def run_cell(workload: str, key: str, rep: int) -> None:
        cell = cells[workload].get(key)
        if cell is None or cell.error is not None:
            return
        system = active[key]
        unit = sc.tasks if workload == CONCURRENT[0] else 1
        try:
            gc.collect()
            if cell.n == 0:
                cell.n = await _calibrate(system, workload, sc.cell_seconds, unit)
                if workload in INSERTS:
                    await admin.empty_entries()
                gc.collect()
            dt = await _timed(system, workload, cell.n, rep * 10_007)
            cell.samples.append(cell.n / dt)
        except Exception as exc:
            cell.error = describe(exc)
            log(f"[{db}] ERROR {workload} / {key}: {cell.error}")
            log(traceback.format_exc())
        finally:
            if workload in INSERTS:
                await admin.empty_entries()

    for rep in range(sc.reps):
        t0 = time.perf_counter()
        rotated = order[rep % len(order):] + order[: rep % len(order)]
        for workload in op_keys:
            for key in rotated:
                await run_cell(workload, key, rep)
        log(f"[{db}] repetition {rep + 1}/{sc.reps} done in {time.perf_counter() - t0:.1f} s")

    stream: dict[str, dict[str, Any]] = {}
    if "stream" in workloads:
        stream = await _measure_stream(db, sc, active, order)

    for system in active.values():
        try:
            await system.teardown()
        except Exception as exc:
            log(f"[{db}] {system.key}: teardown failed: {exc!r}")
    await admin.close()
    return {
        "results": {w: {k: c.as_json() for k, c in by.items()} for w, by in cells.items()},
        "stream": stream,
        "notes": notes,
    }


async def _measure_stream(db: str, sc: Any, active: dict[str, Any], order: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {k: {"rows": sc.stream_rows, "samples": [], "peak_mb": None, "error": None} for k in active}
    for rep in range(sc.stream_reps):
        rotated = order[rep % len(order):] + order[: rep % len(order)]
        for key in rotated:
            cell = out[key]
            if cell["error"]:
                continue
            gc.collect()
            try:
                t0 = time.perf_counter()
                n = await active[key].stream()
                dt = time.perf_counter() - t0
                if n != sc.stream_rows:
                    raise RuntimeError(f"streamed {n} rows, expected {sc.stream_rows}")
                cell["samples"].append(n / dt)
                log(f"[{db}] stream {key}: {n / dt:,.0f} rows/s")
            except Exception as exc:
                cell["error"] = describe(exc)
                log(f"[{db}] ERROR stream / {key}: {cell['error']}")
    # Peak memory in a separate pass: tracemalloc slows every allocation.
    for key in order:
        cell = out[key]
        if cell["error"]:
            continue
        gc.collect()
        tracemalloc.start()
        try:
            await active[key].stream()
            cell["peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
            log(f"[{db}] stream {key}: peak {cell['peak_mb']:.1f} MB")
        except Exception as exc:
            cell["error"] = describe(exc)
        finally:
            tracemalloc.stop()
        cell["median"] = statistics.median(cell["samples"]) if cell["samples"] else None
    return out


def compile_sources() -> None:
    """Byte-compile vinyl and the benchmark's own modules before the cold starts.

    The installed systems (Django, SQLAlchemy, Tortoise, the drivers) were
    byte-compiled when pip installed them; vinyl in an editable install and
    ``benchmarks/`` are source trees, which an interpreter run with
    ``PYTHONDONTWRITEBYTECODE`` (or from a read-only tree) compiles again at
    every cold start: a cost no installed vinyl pays, and no other system.
    """
    import compileall
    import importlib.util
    from pathlib import Path

    for package in ("vinyl", "benchmarks"):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(Path(location), quiet=1)


def measure_cold(db: str, sc: Any, system_keys: list[str]) -> dict[str, dict[str, Any]]:
    """Run each system's first query in a fresh interpreter, ``cold_reps`` times."""
    compile_sources()
    out: dict[str, dict[str, Any]] = {k: {"samples_ms": [], "error": None} for k in system_keys}
    env = {**os.environ, "BENCH_DB": db}
    for rep in range(sc.cold_reps):
        rotated = system_keys[rep % len(system_keys):] + system_keys[: rep % len(system_keys)]
        for key in rotated:
            cell = out[key]
            if cell["error"]:
                continue
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.cold", key], env=env, capture_output=True, text=True, timeout=120
            )
            if proc.returncode != 0:
                cell["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                log(f"[{db}] ERROR cold / {key}: {cell['error']}")
                continue
            cell["samples_ms"].append(json.loads(proc.stdout.strip().splitlines()[-1])["total_ms"])
    for cell in out.values():
        cell["median_ms"] = statistics.median(cell["samples_ms"]) if cell["samples_ms"] else None
    return out


def main(argv: list[str] | None = None) -> None:
    from benchmarks.systems import SYSTEMS
    from benchmarks.workloads import ALL_KEYS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, choices=sorted(DB_LABELS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reload", action="store_true", help="drop and reload the data set")
    parser.add_argument("--systems", default=",".join(k for k, _, _ in SYSTEMS))
    parser.add_argument("--workloads", default=",".join(ALL_KEYS))
    parser.add_argument("--loop", default="asyncio", choices=LOOPS, help="the event loop the async systems run on")
    args = parser.parse_args(argv)

    os.environ["BENCH_DB"] = args.db
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from django.db import connections

    from benchmarks.data import prepare

    sc = get_scale(args.quick)
    system_keys = [k for k in args.systems.split(",") if k]
    workloads = [w for w in args.workloads.split(",") if w]
    t0 = time.perf_counter()
    prepare(args.db, sc, reload=args.reload, log=log)
    server_version = _server_version()
    connections.close_all()
    log(f"[{args.db}] data ready in {time.perf_counter() - t0:.1f} s; measuring {', '.join(system_keys)}")

    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        result = runner.run(measure(args.db, args.quick, system_keys, workloads))
    result["cold"] = measure_cold(args.db, sc, system_keys) if "cold" in workloads else {}
    result["loop"] = loop_label(args.loop)
    result.update(
        db=args.db,
        server=server_version,
        quick=args.quick,
        scale=sc.__dict__,
        versions=_versions(),
        machine={"cpus": os.cpu_count(), "platform": platform.platform()},
        seconds=time.perf_counter() - t0,
    )
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"[{args.db}] done in {result['seconds']:.0f} s")


def _server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()" if connection.vendor == "mysql" else "SHOW server_version")
        return str(cursor.fetchone()[0])


if __name__ == "__main__":
    main()
