"""A task inside a nested block awaits a sibling that uses the enclosing level.

The nested block holds the enclosing level until it ends, so the sibling's
statement waits for the block, and the block's task waits for the sibling:
neither could go on, and the program hung. vinyl now finds the cycle while
the sibling waits and fails the sibling's statement with Django's
``TransactionManagementError``; the block's task gets it from its await. It
is a failed write of the enclosing level, which then can only roll back, as
Django leaves a block a failed save ran in. Waiting itself (a
sibling that waits for the block, not awaited by it) is unchanged.

The block's task may await the sibling directly, through ``gather``,
through the futures of ``asyncio.wait``, ``wait_for`` (its own future on
Python 3.11), ``shield`` and ``as_completed``, which only the sibling's end
resolves (or the end of a ``gather`` of it), or through a ``TaskGroup``'s
exit, which waits for all of the group's tasks. A wait that something else
may end (another task, a timeout that leaves the sibling running, another
task of the group or of a gather that may still fail and end it) is no
deadlock and is left alone; a gather or group all unfinished tasks of which
wait for the level is one, and so is ``asyncio.wait`` with
``FIRST_COMPLETED``/``FIRST_EXCEPTION`` or ``as_completed`` over tasks that
all wait for it.
"""

from __future__ import annotations

import asyncio
import contextvars
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import pytest
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import FIRST_OF_KINDS, committed_names, first_to_end, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")

#: Far longer than detection takes; a hang fails the test instead of the run.
LIMIT = 20


E = TypeVar("E", bound=BaseException)


async def _raised(run: Awaitable[object], kind: type[E]) -> E:
    """What ``run`` raised, of ``kind``; bounded by LIMIT, so a hang fails the test."""
    with pytest.raises(kind) as caught:
        await asyncio.wait_for(run, LIMIT)
    return caught.value


async def _nothing_kept() -> None:
    """Nothing the blocks wrote was committed, and every connection is back in the pool."""
    assert await committed_names() == []
    assert await returned() == 0


async def _wait_then_create(started: asyncio.Event) -> None:
    await started.wait()
    await Author.vinyl.create(name="sibling")


@asynccontextmanager
async def _nested_block_after_a_sibling(
    sibling: Callable[[asyncio.Event], Awaitable[None]] = _wait_then_create,
) -> AsyncIterator[asyncio.Task]:
    """Start ``sibling`` on the enclosing level (it waits until told), then
    open a nested block and let the sibling go: yields the sibling's task."""
    started = asyncio.Event()
    task = asyncio.create_task(sibling(started))
    async with vinyl.atomic():
        started.set()
        yield task


async def test_awaiting_a_sibling_that_waits_for_the_enclosing_level_raises_instead_of_hanging(backend):
    async def body() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            async with _nested_block_after_a_sibling() as sibling:
                await Author.vinyl.create(name="inner")
                await sibling

    assert "awaits" in str(await _raised(body(), TransactionManagementError))
    await _nothing_kept()


async def test_a_sibling_awaited_through_gather_is_found_too(backend):
    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling() as sibling:
                await asyncio.gather(sibling)

    assert "awaits" in str(await _raised(body(), TransactionManagementError))
    await _nothing_kept()


async def test_the_error_is_a_failed_write_of_the_enclosing_level_which_then_only_rolls_back(backend):
    # The sibling's create failed in the enclosing block: as Django marks a
    # block that a failed save ran in, that block can only roll back, even
    # where the error is caught. The nested block's work goes with it.
    async def body() -> tuple[str, str]:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            async with _nested_block_after_a_sibling() as sibling:
                await Author.vinyl.create(name="inner")
                try:
                    await sibling
                except TransactionManagementError as exc:
                    caught = type(exc).__name__
            try:
                await Author.vinyl.create(name="after")
                after = "ran"
            except TransactionManagementError as exc:
                after = type(exc).__name__
        return caught, after

    caught, after = await asyncio.wait_for(body(), LIMIT)
    assert (caught, after) == ("TransactionManagementError", "TransactionManagementError")
    await _nothing_kept()


async def test_a_sibling_not_awaited_by_the_block_waits_for_it_and_runs_after(backend):
    order: list[str] = []

    async def sibling(started: asyncio.Event) -> None:
        await _wait_then_create(started)
        order.append("sibling")

    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling(sibling) as task:
                await asyncio.sleep(0.5)  # several detection rounds while the sibling waits
                await Author.vinyl.create(name="inner")
                order.append("inner")
            await task

    await asyncio.wait_for(body(), LIMIT)
    assert order == ["inner", "sibling"]
    assert await committed_names() == ["inner", "sibling"]
    assert await returned() == 0


async def _fails_the_sibling(wait: Callable[[asyncio.Task], Awaitable[object]]) -> None:
    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling() as sibling:
                await Author.vinyl.create(name="inner")
                await wait(sibling)
                await sibling  # asyncio.wait returns it done rather than raise its error

    assert "awaits" in str(await _raised(body(), TransactionManagementError))
    await _nothing_kept()


async def test_a_sibling_awaited_through_asyncio_wait_is_found(backend):
    await _fails_the_sibling(lambda sibling: asyncio.wait({sibling}))


async def test_a_sibling_awaited_through_wait_for_with_a_timeout_is_found(backend):
    # On Python 3.11 wait_for waits on a future of its own; the timeout, far
    # beyond LIMIT, would only end the wait by cancelling the sibling.
    await _fails_the_sibling(lambda sibling: asyncio.wait_for(sibling, 2 * LIMIT))


async def test_a_sibling_awaited_through_shield_is_found(backend):
    await _fails_the_sibling(asyncio.shield)


async def test_a_sibling_awaited_through_as_completed_is_found(backend):
    async def first_done(sibling: asyncio.Task) -> None:
        for next_done in asyncio.as_completed([sibling]):
            await next_done

    await _fails_the_sibling(first_done)


@pytest.mark.parametrize("wait", ["wait", "wait_for", "shield", "as_completed"])
async def test_a_sibling_awaited_through_a_helper_on_a_gather_of_it_is_found(backend, wait):
    # The helper's callback sits on the gathering future, not on the sibling.
    async def through_gather(sibling: asyncio.Task) -> None:
        gathered = asyncio.gather(sibling)
        if wait == "wait":
            await asyncio.wait({gathered})
            await gathered  # it ends done, with the sibling's error
        elif wait == "wait_for":
            await asyncio.wait_for(gathered, 2 * LIMIT)
        elif wait == "shield":
            await asyncio.shield(gathered)
        else:
            for next_done in asyncio.as_completed([gathered]):
                await next_done

    await _fails_the_sibling(through_gather)


async def _await(task: asyncio.Task) -> None:
    await task


def _only(group: BaseExceptionGroup, kind: type[BaseException]) -> BaseException:
    """The one exception of ``group`` (flattened), checked to be a ``kind``."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    assert len(leaves) == 1 and isinstance(leaves[0], kind), leaves
    return leaves[0]


async def test_a_sibling_awaited_through_a_task_group_s_exit_is_found(backend):
    # The group's exit waits on a future of the group that its last task's end resolves.
    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling() as sibling:
                async with asyncio.TaskGroup() as group:
                    group.create_task(_await(sibling))

    group = await _raised(body(), BaseExceptionGroup)
    assert "awaits" in str(_only(group, TransactionManagementError))
    await _nothing_kept()


async def test_a_task_of_the_group_that_uses_the_enclosing_level_is_found(backend):
    # Started in the group with the enclosing block's context, the task's own
    # statement waits for the level.
    async def body() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            enclosing = contextvars.copy_context()
            async with vinyl.atomic():
                await Author.vinyl.create(name="inner")
                async with asyncio.TaskGroup() as group:
                    group.create_task(Author.vinyl.create(name="sibling"), context=enclosing)

    group = await _raised(body(), BaseExceptionGroup)
    _only(group, TransactionManagementError)
    await _nothing_kept()


async def test_a_task_group_is_followed_once_its_other_tasks_have_ended(backend):
    # While another task of the group runs, it could still fail and cancel the
    # rest: the wait is found once the sibling's waiter is the group's last task.
    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling() as sibling:
                async with asyncio.TaskGroup() as group:
                    group.create_task(_await(sibling))
                    group.create_task(asyncio.sleep(0.5))

    group = await _raised(body(), BaseExceptionGroup)
    _only(group, TransactionManagementError)
    await _nothing_kept()


async def test_a_task_group_another_task_of_which_fails_leaves_the_sibling_alone(backend):
    # The other task's failure cancels the group's tasks (and so the awaited
    # sibling) and ends the block's wait: no deadlock, nothing is failed with
    # TransactionManagementError while the other task runs.
    async def fail_later() -> None:
        await asyncio.sleep(0.5)  # several detection rounds while the sibling waits
        raise ValueError("the other task failed")

    async def body() -> asyncio.Task:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            try:
                async with _nested_block_after_a_sibling() as sibling:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(_await(sibling))
                        group.create_task(fail_later())
            except BaseExceptionGroup as exc:
                _only(exc, ValueError)
            await Author.vinyl.create(name="after")
        return sibling

    sibling = await asyncio.wait_for(body(), LIMIT)
    assert sibling.cancelled()
    assert await committed_names() == ["after", "outer"]
    assert await returned() == 0


async def _sleep_outside_then_create(name: str) -> None:
    await asyncio.sleep(0.5)  # several detection rounds while the level's sibling waits
    await Author.vinyl.create(name=name)


async def test_a_task_awaited_through_asyncio_wait_that_does_not_use_the_level_is_not_failed(backend):
    # The awaited task runs outside the transaction (its own connection); the
    # sibling that waits for the level is not awaited by the block.
    async def body() -> None:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling() as sibling:
                other = asyncio.create_task(_sleep_outside_then_create("other"), context=contextvars.Context())
                await asyncio.wait({other})
                await other
                await Author.vinyl.create(name="inner")
            await sibling

    await asyncio.wait_for(body(), LIMIT)
    assert await committed_names() == ["inner", "other", "sibling"]
    assert await returned() == 0


@pytest.mark.parametrize("kind", ["first_completed", "first_completed_of_a_gather", "timeout"])
async def test_a_wait_that_something_else_ends_leaves_the_sibling_waiting(backend, kind):
    # Another task's end (FIRST_COMPLETED) or asyncio.wait's timeout, which
    # does not cancel the sibling, ends the block's wait: the sibling then runs.
    async def body() -> bool:
        async with vinyl.atomic():
            async with _nested_block_after_a_sibling() as sibling:
                if kind.startswith("first_completed"):
                    other = asyncio.create_task(asyncio.sleep(0.5))
                    waited = asyncio.gather(sibling) if kind.endswith("gather") else sibling
                    done, pending = await asyncio.wait({waited, other}, return_when=asyncio.FIRST_COMPLETED)
                    assert done == {other}
                    pending = {sibling} if pending == {waited} else pending
                else:
                    done, pending = await asyncio.wait({sibling}, timeout=0.5)
                await Author.vinyl.create(name="inner")
            waited = pending == {sibling}
            await sibling
        return waited

    assert await asyncio.wait_for(body(), LIMIT)
    assert await committed_names() == ["inner", "sibling"]
    assert await returned() == 0


async def _fail_later() -> None:
    await asyncio.sleep(0.5)  # several detection rounds while the level's sibling waits
    raise ValueError("the other task failed")


async def test_a_gather_another_child_of_which_may_still_fail_leaves_the_sibling_alone(backend):
    # Without return_exceptions, the other child's failure ends the gather
    # (and so the block's wait) while the sibling still waits: no deadlock.
    # The block ends with that error, and the sibling's statement then runs.
    async def body() -> asyncio.Task:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            with pytest.raises(ValueError, match="other task failed"):
                async with _nested_block_after_a_sibling() as sibling:
                    await asyncio.gather(sibling, _fail_later())
            await sibling
        return sibling

    sibling = await asyncio.wait_for(body(), LIMIT)
    assert sibling.result() is None
    assert await committed_names() == ["outer", "sibling"]
    assert await returned() == 0


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves


async def _two_siblings_awaited_through(wait: Callable[[asyncio.Task, asyncio.Task], Awaitable[object]]) -> None:
    async def body() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            started = asyncio.Event()
            first = asyncio.create_task(_wait_then_create(started))
            second = asyncio.create_task(_wait_then_create(started))
            async with vinyl.atomic():
                started.set()
                await Author.vinyl.create(name="inner")
                try:
                    await wait(first, second)
                finally:
                    await asyncio.wait({first, second})  # both end (failed): none outlives the block

    await asyncio.wait_for(body(), LIMIT)


async def test_a_gather_of_two_siblings_that_both_wait_for_the_level_is_found(backend):
    assert "awaits" in str(await _raised(_two_siblings_awaited_through(lambda a, b: asyncio.gather(a, b)), TransactionManagementError))
    await _nothing_kept()


async def test_a_task_group_two_tasks_of_which_wait_for_the_level_is_found(backend):
    # Either task's failure would cancel the other: both wait for the level,
    # so neither can fail on its own, and the group's exit waited forever.
    async def in_a_group(first: asyncio.Task, second: asyncio.Task) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(_await(first))
            group.create_task(_await(second))

    group = await _raised(_two_siblings_awaited_through(in_a_group), BaseExceptionGroup)
    leaves = _leaves(group)
    assert leaves and all(isinstance(exc, TransactionManagementError) for exc in leaves), leaves
    await _nothing_kept()


async def test_a_task_group_two_tasks_of_which_use_the_enclosing_level_is_found(backend):
    async def body() -> None:
        async with vinyl.atomic():
            enclosing = contextvars.copy_context()
            async with vinyl.atomic():
                await Author.vinyl.create(name="inner")
                async with asyncio.TaskGroup() as group:
                    group.create_task(Author.vinyl.create(name="first"), context=enclosing)
                    group.create_task(Author.vinyl.create(name="second"), context=enclosing.copy())

    group = await _raised(body(), BaseExceptionGroup)
    leaves = _leaves(group)
    assert leaves and all(isinstance(exc, TransactionManagementError) for exc in leaves), leaves
    await _nothing_kept()


async def test_a_task_group_using_the_level_beside_a_task_that_may_still_fail_is_left_alone(backend):
    # The task that waits for the level is the group's own (its statement);
    # the other one's failure cancels it and ends the group's exit.
    async def body() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="outer")
            enclosing = contextvars.copy_context()
            try:
                async with vinyl.atomic():
                    async with asyncio.TaskGroup() as group:
                        group.create_task(Author.vinyl.create(name="sibling"), context=enclosing)
                        group.create_task(_fail_later())
            except BaseExceptionGroup as exc:
                _only(exc, ValueError)
            await Author.vinyl.create(name="after")

    await asyncio.wait_for(body(), LIMIT)
    assert await committed_names() == ["after", "outer"]
    assert await returned() == 0


# -- waits the first task to end ends: asyncio.wait FIRST_*, as_completed ------

@pytest.mark.parametrize("kind", FIRST_OF_KINDS)
async def test_the_first_of_two_siblings_that_both_wait_for_the_level_is_found(backend, kind):
    # Either sibling's end would end the wait, but both wait for the level.
    siblings: list[asyncio.Task] = []

    async def first_of(first: asyncio.Task, second: asyncio.Task) -> object:
        siblings.extend((first, second))
        return await first_to_end(kind, first, second)

    assert "awaits" in str(await _raised(_two_siblings_awaited_through(first_of), TransactionManagementError))
    assert all(isinstance(task.exception(), TransactionManagementError) for task in siblings), siblings
    await _nothing_kept()


async def _return_later() -> str:
    await asyncio.sleep(0.5)  # several detection rounds while the level's siblings wait
    return "returned"


@pytest.mark.parametrize("kind", FIRST_OF_KINDS)
async def test_the_first_of_two_siblings_and_a_task_that_ends_by_itself_leaves_the_siblings_waiting(backend, kind):
    # The other task's end (its failure, under FIRST_EXCEPTION) ends the
    # block's wait: the siblings then run, after the block.
    async def body() -> object:
        async with vinyl.atomic():
            started = asyncio.Event()
            first = asyncio.create_task(_wait_then_create(started))
            second = asyncio.create_task(_wait_then_create(started))
            async with vinyl.atomic():
                started.set()
                other = asyncio.create_task(_fail_later() if kind == "first_exception" else _return_later())
                try:
                    got = await first_to_end(kind, first, second, other)
                except ValueError as exc:
                    got = str(exc)
                await Author.vinyl.create(name="inner")
            await asyncio.gather(first, second)
        return got

    assert await asyncio.wait_for(body(), LIMIT) in ("returned", "the other task failed")
    assert await committed_names() == ["inner", "sibling", "sibling"]
    assert await returned() == 0


async def test_a_first_exception_wait_is_found_once_its_other_task_has_returned(backend):
    # A task that returns does not end a FIRST_EXCEPTION wait (unless last):
    # once it has, only the siblings are left, and both wait for the level.
    siblings: list[asyncio.Task] = []

    async def first_exception(first: asyncio.Task, second: asyncio.Task) -> object:
        siblings.extend((first, second))
        return await first_to_end("first_exception", first, second, asyncio.create_task(_return_later()))

    run = _two_siblings_awaited_through(first_exception)
    assert "awaits" in str(await _raised(run, TransactionManagementError))
    assert all(isinstance(task.exception(), TransactionManagementError) for task in siblings), siblings
    await _nothing_kept()
