"""What building a plan costs, next to Django compiling the same query.

::

    python -m benchmarks.plan_cost                 # PostgreSQL and MariaDB, 2,000 and 20,000 values
    python -m benchmarks.plan_cost --db postgresql --sizes 1000,20000

For ``filter(name__in=[...])`` of N distinct strings, it times Django
building and compiling the query (``QuerySet.filter`` then
``compiler.as_sql()``) and vinyl building its plan from scratch (the
recipe's shape, Django's compilation, the compilations of the query with the
list cut to 2 and 3 values and their probes, the widened slot mapping:
``PlanCache.compile_rows``), then vinyl reusing the plan with other values
of the same shape. Nothing is sent to the database: this is CPU on
the event loop. Run by ``make bench`` after the throughput tables; not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Under PostgreSQL's 32,767 bound parameters: a statement over its backend's
# max_query_params is not planned (it runs as Django compiles it).
DEFAULT_SIZES = (2_000, 20_000)


def _django_qs(vqs):
    """The Django QuerySet vinyl compiles for ``vqs``, on vinyl's alias (as ``VinylQuerySet._rows`` makes it)."""
    qs = vqs._qs._chain()
    qs._db = vqs.db
    return qs


def _best(run, repeat: int) -> float:
    # CPU time of this process (one thread): what the event loop would spend,
    # less sensitive to other processes on the machine than the wall clock.
    times = []
    for _ in range(repeat):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def measure(sizes: list[int], repeat: int) -> list[tuple[int, float, float, float]]:
    """``(n, django_s, vinyl_plan_s, vinyl_reuse_s)`` for each size, in this process's database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from benchmarks.benchapp.models import Author
    from vinyl._vinylize import adopt_related
    from vinyl.models import vinyl_model
    from vinyl.translate.plan_cache import PlanCache
    from vinyl.translate.plans import Plan

    rows = []
    for n in sizes:
        values = [f"author-{i}" for i in range(n)]
        others = [f"writer-{i}" for i in range(n)]

        def django_compile() -> None:
            qs = Author.objects.using("vinyl_default").filter(name__in=values)
            qs.query.get_compiler(using="vinyl_default").as_sql()

        def vinyl_plan() -> None:
            vqs = Author.vinyl.filter(name__in=values)
            cache = PlanCache()
            key = (vqs.model, "rows", vqs._recipe)
            compiled = cache.compile_rows(
                key, _django_qs(vqs), vqs._values, lambda probes, short=None: vqs._probe(probes, None, vqs.db, short),
                adopt=adopt_related, vinyl_class=vinyl_model,
            )  # fmt: skip
            assert compiled is not None and type(cache.get(key)) is Plan, cache.info()
            reuse.append((cache, key))

        reuse: list = []
        django_s = _best(django_compile, repeat)
        plan_s = _best(vinyl_plan, repeat)
        cache, key = reuse[-1]

        def vinyl_reuse() -> None:
            vqs = Author.vinyl.filter(name__in=others)
            plan = cache.lookup((vqs.model, "rows", vqs._recipe))
            assert type(plan) is Plan
            plan.params(vqs._values)

        rows.append((n, django_s, plan_s, _best(vinyl_reuse, repeat)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="postgresql,mysql", help="comma-separated: postgresql,mysql")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated __in sizes")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.child:
        for n, django_s, plan_s, reuse_s in measure(sizes, args.repeat):
            print(f"{n}\t{django_s}\t{plan_s}\t{reuse_s}")
        return 0
    root = HERE.parent
    lines = [
        "| database | `__in` values | Django: build + compile | vinyl: build the plan | ÷ Django | vinyl: reuse the plan |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for db in [d for d in args.db.split(",") if d]:
        env = {**os.environ, "BENCH_DB": db, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.plan_cost", "--child", "--sizes", args.sizes, "--repeat", str(args.repeat)],
            cwd=root, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            print(f"plan cost on {db} failed (exit {proc.returncode})", file=sys.stderr)
            return proc.returncode
        for line in proc.stdout.split("\n"):
            if line.strip():
                n, django_s, plan_s, reuse_s = (float(x) for x in line.split("\t"))
                lines.append(
                    f"| {db} | {int(n):,} | {django_s * 1e3:,.1f} ms | {plan_s * 1e3:,.1f} ms | "
                    f"{plan_s / django_s:.2f}× | {reuse_s * 1e3:,.1f} ms |"
                )
    table = "\n".join(lines)
    print("## Plan cost: `filter(name__in=[...])`, CPU time of the process (best of %d)\n" % args.repeat)
    print(table)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "plan_cost.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
