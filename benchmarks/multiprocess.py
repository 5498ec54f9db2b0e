"""Many processes against one PostgreSQL server: direct, through pgbouncer, with a replica.

::

    python -m benchmarks.multiprocess                  # 4 processes x 8 tasks, 5 s per setup
    python -m benchmarks.multiprocess --workers 2 --tasks 16 --seconds 10

Not a test: it starts its own servers (a primary and a streaming replica,
``tests/scale/servers.py``, and pgbouncer in transaction mode in front of
the primary, all on free ports in temp dirs), then runs ``--workers``
processes, each with its own event loop and vinyl pool and ``--tasks``
concurrent tasks, for ``--seconds`` per setup:

- ``direct``: every process on the primary (pool of ``--pool`` each);
- ``pgbouncer``: every process through pgbouncer, in transaction mode
  (``prepared_statements: False``) and in session mode, pgbouncer's server
  pool as large as all the processes' pools;
- ``primary+replica``: a router sends reads to the replica, writes to the
  primary.

The workload: 90% ``get(pk=...)`` of a random account, 10% ``update`` of its
balance. It also measures the replica lag: the time from a committed write
on the primary until a vinyl read on the replica sees it. The report goes
to stdout and ``benchmarks/results/multiprocess.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ACCOUNTS = 1000


def _setup_django(aliases: dict[str, dict[str, Any]]) -> None:
    """Django with the test settings, and the aliases of this run's servers."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connections

    for alias, entry in aliases.items():
        template = connections.settings["sync_postgresql" if entry.pop("sync", False) else "vinyl_postgresql"]
        connections.settings[alias] = {**template, **entry}


class ReplicaRouter:
    """Reads on the replica, writes on the primary (vinyl's aliases only)."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "bench_replica" if hints.get("vinyl") else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "bench_primary" if hints.get("vinyl") else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True


def _worker(aliases: dict, read_alias: str | None, write_alias: str, tasks: int, seconds: float, queue: Any) -> None:
    _setup_django(aliases)
    from django.test import override_settings

    import vinyl
    from tests.scaleapp.models import Account

    async def main() -> tuple[int, int]:
        stop = time.monotonic() + seconds
        done = [0, 0]

        async def task(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop:
                pk = rng.randint(1, ACCOUNTS)
                if rng.random() < 0.9:
                    manager = Account.vinyl if read_alias is None else Account.vinyl.using(read_alias)
                    await manager.get(pk=pk)
                    done[0] += 1
                else:
                    manager = Account.vinyl if read_alias is None else Account.vinyl.using(write_alias)
                    await manager.filter(pk=pk).update(balance=rng.randint(0, 100))
                    done[1] += 1

        await asyncio.gather(*(task(os.getpid() * 100 + i) for i in range(tasks)))
        await vinyl.dispose()
        return done[0], done[1]

    routers = [ReplicaRouter()] if read_alias is None else []
    try:
        with override_settings(DATABASE_ROUTERS=routers):
            reads, writes = asyncio.run(main())
    except Exception as exc:  # reported in the table, row by row
        queue.put((type(exc).__name__, str(exc).splitlines()[0][:200]))
        raise
    queue.put((reads, writes))


def run_setup(name: str, aliases: dict, read: str | None, write: str, args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=_worker, args=({k: dict(v) for k, v in aliases.items()}, read, write, args.tasks, args.seconds, queue))
        for _ in range(args.workers)
    ]  # fmt: skip
    for process in processes:
        process.start()
    results = [queue.get(timeout=args.seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    failed = [r for r in results if isinstance(r[0], str)]
    if failed:
        return {"setup": name, "error": f"{failed[0][0]}: {failed[0][1]}"}
    reads = sum(r for r, _ in results)
    writes = sum(w for _, w in results)
    return {"setup": name, "ops": (reads + writes) / args.seconds, "reads": reads, "writes": writes}


def start_pgbouncer(primary_port: int, database: str, pool: int, mode: str) -> tuple[subprocess.Popen, int, Path]:
    from tests.scale.servers import _as_user, _give_to, _wait_for_port, free_port

    root = Path(tempfile.mkdtemp(prefix="vinyl-pgbouncer-"))
    _give_to(str(root), "postgres")
    port = free_port()
    (root / "users.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{database} = host=127.0.0.1 port={primary_port} dbname={database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root / 'users.txt'}\n"
        f"pool_mode = {mode}\ndefault_pool_size = {pool}\nmax_client_conn = 1000\n"
        f"logfile = {root / 'pgbouncer.log'}\n"
    )
    for path in root.iterdir():
        _give_to(str(path), "postgres")
    process = subprocess.Popen(
        [*_as_user("postgres"), shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_port(port, "pgbouncer", root / "pgbouncer.log", process)
    return process, port, root


async def measure_lag(samples: int, primary: str = "bench_primary", replica: str = "bench_replica") -> list[float]:
    """Seconds from a committed write on the primary until vinyl reads it on the replica."""
    import vinyl
    from tests.scaleapp.models import Account

    lags = []
    for value in range(1, samples + 1):
        await Account.vinyl.using(primary).filter(pk=1).update(balance=-value)
        started = time.perf_counter()
        while (await Account.vinyl.using(replica).get(pk=1)).balance != -value:
            pass
        lags.append(time.perf_counter() - started)
    await vinyl.dispose()
    return lags


def mariadb_lag(samples: int) -> list[float]:
    """The same lag on a MariaDB primary and binlog replica (GTID)."""
    from django.db import connections

    from tests.scale.servers import MariaDBReplicaSet
    from tests.scaleapp.models import Account, Branch

    servers = MariaDBReplicaSet("bench_scale").start()
    try:
        for alias, port, user in [
            ("bench_my_sync", servers.primary.port, "root"),
            ("bench_my_primary", servers.primary.port, servers.user),
            ("bench_my_replica", servers.replica.port, servers.user),
        ]:
            template = connections.settings["sync_mysql" if alias.endswith("sync") else "vinyl_mysql"]
            connections.settings[alias] = {**template, "NAME": "bench_scale", "PORT": str(port), "USER": user, "PASSWORD": ""}
        with connections["bench_my_sync"].schema_editor() as editor:
            editor.create_model(Branch)
            editor.create_model(Account)
        Account.objects.using("bench_my_sync").create(pk=1, owner="1", balance=0)
        connections["bench_my_sync"].close()
        return asyncio.run(measure_lag(samples, "bench_my_primary", "bench_my_replica"))
    finally:
        servers.stop()


def _lag_line(name: str, lags: list[float]) -> str:
    return (
        f"- {name}: median {statistics.median(lags) * 1000:.2f} ms, "
        f"p95 {sorted(lags)[int(len(lags) * 0.95) - 1] * 1000:.2f} ms, max {max(lags) * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument("--tasks", type=int, default=8, help="concurrent tasks per process (default 8)")
    parser.add_argument("--seconds", type=float, default=5.0, help="run time per setup (default 5)")
    parser.add_argument("--pool", type=int, default=5, help="vinyl pool_size per process, and pgbouncer's server pool")
    parser.add_argument("--lag-samples", type=int, default=200, help="writes timed until the replica has them")
    args = parser.parse_args()

    from tests.scale.servers import PostgresReplicaSet

    servers = PostgresReplicaSet("bench_scale").start()
    bouncers: list[tuple[subprocess.Popen, Path]] = []
    try:
        pool = {"pool": {"pool_size": args.pool, "max_overflow": 0}}
        aliases = {
            "bench_sync": {"sync": True, "NAME": "bench_scale", "PORT": str(servers.primary.port), "USER": "postgres"},
            "bench_primary": {"NAME": "bench_scale", "PORT": str(servers.primary.port), "USER": "postgres", "OPTIONS": pool},
            "bench_replica": {"NAME": "bench_scale", "PORT": str(servers.replica.port), "USER": "postgres", "OPTIONS": pool},
        }  # fmt: skip
        for mode in ("transaction", "session"):
            process, port, root = start_pgbouncer(servers.primary.port, "bench_scale", args.pool * args.workers, mode)
            bouncers.append((process, root))
            aliases[f"bench_bouncer_{mode}"] = {
                "NAME": "bench_scale", "PORT": str(port), "USER": "postgres",
                "OPTIONS": {**pool, "prepared_statements": mode == "session"},
            }  # fmt: skip
        _setup_django({k: dict(v) for k, v in aliases.items()})
        from django.db import connections

        from tests.scaleapp.models import Account, Branch

        with connections["bench_sync"].schema_editor() as editor:
            editor.create_model(Branch)
            editor.create_model(Account)
        Account.objects.using("bench_sync").bulk_create(
            [Account(pk=i, owner=str(i), balance=0) for i in range(1, ACCOUNTS + 1)]
        )
        connections["bench_sync"].close()

        rows = [
            run_setup("direct (primary)", aliases, "bench_primary", "bench_primary", args),
            run_setup("pgbouncer, transaction mode", aliases, "bench_bouncer_transaction", "bench_bouncer_transaction", args),
            run_setup("pgbouncer, session mode", aliases, "bench_bouncer_session", "bench_bouncer_session", args),
            run_setup("primary + replica (router)", aliases, None, "bench_primary", args),
        ]
        lags = asyncio.run(measure_lag(args.lag_samples))
        mariadb_lags = mariadb_lag(args.lag_samples)
    finally:
        for process, root in bouncers:
            process.terminate()
            process.wait(timeout=30)
            shutil.rmtree(root, ignore_errors=True)
        servers.stop()

    lines = [
        "# Many processes against one PostgreSQL server",
        "",
        f"{args.workers} processes x {args.tasks} tasks, vinyl pool_size={args.pool} per process, "
        f"{args.seconds:g} s per setup; 90% get(pk) / 10% update; {os.cpu_count()} CPUs (shared).",
        "",
        "| setup | ops/s | reads | writes |",
        "|---|---:|---:|---:|",
        *(
            f"| {r['setup']} | {r['ops']:,.0f} | {r['reads']:,} | {r['writes']:,} |"
            if "error" not in r
            else f"| {r['setup']} | failed: {r['error']} | | |"
            for r in rows
        ),
        "",
        f"Replica lag seen by vinyl ({len(lags)} writes each, from the commit on the primary until a "
        f"vinyl read on the replica returns the new value):",
        "",
        _lag_line("PostgreSQL streaming replica", lags),
        _lag_line("MariaDB binlog replica (GTID, row format)", mariadb_lags),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "multiprocess.md").write_text(report)


if __name__ == "__main__":
    main()
