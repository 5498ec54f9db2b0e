"""A Starlette app where SQLAlchemy Core and vinyl share one engine and pool.

``uvicorn shop_app:app``. The schema comes from Django's migrations
(``python -m django migrate --settings shop.settings``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django.setup()

from sqlalchemy import column, func, select, table, update  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

import vinyl  # noqa: E402
from shop.models import Order, Product  # noqa: E402

# Core's view of the tables Django created: names only, no second schema.
products = table("shop_product", column("id"), column("name"), column("stock"))
orders = table("shop_order", column("id"), column("product_id"), column("quantity"))


async def list_products(request: Request) -> JSONResponse:
    """vinyl alone."""
    rows = await Product.vinyl.order_by("name").values("id", "name", "stock")
    return JSONResponse({"products": rows})


async def add_product(request: Request) -> JSONResponse:
    data = await request.json()
    product = await Product.vinyl.create(name=data["name"], stock=data.get("stock", 0))
    return JSONResponse({"id": product.pk, "name": product.name, "stock": product.stock}, status_code=201)


async def stats(request: Request) -> JSONResponse:
    """SQLAlchemy Core alone, on vinyl's engine (the same pool)."""
    query = (
        select(products.c.name, func.coalesce(func.sum(orders.c.quantity), 0).label("sold"))
        .select_from(products.outerjoin(orders, orders.c.product_id == products.c.id))
        .group_by(products.c.name)
        .order_by(products.c.name)
    )
    async with vinyl.get_engine().connect() as conn:
        rows = (await conn.execute(query)).all()
    return JSONResponse({"sold": {name: int(sold) for name, sold in rows}})


class OutOfStock(Exception):
    pass


async def place_order(request: Request) -> JSONResponse:
    """Core decrements the stock, vinyl records the order: one transaction."""
    data = await request.json()
    quantity = int(data["quantity"])
    try:
        async with vinyl.get_engine().begin() as conn:  # commits at the end, or rolls back
            result = await conn.execute(
                update(products)
                .where(products.c.id == data["product"], products.c.stock >= quantity)
                .values(stock=products.c.stock - quantity)
            )
            async with vinyl.use_connection(conn):
                order = await Order.vinyl.create(product_id=data["product"], quantity=quantity)
                if result.rowcount != 1:
                    # The order row above is rolled back with everything else.
                    raise OutOfStock
                product = await Product.vinyl.get(pk=data["product"])
    except OutOfStock:
        return JSONResponse({"error": "out of stock"}, status_code=409)
    return JSONResponse({"order": order.pk, "stock_left": product.stock}, status_code=201)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await vinyl.dispose()  # close the pool on shutdown


app = Starlette(
    routes=[
        Route("/products", list_products, methods=["GET"]),
        Route("/products", add_product, methods=["POST"]),
        Route("/orders", place_order, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ],
    lifespan=lifespan,
)
