"""Nested blocks of tasks sharing one ``atomic`` block answer as if the tasks
had run one after another.

Savepoints on one connection are a stack: releasing or rolling back one
while a later one of another task is open would release or undo that one
too. vinyl runs sibling tasks' nested blocks one at a time (see
``vinyl.engine.scope``); whatever order the tasks' statements run in, what
commits must be what the same task bodies commit when run in sequence.
Random programs of writes, nested blocks (some raising, some with a write
that fails and is caught inside, leaving its level only able to roll back)
and groups of tasks, run both ways.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from django.db import IntegrityError

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")


class Fail(Exception):
    pass


def _program(rng: random.Random, prefix: str, depth: int) -> list:
    """Steps: ("w", name) write, ("dup", name) a write that fails and is
    caught, ("y", n) n loop turns, ("nest", steps, raises) a nested block,
    ("group", [steps...]) tasks of a TaskGroup."""
    kinds = ["w", "w", "nest", "group", "y", "dup"] if depth < 3 else ["w", "y", "dup"]
    steps: list = []
    for i in range(rng.randint(1, 4)):
        kind, name = rng.choice(kinds), f"{prefix}.{i}"
        if kind == "w" or (kind == "dup" and rng.random() < 0.7):
            steps.append(("w", name))
        elif kind == "dup":
            steps.append(("dup", name))
        elif kind == "y":
            steps.append(("y", rng.randint(0, 3)))
        elif kind == "nest":
            steps.append(("nest", _program(rng, name, depth + 1), rng.random() < 0.35))
        else:
            steps.append(("group", [_program(rng, f"{name}g{j}", depth + 1) for j in range(rng.randint(2, 3))]))
    return steps


async def _run(steps: list, concurrent: bool) -> None:
    for step in steps:
        if step[0] == "w":
            await Author.vinyl.create(name=step[1])
        elif step[0] == "dup":
            try:
                await Author.vinyl.create(name=step[1], email="dup@x")
            except IntegrityError:
                pass
        elif step[0] == "y":
            for _ in range(step[1]):
                await asyncio.sleep(0)
        elif step[0] == "nest":
            try:
                async with vinyl.atomic():
                    await _run(step[1], concurrent)
                    if step[2]:
                        raise Fail
            except Exception:  # Fail, or a refusal after a caught failed write
                pass
        elif concurrent:
            async with asyncio.TaskGroup() as group:
                for body in step[1]:
                    group.create_task(_run(body, concurrent))
        else:
            for body in step[1]:
                await _run(body, concurrent)


async def _committed(program: list, concurrent: bool) -> list[str]:
    await Author.vinyl.all().delete()
    await Author.vinyl.create(name="seed", email="dup@x")
    try:
        async with vinyl.atomic():
            await _run(program, concurrent)
    except Exception:  # a refusal after a caught failed write at the top level
        pass
    return await committed_names()


@pytest.mark.parametrize("seed", range(30))
async def test_tasks_nested_blocks_commit_what_running_them_in_sequence_commits(backend, seed):
    program = _program(random.Random(seed), "r", 0)
    assert await _committed(program, True) == await _committed(program, False)
    assert await returned() == 0


async def test_sibling_nested_blocks_interleaving_keep_only_the_failed_ones_writes_out():
    """Two tasks each in a nested block, yielding between their statements;
    the one that raises loses exactly its own writes."""

    async def body(tag: str, fail: bool) -> None:
        try:
            async with vinyl.atomic():
                for i in range(3):
                    await Author.vinyl.create(name=f"{tag}{i}")
                    await asyncio.sleep(0)
                if fail:
                    raise Fail
        except Fail:
            pass

    async with vinyl.atomic():
        await Author.vinyl.create(name="o1")
        await asyncio.gather(body("a", True), body("b", False), Author.vinyl.create(name="o2"))
        await Author.vinyl.create(name="o3")
    assert await committed_names() == ["b0", "b1", "b2", "o1", "o2", "o3"]
    assert await returned() == 0
