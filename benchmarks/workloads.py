"""The workloads, their labels, and the keys every system uses for op ``i``.

Every system runs op ``i`` of a workload on the same rows: the keys come
from one seeded random sequence, so no system reads a warmer part of the
tables than another.
"""

from __future__ import annotations

import datetime
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
#: Reads of issue 17: authors carry a datetime and a float; prefetches of
#: every relation kind.
READ_OPS: list[tuple[str, str]] = [
    ("authors100", "100 authors (a datetime column), filter+order+limit"),
    ("since100", "100 authors filtered and ordered by a datetime"),
    ("prefetch_fk", "prefetch_related of a forward FK, 100 books"),
    ("prefetch_m2m", "prefetch_related of a many-to-many, 100 books"),
    ("prefetch_nested", "prefetch_related of `book_set__tags`, 100 authors"),
    ("prefetch_obj", "prefetch_related of a `Prefetch` with a queryset, 100 authors"),
]
OPS = OPS + READ_OPS
# Write workloads of issue 17 (kept in their own block).
OPS += [
    ("atomic_empty", "empty transaction (`atomic()` with no statement)"),
]
# A list filter on a column without an index: the server compares every row
# of an indexed range (the 2,500 books of 500 authors) with the list.
OPS += [
    ("in100", "books of 500 authors by a list of 100 page counts (`pages__in`, 100 rows)"),
]
CONCURRENT = ("concurrent", "50 tasks, pool of 10, get by pk")
STREAM = ("stream", "stream rows with `async for`")
MEMORY = ("memory", "peak Python memory while streaming (MB)")
COLD = ("cold", "cold start: import + first query (ms)")

ALL_KEYS = [k for k, _ in OPS] + [CONCURRENT[0], STREAM[0], COLD[0]]
LABELS = dict(OPS + [CONCURRENT, STREAM, MEMORY, COLD])
#: Workloads whose rows the runner compares across systems before timing.
CHECKED = ("filter100", "authors100", "since100", "in100")
#: Workloads that add rows to benchapp_entry (emptied after each cell).
INSERTS = {"insert1", "bulk1000"}
#: Rows in one bulk insert.
BULK = 1000
#: Rows per fetch when streaming.
CHUNK = 2000
#: Authors whose books ``in100`` filters by a list.
IN_WINDOW = 500
#: Values in the list of ``in100``.
IN_LIST = 100


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

    def window(self, i: int) -> int:
        """The first of ``IN_WINDOW`` authors that all exist."""
        return 1 + (self.author(i) - 1) % (self.authors - IN_WINDOW + 1)

    @staticmethod
    def page_list(i: int) -> list[int]:
        """``IN_LIST`` distinct page counts, 20 of them a book's.

        Books have 100 to 599 pages, all five books of author ``k`` have
        ``100 + k % 500`` (benchmarks.data): the list takes every 25th count
        of 100 to 2,599, so 20 authors of a window of 500 match, 100 books.
        """
        return [100 + (i + 25 * j) % 2500 for j in range(IN_LIST)]

    @staticmethod
    def rating(i: int) -> float:
        """A lower bound on ``rating`` (0.0 to 4.9) that most authors pass."""
        return (i % 10) / 10

    def since(self, i: int) -> datetime.datetime:
        """An aware datetime between two authors' ``joined``: 100 authors follow it."""
        return JOINED_START + (self.author(i) + 0.5) * JOINED_STEP


#: Author ``g`` joined at ``JOINED_START + g * JOINED_STEP`` (benchmarks.data).
JOINED_START = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
JOINED_STEP = datetime.timedelta(seconds=61, microseconds=123)
