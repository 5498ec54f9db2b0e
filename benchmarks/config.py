"""Where the benchmark databases are and how big the data set is.

The servers come from ``BENCH_PG_*`` / ``BENCH_MYSQL_*`` (``HOST``, ``PORT``,
``USER``, ``PASSWORD``, ``NAME``); the defaults are a local PostgreSQL and
MariaDB with a ``bench`` database on each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DATABASES = ("postgresql", "mysql")
LABELS = {"postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}


def server(db: str) -> dict[str, str]:
    """Return the connection settings of ``db`` ("postgresql" or "mysql")."""
    prefix = "BENCH_PG_" if db == "postgresql" else "BENCH_MYSQL_"
    defaults = (
        {"USER": "postgres", "PORT": "5432"} if db == "postgresql" else {"USER": "root", "PORT": "3306"}
    )
    return {
        "NAME": os.environ.get(prefix + "NAME", "bench"),
        "USER": os.environ.get(prefix + "USER", defaults["USER"]),
        "PASSWORD": os.environ.get(prefix + "PASSWORD", ""),
        "HOST": os.environ.get(prefix + "HOST", "127.0.0.1"),
        "PORT": os.environ.get(prefix + "PORT", defaults["PORT"]),
    }


@dataclass(frozen=True)
class Scale:
    """Data sizes, repetitions and time per measurement."""

    authors: int
    books: int
    stream_rows: int
    reps: int
    stream_reps: int
    cold_reps: int
    # Target seconds for one (workload, system, repetition) cell.
    cell_seconds: float
    # Pool size and number of tasks of the concurrency workload.
    pool_size: int = 10
    tasks: int = 50


FULL = Scale(authors=10_000, books=50_000, stream_rows=1_000_000, reps=7, stream_reps=3, cold_reps=3, cell_seconds=0.25)
QUICK = Scale(authors=2_000, books=10_000, stream_rows=100_000, reps=3, stream_reps=1, cold_reps=1, cell_seconds=0.06)


def scale(quick: bool) -> Scale:
    return QUICK if quick else FULL
