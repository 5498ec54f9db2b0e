"""What the runner asks of a system."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.workloads import Keys


class AsyncSystem:
    """A system whose per-op methods are coroutines."""

    key = ""
    #: A note shown under the table (driver used, what is measured).
    note = ""

    def __init__(self, db: str, keys: Keys, pool_size: int, tasks: int) -> None:
        self.db = db
        self.keys = keys
        self.pool_size = pool_size
        self.tasks = tasks

    async def setup(self) -> None:
        """Open connections or pools; called once before any measurement."""

    async def teardown(self) -> None:
        """Close what setup opened."""

    async def run_ops(self, workload: str, n: int, start: int) -> None:
        op = getattr(self, workload)
        for i in range(start, start + n):
            await op(i)

    async def answer(self, workload: str, i: int) -> Any:
        """What op ``i`` of ``workload`` returns (the runner compares the systems' rows)."""
        return await getattr(self, workload)(i)

    async def concurrent(self, n: int, start: int) -> None:
        """Run ``n`` get-by-pk from ``self.tasks`` tasks sharing one pool."""
        per = max(1, n // self.tasks)
        # The system's own get where it has no concurrent_get (the raw
        # driver's takes a connection of its pool), awaited directly as
        # run_ops awaits it: not through a coroutine of the harness's.
        get = getattr(self, "concurrent_get", None) or self.get

        async def task(t: int) -> None:
            base = start + t * per
            for i in range(base, base + per):
                await get(i)

        await asyncio.gather(*(task(t) for t in range(self.tasks)))

    async def stream(self) -> int:
        """Stream every row of benchapp_item; return how many came."""
        raise NotImplementedError


class SyncSystem(AsyncSystem):
    """A system whose per-op methods are plain functions.

    The timed loop runs whole in one worker thread (Django's sync ORM must
    not run in the event loop's thread), so the thread hop is paid once per
    measurement, not per op.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"{self.key}-main")
        self.workers = ThreadPoolExecutor(self.pool_size, thread_name_prefix=f"{self.key}-pool")

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)

    async def run_ops(self, workload: str, n: int, start: int) -> None:
        op = getattr(self, workload)

        def loop() -> None:
            for i in range(start, start + n):
                op(i)

        await self.in_thread(loop)

    async def answer(self, workload: str, i: int) -> Any:
        return await self.in_thread(getattr(self, workload), i)

    async def concurrent(self, n: int, start: int) -> None:
        """``self.tasks`` jobs on a pool of ``pool_size`` threads."""
        per = max(1, n // self.tasks)
        loop = asyncio.get_running_loop()

        def job(t: int) -> None:
            base = start + t * per
            for i in range(base, base + per):
                self.get(i)

        await asyncio.gather(*(loop.run_in_executor(self.workers, job, t) for t in range(self.tasks)))

    async def teardown(self) -> None:
        # The threads' connections close with the process.
        self.thread.shutdown()
        self.workers.shutdown()
