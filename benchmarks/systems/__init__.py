"""One module per system under test; each defines ``System``.

A system implements every per-op workload of ``benchmarks.workloads.OPS``
as a method taking the op index ``i`` (sync methods for sync systems), plus
``concurrent(n, start)`` and ``stream(rows)``.
"""

from __future__ import annotations

import importlib

#: Column order of the tables: (key, module, column label).
SYSTEMS: list[tuple[str, str, str]] = [
    ("raw", "raw", "raw driver"),
    ("vinyl", "vinyl_sys", "vinyl"),
    ("sa_core", "sa_core", "SQLAlchemy Core async (autocommit)"),
    ("sa_orm", "sa_orm", "SQLAlchemy ORM async"),
    ("django", "django_sync", "Django sync"),
    ("django_async", "django_async", "Django `a*`"),
    ("tortoise", "tortoise_sys", "Tortoise"),
]
LABELS = {key: label for key, _, label in SYSTEMS}


def load(key: str):
    """Return the ``System`` class of ``key``."""
    module = dict((k, m) for k, m, _ in SYSTEMS)[key]
    return importlib.import_module(f"benchmarks.systems.{module}").System
