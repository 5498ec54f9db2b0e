"""Drive the Starlette app as a client would: ``pytest test_shop_app.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from shop_app import app  # sets Django up

from django.core.management import call_command  # noqa: E402

import vinyl  # noqa: E402
from shop.models import Order, Product  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def schema() -> None:
    call_command("migrate", verbosity=0)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    await Order.vinyl.all().delete()
    await Product.vinyl.all().delete()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as c:
        yield c
    await vinyl.dispose()


async def test_core_and_vinyl_commit_together(client: httpx.AsyncClient) -> None:
    tea = (await client.post("/products", json={"name": "tea", "stock": 5})).json()
    placed = await client.post("/orders", json={"product": tea["id"], "quantity": 3})
    assert placed.status_code == 201
    assert placed.json()["stock_left"] == 2  # vinyl saw Core's update: same transaction
    assert (await client.get("/stats")).json() == {"sold": {"tea": 3}}


async def test_a_failed_order_rolls_back_core_and_vinyl(client: httpx.AsyncClient) -> None:
    tea = (await client.post("/products", json={"name": "tea", "stock": 1})).json()
    refused = await client.post("/orders", json={"product": tea["id"], "quantity": 2})
    assert refused.status_code == 409
    assert await Order.vinyl.count() == 0  # vinyl's insert was rolled back
    assert (await client.get("/products")).json()["products"][0]["stock"] == 1


async def test_core_and_vinyl_use_one_pool(client: httpx.AsyncClient) -> None:
    await client.post("/products", json={"name": "tea", "stock": 1})
    await client.get("/stats")
    await client.get("/products")
    engine = vinyl.get_engine()
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    # Between requests at most one connection is out: vinyl keeps its last
    # idle one checked out for its next statement, gives it to anyone who asks
    # the pool for a connection first (SQLAlchemy code included), and back to
    # the pool after at most a second without use.
    assert pool.checkedout() <= 1
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    await asyncio.sleep(1.2)
    assert pool.checkedout() == 0
    # The same engine object serves both, so one pool holds both's connections.
    assert engine is vinyl.get_engine()
    assert pool.size() == 5
