"""The workloads, their labels, and the keys every system uses for op ``i``.

Every system runs op ``i`` of a workload on the same rows: the keys come
from one seeded random sequence, so no system reads a warmer part of the
tables than another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Per-op workloads, in table order: (key, label).
OPS: list[tuple[str, str]] = [
    ("get", "get one row by pk"),
    ("filter100", "100 rows, filter+order+limit"),
    ("join100", "100 rows joined with their FK (select_related)"),
    ("insert1", "insert one"),
    ("bulk1000", "bulk insert 1,000 rows"),
    ("update_f", "update 10 rows with F()"),
    ("count", "count with a filter"),
    ("update_set", "update of a filtered set (~5 rows)"),
    ("prefetch", "prefetch_related of a reverse FK, 100 rows"),
    ("txn10", "transaction of 10 statements"),
]
# Write workloads of issue 17 (kept in their own block).
OPS += [
    ("atomic_empty", "empty transaction (`atomic()` with no statement)"),
]
CONCURRENT = ("concurrent", "50 tasks, pool of 10, get by pk")
STREAM = ("stream", "stream rows with `async for`")
MEMORY = ("memory", "peak Python memory while streaming (MB)")
COLD = ("cold", "cold start: import + first query (ms)")

ALL_KEYS = [k for k, _ in OPS] + [CONCURRENT[0], STREAM[0], COLD[0]]
LABELS = dict(OPS + [CONCURRENT, STREAM, MEMORY, COLD])
#: Workloads that add rows to benchapp_entry (emptied after each cell).
INSERTS = {"insert1", "bulk1000"}
#: Rows in one bulk insert.
BULK = 1000
#: Rows per fetch when streaming.
CHUNK = 2000


@dataclass
class Keys:
    """Deterministic keys for op ``i``; the same for every system."""

    authors: int
    books: int
    size: int = 65_536

    def __post_init__(self) -> None:
        rnd = random.Random(6)
        self._a = [rnd.randint(1, self.authors - 105) for _ in range(self.size)]
        self._b = [rnd.randint(1, self.books - 205) for _ in range(self.size)]

    def author(self, i: int) -> int:
        """An author id; ``author(i) + 104`` exists too."""
        return self._a[i % self.size]

    def book(self, i: int) -> int:
        """A book id; ``book(i) + 204`` exists too."""
        return self._b[i % self.size]

    @staticmethod
    def pages(i: int) -> int:
        """A lower bound on ``pages`` that most books pass."""
        return 100 + i % 300
