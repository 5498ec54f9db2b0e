"""Drive the ASGI app as a client would: ``pytest test_notes_site.py``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import django
import httpx
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notes_site.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

import vinyl  # noqa: E402
from notes.models import Notebook  # noqa: E402
from notes_site.asgi import application  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def schema() -> None:
    call_command("migrate", verbosity=0)  # Django's migrations, sync, on "default"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    await Notebook.vinyl.all().delete()  # and their notes (CASCADE)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://notes.test") as c:
        yield c
    await vinyl.dispose()


async def test_create_list_update_and_delete_notes(client: httpx.AsyncClient) -> None:
    work = (await client.post("/notebooks/", json={"name": "work"})).json()
    created = await client.post("/notes/", json={"notebook": work["id"], "title": "Plan", "body": "ship"})
    assert created.status_code == 201
    note = created.json()
    assert note["notebook"] == "work"

    listed = (await client.get("/notes/", params={"q": "pla"})).json()["notes"]
    assert [n["title"] for n in listed] == ["Plan"]

    patched = await client.patch(f"/notes/{note['id']}/", json={"title": "Plan v2"})
    assert patched.json()["title"] == "Plan v2"
    assert (await client.delete(f"/notes/{note['id']}/")).status_code == 204
    assert (await client.get(f"/notes/{note['id']}/")).status_code == 404


async def test_move_notes_is_one_transaction(client: httpx.AsyncClient) -> None:
    a = (await client.post("/notebooks/", json={"name": "a"})).json()
    b = (await client.post("/notebooks/", json={"name": "b"})).json()
    for title in ("one", "two"):
        await client.post("/notes/", json={"notebook": a["id"], "title": title})
    assert (await client.post(f"/notebooks/{a['id']}/move-to/{b['id']}/")).json() == {"moved": 2}
    # A missing target: the 404 rolls the whole block back.
    assert (await client.post(f"/notebooks/{b['id']}/move-to/999999/")).status_code == 404
    names = [n["name"] for n in (await client.get("/notebooks/")).json()["notebooks"]]
    assert names == ["b"]
    assert {n["notebook"] for n in (await client.get("/notes/")).json()["notes"]} == {"b"}


async def test_concurrent_requests_each_get_a_connection(client: httpx.AsyncClient) -> None:
    import asyncio

    nb = (await client.post("/notebooks/", json={"name": "n"})).json()
    responses = await asyncio.gather(
        *(client.post("/notes/", json={"notebook": nb["id"], "title": f"t{i}"}) for i in range(10))
    )
    assert {r.status_code for r in responses} == {201}
    assert len((await client.get("/notes/")).json()["notes"]) == 10
