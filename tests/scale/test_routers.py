"""DATABASE_ROUTERS for vinyl's aliases, on the suite's own servers (every backend).

Two vinyl aliases name the same database here (``vinyl_default`` and
``vinyl_<backend>``), so the tests see where each query went from the
alias the instances carry.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

import vinyl
from tests.scaleapp.models import Account, Branch
from vinyl import routing
from vinyl.exceptions import VinylConfigurationError


class SplitRouter:
    """Reads on one alias, writes on another."""

    def __init__(self, read: str, write: str) -> None:
        self.read, self.write = read, write
        self.hints: list[dict] = []

    def db_for_read(self, model: Any, **hints: Any) -> str:
        self.hints.append(hints)
        return self.read

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return self.write

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True


def _router(backend: str) -> SplitRouter:
    return SplitRouter(read=settings.VINYL_ALIAS[backend], write="vinyl_default")


async def test_reads_and_writes_follow_the_routers(vinyl_db: str) -> None:
    router = _router(vinyl_db)
    with override_settings(DATABASE_ROUTERS=[router]):
        branch = await Branch.vinyl.create(name="north")
        assert branch._state.db == "vinyl_default"
        assert (await Branch.vinyl.get(pk=branch.pk))._state.db == router.read
        assert Branch.vinyl.all().db == router.read
        assert all(h.get("vinyl") is True for h in router.hints)
        assert await Branch.vinyl.filter(name="north").update(name="n") == 1
        assert await Branch.vinyl.count() == 1
        assert [b._state.db async for b in Branch.vinyl.all()] == [router.read]
        assert [b._state.db for b in await Branch.vinyl.raw("SELECT * FROM scaleapp_branch")] == [router.read]
        await branch.delete()
        assert await Branch.vinyl.count() == 0


async def test_using_overrides_the_routers(vinyl_db: str) -> None:
    with override_settings(DATABASE_ROUTERS=[_router(vinyl_db)]):
        branch = await Branch.vinyl.using("vinyl_default").create(name="north")
        found = await Branch.vinyl.using("vinyl_default").get(pk=branch.pk)
        assert found._state.db == "vinyl_default"
        assert Branch.vinyl.filter(pk=1).using("vinyl_default").db == "vinyl_default"


async def test_without_routers_everything_runs_on_vinyl_default(vinyl_db: str) -> None:
    branch = await Branch.vinyl.create(name="north")
    assert branch._state.db == "vinyl_default"
    assert (await Branch.vinyl.get(pk=branch.pk))._state.db == "vinyl_default"


async def test_reads_in_a_block_stay_on_the_block_alias(vinyl_db: str) -> None:
    with override_settings(DATABASE_ROUTERS=[_router(vinyl_db)]):
        async with vinyl.atomic():
            branch = await Branch.vinyl.create(name="north")
            assert (await Branch.vinyl.get(pk=branch.pk))._state.db == "vinyl_default"
            assert [b.pk for b in await Branch.vinyl.all()] == [branch.pk]
            async for found in Branch.vinyl.all():
                assert found._state.db == "vinyl_default"
        # After the block the routers decide again.
        assert (await Branch.vinyl.get(pk=branch.pk))._state.db == settings.VINYL_ALIAS[vinyl_db]


async def test_related_loads_follow_the_instance_alias(vinyl_db: str) -> None:
    with override_settings(DATABASE_ROUTERS=[_router(vinyl_db)]):
        branch = await Branch.vinyl.create(name="north")
        account = await Account.vinyl.create(branch=branch, owner="ann")
        assert (await account.branch)._state.db == "vinyl_default"
        assert [a._state.db for a in await branch.accounts.all()] == ["vinyl_default"]
        loaded = await Account.vinyl.get(pk=account.pk)
        assert loaded._state.db == settings.VINYL_ALIAS[vinyl_db]
        assert (await loaded.branch)._state.db == settings.VINYL_ALIAS[vinyl_db]
        # A related manager's writes go where the routers write.
        other = await branch.accounts.create(owner="bob")
        assert other._state.db == "vinyl_default"


async def test_a_django_alias_from_a_router_means_the_vinyl_alias_of_its_database(vinyl_db: str) -> None:
    # vinyl_default and vinyl_<backend> both point at it: the default wins the tie.
    sync = settings.SYNC_ALIAS[vinyl_db]
    with override_settings(DATABASE_ROUTERS=[SplitRouter(read=sync, write=sync)]):
        branch = await Branch.vinyl.create(name="north")
        assert branch._state.db == "vinyl_default"
        assert routing.vinyl_alias(sync) == "vinyl_default"


@pytest.mark.backends("postgresql", reason="one misrouted alias is enough to check the message")
async def test_a_router_answer_with_no_vinyl_alias_is_a_configuration_error(vinyl_db: str) -> None:
    missing = {"ENGINE": "django.db.backends.postgresql", "NAME": "elsewhere", "HOST": "127.0.0.1", "PORT": "5999"}
    connections.settings["legacy"] = {**connections.settings["sync_postgresql"], **missing}
    with override_settings(DATABASE_ROUTERS=[SplitRouter(read="legacy", write="legacy")]):
        try:
            with pytest.raises(VinylConfigurationError, match="SplitRouter.db_for_read chose the database alias 'legacy'"):
                await Branch.vinyl.count()
        finally:
            connections.settings.pop("legacy", None)


class BothRouter:
    """One router for both ORMs: vinyl's aliases for vinyl, Django's for the rest."""

    def __init__(self, backend: str) -> None:
        self.sync = settings.SYNC_ALIAS[backend]

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "vinyl_default" if hints.get("vinyl") else self.sync

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "vinyl_default" if hints.get("vinyl") else self.sync

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True


async def test_django_calls_inside_vinyl_operations_get_the_operation_alias(vinyl_db: str) -> None:
    # Django's related managers ask the routers themselves, without the hint:
    # VinylRouter answers them with the alias of the running vinyl operation.
    with override_settings(DATABASE_ROUTERS=[routing.VinylRouter(), BothRouter(vinyl_db)]):
        branch = await Branch.vinyl.create(name="north")
        account = await Account.vinyl.create(owner="ann")
        await branch.accounts.add(account)
        assert [a.owner for a in await branch.accounts.all()] == ["ann"]
        await branch.accounts.remove(account)
        assert await branch.accounts.count() == 0
        await branch.accounts.set([account])
        await branch.accounts.clear()
        await branch.accounts.add(account)
        assert await branch.delete() == (2, {"scaleapp.Account": 1, "scaleapp.Branch": 1})
        # Outside vinyl's operations it answers nothing: the next router decides.
        assert routing.VinylRouter().db_for_write(Branch) is None
