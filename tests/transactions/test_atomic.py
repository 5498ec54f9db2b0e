"""vinyl.atomic: commit, rollback, savepoints, durable, savepoint=False, decorators."""

from __future__ import annotations

import pytest
from django.db import IntegrityError
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import checked_out, committed_names, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_block_commits_on_exit_and_others_see_it_only_then():
    async with vinyl.atomic():
        await Author.vinyl.create(name="Ann")
        assert await Author.vinyl.count() == 1
        assert await committed_names() == []
        assert checked_out() == 1  # the block holds one connection
    assert await committed_names() == ["Ann"]
    assert await returned() == 0


async def test_exception_rolls_back_and_propagates():
    with pytest.raises(ZeroDivisionError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Ann")
            1 / 0
    assert await committed_names() == []
    assert await returned() == 0


async def test_nested_block_is_a_savepoint():
    async with vinyl.atomic():
        await Author.vinyl.create(name="outer")
        with pytest.raises(ValueError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="inner")
                raise ValueError
        async with vinyl.atomic():
            await Author.vinyl.create(name="kept")
        assert sorted(await Author.vinyl.values_list("name", flat=True)) == ["kept", "outer"]
    assert await committed_names() == ["kept", "outer"]


async def test_three_levels_roll_back_only_the_failing_one():
    async with vinyl.atomic():
        await Author.vinyl.create(name="a")
        async with vinyl.atomic():
            await Author.vinyl.create(name="b")
            with pytest.raises(KeyError):
                async with vinyl.atomic():
                    await Author.vinyl.create(name="c")
                    raise KeyError
            await Author.vinyl.create(name="d")
    assert await committed_names() == ["a", "b", "d"]


async def test_bare_and_called_decorators():
    @vinyl.atomic
    async def bare(name: str, fail: bool) -> str:
        await Author.vinyl.create(name=name)
        if fail:
            raise RuntimeError(name)
        return name

    @vinyl.atomic(using="vinyl_default", savepoint=True)
    async def called(name: str) -> str:
        await Author.vinyl.create(name=name)
        raise RuntimeError(name)

    assert bare.__name__ == "bare"
    assert await bare("ok", False) == "ok"
    with pytest.raises(RuntimeError):
        await bare("bad", True)
    with pytest.raises(RuntimeError):
        await called("bad2")
    assert await committed_names() == ["ok"]


async def test_decorating_a_sync_function_is_a_type_error():
    with pytest.raises(TypeError, match="coroutine functions"):
        vinyl.atomic(lambda: None if False else None)  # a bare sync callable
    with pytest.raises(TypeError, match="alias name"):
        vinyl.atomic(using=3)


async def test_durable_block_refuses_to_nest():
    async with vinyl.atomic(durable=True):
        await Author.vinyl.create(name="Ann")
        with pytest.raises(RuntimeError, match="durable"):
            async with vinyl.atomic(durable=True):
                pass
    assert await committed_names() == ["Ann"]


async def test_savepoint_false_dooms_the_enclosing_block():
    async with vinyl.atomic():
        await Author.vinyl.create(name="outer")
        with pytest.raises(ValueError):
            async with vinyl.atomic(savepoint=False):
                await Author.vinyl.create(name="inner")
                raise ValueError
        # As in Django: the transaction can only roll back now.
        with pytest.raises(TransactionManagementError):
            await Author.vinyl.count()
    assert await committed_names() == []


async def test_database_error_caught_inside_block_needs_rollback():
    await Author.vinyl.create(name="Ann", email="a@x")
    async with vinyl.atomic():
        await Author.vinyl.create(name="Bob")
        with pytest.raises(IntegrityError):
            await Author.vinyl.create(name="Ann2", email="a@x")
        with pytest.raises(TransactionManagementError, match="An error occurred"):
            await Author.vinyl.count()
    assert await committed_names() == ["Ann"]


async def test_database_error_inside_nested_block_leaves_outer_usable():
    await Author.vinyl.create(name="Ann", email="a@x")
    async with vinyl.atomic():
        await Author.vinyl.create(name="Bob")
        with pytest.raises(IntegrityError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="Ann2", email="a@x")
        assert await Author.vinyl.count() == 2
    assert await committed_names() == ["Ann", "Bob"]


async def test_error_caught_inside_nested_block_rolls_back_only_that_block():
    await Author.vinyl.create(name="Ann", email="a@x")
    async with vinyl.atomic():
        await Author.vinyl.create(name="Bob")
        async with vinyl.atomic():
            await Author.vinyl.create(name="Cy")
            with pytest.raises(IntegrityError):
                await Author.vinyl.create(name="Ann2", email="a@x")
        # Django rolls the nested block back on exit; the outer one goes on.
        await Author.vinyl.create(name="Dee")
    assert await committed_names() == ["Ann", "Bob", "Dee"]


async def test_same_atomic_object_reused_for_nesting():
    block = vinyl.atomic()
    async with block:
        await Author.vinyl.create(name="a")
        with pytest.raises(ValueError):
            async with block:
                await Author.vinyl.create(name="b")
                raise ValueError
    assert await committed_names() == ["a"]


async def test_update_or_create_outside_atomic_uses_django_atomic_for_its_lock():
    ann, created = await Author.vinyl.update_or_create(name="Ann", defaults={"age": 3})
    assert created
    ann, created = await Author.vinyl.update_or_create(name="Ann", defaults={"age": 4})
    assert not created and ann.age == 4
