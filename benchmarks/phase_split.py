"""Where a planned read's instructions go: its phases apart, under callgrind.

``BENCH_DB=postgresql|mysql python -m benchmarks.phase_split WORKLOAD [N]``
(from a checkout, ``PYTHONPATH=$PWD``, the bench venv's python; valgrind
installed) prints, in instructions per op (deterministic, unlike time):

- ``op``: the workload's op as the benchmark runs it (``await qs``, the
  result let go at the next op);
- ``queryset``: building the QuerySet (``Model.vinyl.filter(...)...``);
- ``fetch``: its plan's statement on the driver through vinyl's engine
  (compare ``cgx.py raw WORKLOAD``: the driver alone);
- ``build``: the plan's builder on rows already fetched, the instances let
  go at once (their deallocation included, as in ``op``).

Each phase is its own run of N ops after a warm-up, its total read from
callgrind's output. Like ``profile_vinyl``, this reaches into vinyl's
internals (the plan cache, ``vinyl.engine.statements.fetch``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
from typing import Any, Callable

PHASES = ("op", "queryset", "fetch", "build")
WORKLOADS = ("filter100", "join100", "authors100", "since100")


def _querysets(keys: Any) -> dict[str, Callable[[int], Any]]:
    from benchmarks.benchapp.models import Author, Book

    return {
        "filter100": lambda i: Book.vinyl.filter(id__gte=keys.book(i), pages__gte=keys.pages(i)).order_by("id")[:100],
        "join100": lambda i: Book.vinyl.filter(id__gte=keys.book(i)).select_related("author").order_by("id")[:100],
        "authors100": lambda i: Author.vinyl.filter(id__gte=keys.author(i), rating__gte=keys.rating(i)).order_by("id")[:100],
        "since100": lambda i: Author.vinyl.filter(joined__gte=keys.since(i)).order_by("joined")[:100],
    }


def _collect(on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], capture_output=True, check=False)


async def _child(workload: str, phase: str, n: int) -> None:
    from benchmarks.systems import load
    from benchmarks.workloads import Keys
    from vinyl.engine.engines import engine_entry
    from vinyl.engine.statements import fetch
    from vinyl.translate.plan_cache import known_plan_cache

    keys = Keys(10_000, 50_000)
    system = load("vinyl")(os.environ.get("BENCH_DB", "postgresql"), keys, 10, 50)
    make = _querysets(keys)[workload]
    await system.setup()
    await system.run_ops(workload, 300, 0)
    first = make(0)
    db = first.db
    entry = engine_entry(db)
    cache = known_plan_cache(db, entry)
    plan = cache.lookup((first._model, "rows", first._recipe)) if cache is not None else None
    if plan is None or not hasattr(plan, "build"):
        raise SystemExit(f"{workload}: no plan serves it")
    querysets = [make(300 + i) for i in range(n)]
    if phase == "op":
        _collect(True)
        await system.run_ops(workload, n, 300)
    elif phase == "queryset":
        _collect(True)
        for i in range(n):
            make(300 + i)
    elif phase == "fetch":
        _collect(True)
        for qs in querysets:
            await fetch(db, plan.sql, plan.params(qs._values), entry)
    else:
        fetched = [await fetch(db, plan.sql, plan.params(qs._values), entry) for qs in querysets]
        gc.collect()
        _collect(True)
        for rows in fetched:
            plan.build(rows)
    _collect(False)
    await system.teardown()


def _measure(workload: str, phase: str, n: int) -> float:
    out = os.path.join(tempfile.mkdtemp(), "callgrind.out")
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    subprocess.run([*command, sys.executable, "-m", "benchmarks.phase_split", "--child", workload, phase, str(n)], check=True, capture_output=True)
    with open(out) as f:
        totals = [int(m.group(1)) for line in f if (m := re.match(r"totals: (\d+)", line))]
    return max(totals, default=0) / n


def main() -> None:
    if sys.argv[1] == "--child":
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
        django.setup()
        asyncio.run(_child(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    workload = sys.argv[1]
    if workload not in WORKLOADS:
        raise SystemExit(f"workload: one of {', '.join(WORKLOADS)}")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    db = os.environ.get("BENCH_DB", "postgresql")
    for phase in PHASES:
        print(f"{db} {workload} {phase}: {_measure(workload, phase, n):,.0f} Ir/op")


if __name__ == "__main__":
    main()
