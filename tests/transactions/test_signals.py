"""pre_save / post_save: awaited receivers, inside the operation's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from django.db.models.signals import post_save, pre_save

import vinyl
from tests.testapp.models import Author, Book
from tests.txhelpers import committed_names, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")


@pytest.fixture
def receivers() -> Iterator[list]:
    """Connect receivers for Author for one test only."""
    connected: list = []
    yield connected
    for signal, receiver in connected:
        signal.disconnect(receiver, sender=Author)


def connect(receivers: list, signal, receiver) -> None:
    signal.connect(receiver, sender=Author, weak=False)
    receivers.append((signal, receiver))


async def test_async_receivers_are_awaited_with_the_users_model_as_sender(receivers):
    calls: list[tuple] = []

    async def before(sender, instance, **kwargs):
        await asyncio.sleep(0)
        calls.append(("pre", sender, type(instance), instance.name, kwargs["update_fields"]))

    async def after(sender, instance, created, **kwargs):
        await asyncio.sleep(0)
        calls.append(("post", sender, created, instance.pk is not None))

    def sync_after(sender, instance, created, **kwargs):
        calls.append(("sync post", sender, created))

    connect(receivers, pre_save, before)
    connect(receivers, post_save, after)
    connect(receivers, post_save, sync_after)
    ann = await Author.vinyl.create(name="Ann")
    ann.age = 3
    await ann.save(update_fields=["age"])
    # Django's asend() runs the sync and the async receivers concurrently.
    assert calls[0] == ("pre", Author, Author.vinyl.model, "Ann", None)
    assert set(calls[1:3]) == {("sync post", Author, True), ("post", Author, True, True)}
    assert calls[3] == ("pre", Author, Author.vinyl.model, "Ann", frozenset({"age"}))
    assert set(calls[4:6]) == {("sync post", Author, False), ("post", Author, False, True)}


async def test_receiver_that_raises_rolls_the_save_back(receivers):
    ann = await Author.vinyl.create(name="Ann")

    async def fail(sender, instance, **kwargs):
        # Inside the operation's transaction: it sees the row just written.
        assert await Author.vinyl.filter(name=instance.name).exists()
        raise RuntimeError("receiver failed")

    connect(receivers, post_save, fail)
    with pytest.raises(RuntimeError, match="receiver failed"):
        await Author.vinyl.create(name="Bob")
    ann.name = "Renamed"
    with pytest.raises(RuntimeError):
        await ann.save()
    assert await committed_names() == ["Ann"]
    assert await returned() == 0


async def test_receiver_writes_join_the_transaction(receivers):
    async def add_book(sender, instance, created, **kwargs):
        if created:
            await Book.vinyl.create(title=f"{instance.name}'s book", author=instance)
            # Tasks a receiver starts share the transaction too.
            await asyncio.gather(
                Book.vinyl.create(title="g1", author=instance),
                Book.vinyl.create(title="g2", author=instance),
            )
            await instance.refresh_from_db()

    connect(receivers, post_save, add_book)
    await Author.vinyl.create(name="Ann")
    assert await Book.vinyl.count() == 3
    with pytest.raises(ValueError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Bob")
            assert await Book.vinyl.count() == 6
            raise ValueError
    assert await Book.vinyl.count() == 3
    assert await committed_names() == ["Ann"]
    assert await returned() == 0


async def test_receiver_on_commit_runs_after_the_operation_commits(receivers):
    calls: list[str] = []

    async def after(sender, instance, created, **kwargs):
        vinyl.on_commit(lambda: calls.append(instance.name))

    connect(receivers, post_save, after)
    await Author.vinyl.create(name="Ann")
    assert calls == ["Ann"]
    async with vinyl.atomic():
        await Author.vinyl.create(name="Bob")
        assert calls == ["Ann"]
    assert calls == ["Ann", "Bob"]


async def test_receivers_of_concurrent_saves_inside_a_block(receivers):
    async def add_book(sender, instance, created, **kwargs):
        if created:
            await Book.vinyl.create(title=instance.name, author=instance)

    connect(receivers, post_save, add_book)
    async with vinyl.atomic():
        await asyncio.gather(*(Author.vinyl.create(name=f"a{i}") for i in range(10)))
    assert await Book.vinyl.count() == 10
