"""Run a test's vinyl queries in transactions rolled back at its end.

Shared by the pytest plugin (``vinyl.testing``) and the test cases for
Django's runner (``vinyl.test``).
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator, Iterable

from vinyl.transaction import rolled_back

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio.engine import AsyncConnection


def vinyl_aliases() -> list[str]:
    """Every alias of ``settings.DATABASES`` that uses a vinyl backend."""
    from django.conf import settings

    return [
        alias
        for alias, config in settings.DATABASES.items()
        if str(config.get("ENGINE", "")).startswith("vinyl.")
    ]


@asynccontextmanager
async def rolled_back_aliases(aliases: Iterable[str]) -> AsyncIterator[dict[str, AsyncConnection]]:
    """One rolled-back transaction per alias, for the block: ``{alias: connection}``."""
    async with AsyncExitStack() as stack:
        yield {alias: await stack.enter_async_context(rolled_back(alias)) for alias in aliases}


__all__ = ["rolled_back_aliases", "vinyl_aliases"]
