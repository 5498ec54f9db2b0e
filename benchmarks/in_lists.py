"""Server time of an integer ``__in`` list on PostgreSQL, in three forms.

::

    python -m benchmarks.in_lists                  # lengths 1, 10, 100, 1000
    python -m benchmarks.in_lists --sizes 100 --reps 15

The forms of ``Book.filter(..., pages__in=[...])`` (the SQL is taken from
the real code: Django compiles, vinyl converts):

- ``array``: vinyl's, one parameter, the array's text cast once per
  execution: ``pages = ANY((SELECT $3::text::int4[])::int4[])``;
- ``params``: one parameter per value, ``pages IN ($3, ..., $n+2)`` (vinyl's
  placeholders before the array rewrite);
- ``binary``: the raw driver's, the array as the parameter: ``pages = ANY($3::int4[])``;
- ``literals``: Django's on psycopg, the values in the statement text.

Two scans: ``window``, the books of 500 authors (``in100``: a bitmap scan of
2,500 rows by the author index), and ``table``, all 50,000 books (a
sequential scan). ``array`` and ``params`` run as prepared statements
(``PREPARE``, then ``EXPLAIN (ANALYZE) EXECUTE``, the plan cache asyncpg's
statements use) under ``plan_cache_mode`` ``force_custom_plan`` and
``force_generic_plan``; ``auto`` says which plan the server keeps after its
five custom ones. ``literals`` is planned at every execution, as psycopg
sends it. Server time is planning plus execution, the median of ``--reps``.

It also counts the statements each form prepares for a prefetch of a
reverse FK whose list length varies (1 to 1,000 owners): each distinct text
is one prepared statement in a connection's cache (100 by default).
Not a test; no timing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
from typing import Any

SIZES = (1, 10, 100, 1000)
#: A generic plan keeps the statement's parameters ($1...) in its conditions.
_PARAMETER = re.compile(r"\$[1-9]")
#: vinyl's array parameter cast in a scalar subquery.
_BARE = re.compile(r"\(\(SELECT (\$\d+)::text::(\w+)\[\]\)::\w+\[\]\)")


def page_list(n: int) -> list[int]:
    """``n`` distinct page counts, every 25th from 107 (20 of them some book's)."""
    return [107 + 25 * j for j in range(n)]


def forms(vqs: Any) -> dict[str, tuple[str, list[Any]]]:
    """The statement of ``vqs`` (a vinyl QuerySet) as each form sends it: (sql, parameters)."""
    from django.db import connection

    from benchmarks.plan_cost import _django_qs
    from vinyl.postgresql_backend.base import PostgreSQLCursor
    from vinyl.postgresql_backend.manyparams import as_arrays

    qs = _django_qs(vqs)  # compiled on vinyl's alias, as vinyl compiles it
    sql, params = qs.query.get_compiler(using=vqs.db).as_sql()
    numbered, values = PostgreSQLCursor.prepare(sql, params)
    arrays = as_arrays(numbered, values)
    django_sql, django_params = qs.query.get_compiler(using="default").as_sql()
    with connection.cursor() as cursor:
        literal = cursor.cursor.mogrify(django_sql, django_params)  # psycopg's ClientCursor: Django's statement
    out = {"array": (numbered, list(values)), "params": (numbered, list(values)), "literals": (literal, [])}
    if arrays is not None:
        out["array"] = (arrays[0], list(arrays[1]))
    # The raw driver's form: the array itself as the parameter (its text, in EXECUTE).
    out["binary"] = (_BARE.sub(r"(\1::\2[])", out["array"][0]), out["array"][1])
    return out


def _literal(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


async def _explain(conn: Any, sql: str) -> tuple[float, bool]:
    plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) {sql}"))[0]
    generic = bool(_PARAMETER.search(json.dumps(plan["Plan"])))
    return plan["Planning Time"] + plan["Execution Time"], generic


async def server_ms(conn: Any, form: str, sql: str, args: list[Any], reps: int) -> dict[str, Any]:
    """Median server ms per plan mode (``literals``: planned each time), and auto's choice."""
    if form == "literals":
        return {"custom": statistics.median([(await _explain(conn, sql))[0] for _ in range(reps)])}
    out: dict[str, Any] = {}
    execute = f"EXECUTE s({', '.join(map(_literal, args))})"
    for mode in ("force_custom_plan", "force_generic_plan", "auto"):
        await conn.execute(f"PREPARE s AS {sql}")
        await conn.execute(f"SET plan_cache_mode = {mode}")
        runs = [await _explain(conn, execute) for _ in range(max(reps, 8))]
        await conn.execute("DEALLOCATE s")
        if mode == "auto":
            out["auto"] = "generic" if runs[-1][1] else "custom"
        else:
            out[mode.split("_")[1]] = statistics.median(t for t, _ in runs[1:])
    await conn.execute("RESET plan_cache_mode")
    return out


def prepared_statements(max_owners: int) -> dict[str, int]:
    """Distinct statement texts of each form for prefetches of 1..max_owners authors' books."""
    from benchmarks.benchapp.models import Book

    texts: dict[str, set[str]] = {}
    for n in range(1, max_owners + 1):
        for form, (sql, _args) in forms(Book.vinyl.filter(author_id__in=list(range(1, n + 1)))).items():
            texts.setdefault(form, set()).add(sql)
    return {form: len(found) for form, found in texts.items()}


def statements(sizes: list[int]) -> list[tuple[str, int, dict[str, tuple[str, list[Any]]]]]:
    """(scan, n, forms) for each scan and list length."""
    from benchmarks.benchapp.models import Book

    out = []
    for scan in ("window", "table"):
        for n in sizes:
            qs = Book.vinyl.filter(pages__in=page_list(n))
            if scan == "window":
                qs = qs.filter(author_id__gte=3001, author_id__lt=3501)
            out.append((scan, n, forms(qs)))
    return out


async def measure(cases: list[tuple[str, int, dict[str, tuple[str, list[Any]]]]], reps: int) -> list[dict[str, Any]]:
    import asyncpg

    from benchmarks.config import server

    s = server("postgresql")
    conn = await asyncpg.connect(host=s["HOST"], port=int(s["PORT"]), user=s["USER"], password=s["PASSWORD"] or None, database=s["NAME"])
    rows = []
    try:
        for scan, n, by_form in cases:
            for form, (sql, args) in by_form.items():
                rows.append({"scan": scan, "n": n, "form": form, **await server_ms(conn, form, sql, args, reps)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        await conn.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| scan | n | form | custom plan ms | generic plan ms | auto keeps |", "|---|---:|---|---:|---:|---|"]
    for r in rows:
        generic = f"{r['generic']:.2f}" if "generic" in r else "–"
        lines.append(f"| {r['scan']} | {r['n']} | {r['form']} | {r['custom']:.2f} | {generic} | {r.get('auto', 'planned each time')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--prefetch-owners", type=int, default=1000)
    args = parser.parse_args()
    os.environ["BENCH_DB"] = "postgresql"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    cases = statements([int(n) for n in args.sizes.split(",")])
    rows = asyncio.run(measure(cases, args.reps))
    print(table(rows))
    counts = prepared_statements(args.prefetch_owners)
    print(f"\nprepared statements for prefetches of 1..{args.prefetch_owners} owners: "
          + ", ".join(f"{form} {count}" for form, count in counts.items()))


if __name__ == "__main__":
    main()
