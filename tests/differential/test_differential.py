"""Random QuerySets and writes: vinyl must answer as Django's sync ORM does.

A bounded run per backend inside ``make test``; ``make fuzz`` runs the same
test long (VINYL_FUZZ_SEED, VINYL_FUZZ_READS, VINYL_FUZZ_WRITES). A mismatch
of a class not in tests/differential/known.py fails with its reproduction.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.differential.runner import run_differential

pytestmark = pytest.mark.usefixtures("vinyl_db")

SEED = int(os.environ.get("VINYL_FUZZ_SEED", "20261204"))
READS = int(os.environ.get("VINYL_FUZZ_READS", "800"))
WRITES = int(os.environ.get("VINYL_FUZZ_WRITES", "60"))


def _log(message: str) -> None:
    if os.environ.get("VINYL_FUZZ_VERBOSE"):
        print(message, file=sys.stderr, flush=True)


async def test_random_queries_agree_with_django(backend: str) -> None:
    result = await run_differential(backend, SEED, READS, WRITES, log=_log)
    _log(result.summary())
    assert result.reads == READS and result.writes == WRITES
    assert result.unknown_count == 0, result.summary()


async def test_random_queries_agree_with_django_on_the_python_row_builder(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The run above builds instances with the C row builder where it is built
    # (vinyl.translate._rowbuild); a shorter run here on the pure-Python one,
    # its fallback (VINYL_NO_EXTENSIONS=1).
    from vinyl.translate import instances

    monkeypatch.setattr(instances, "ROWBUILD", None)
    reads, writes = max(READS // 4, 1), max(WRITES // 4, 1)
    result = await run_differential(backend, SEED + 1, reads, writes, log=_log)
    _log(result.summary())
    assert result.reads == reads and result.writes == writes
    assert result.unknown_count == 0, result.summary()
