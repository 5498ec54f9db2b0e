"""Model inheritance: multi-table, abstract bases, proxies."""

from __future__ import annotations

import pytest
from django.db import IntegrityError
from django.db.models.signals import post_save

from tests.relapp.models import BigPlace, Note, Pizzeria, Place, Restaurant
from tests.relations.counting import count_queries

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_multi_table_create_writes_parent_rows_first():
    pizzeria = await Pizzeria.vinyl.create(name="Luigi", serves_pizza=True, oven="gas")
    assert type(pizzeria) is Pizzeria.vinyl.model
    assert isinstance(pizzeria, Restaurant) and isinstance(pizzeria, Place)
    place = await Place.vinyl.get(pk=pizzeria.pk)
    assert place.name == "Luigi"
    restaurant = await Restaurant.vinyl.get(pk=pizzeria.pk)
    assert restaurant.serves_pizza is True


async def test_multi_table_get_joins_the_parents_in_one_query():
    created = await Pizzeria.vinyl.create(name="Luigi", address="Main St", oven="gas")
    with count_queries() as queries:
        pizzeria = await Pizzeria.vinyl.get(pk=created.pk)
    assert len(queries) == 1
    assert (pizzeria.name, pizzeria.address, pizzeria.oven) == ("Luigi", "Main St", "gas")


async def test_multi_table_save_updates_each_table():
    created = await Pizzeria.vinyl.create(name="Luigi", oven="gas")
    created.name = "Mario"
    created.serves_pizza = True
    created.oven = "wood"
    await created.save()
    again = await Pizzeria.vinyl.get(pk=created.pk)
    assert (again.name, again.serves_pizza, again.oven) == ("Mario", True, "wood")
    created.address = "Side St"
    await created.save(update_fields=["address"])
    assert (await Place.vinyl.get(pk=created.pk)).address == "Side St"


async def test_multi_table_delete_removes_every_table():
    pizzeria = await Pizzeria.vinyl.create(name="Luigi")
    await Note.vinyl.create(text="n", place_id=pizzeria.pk)
    count, per_model = await pizzeria.delete()
    assert per_model == {
        "relapp.Pizzeria": 1,
        "relapp.Restaurant": 1,
        "relapp.Place": 1,
        "relapp.Note": 1,
    }
    assert await Place.vinyl.count() == 0


async def test_deleting_the_parent_removes_the_child():
    pizzeria = await Pizzeria.vinyl.create(name="Luigi")
    place = await Place.vinyl.get(pk=pizzeria.pk)
    await place.delete()
    assert await Pizzeria.vinyl.count() == 0 and await Restaurant.vinyl.count() == 0


async def test_multi_table_create_is_all_or_nothing():
    await Pizzeria.vinyl.create(name="One", code="x")
    # The parent rows are inserted first; the child row then fails on its
    # unique code, and the parent rows are rolled back with it.
    with pytest.raises(IntegrityError):
        await Pizzeria.vinyl.create(name="Two", code="x")
    assert await Place.vinyl.count() == 1
    assert await Restaurant.vinyl.count() == 1


async def test_parent_and_child_relations():
    pizzeria = await Pizzeria.vinyl.create(name="Luigi")
    place = await Place.vinyl.get(pk=pizzeria.pk)
    restaurant = await place.restaurant
    assert type(restaurant) is Restaurant.vinyl.model
    assert (await restaurant.pizzeria).pk == pizzeria.pk
    parent = await pizzeria.place_ptr
    assert type(parent) is Place.vinyl.model and parent.name == "Luigi"
    with pytest.raises(Restaurant.DoesNotExist):
        await (await Place.vinyl.create(name="bare")).restaurant
    places = await Place.vinyl.select_related("restaurant__pizzeria").order_by("id")
    assert places[0]["restaurant"]["pizzeria"].oven == "wood"
    assert places[1]["restaurant"] is None


async def test_relations_of_the_parent_work_on_the_child():
    pizzeria = await Pizzeria.vinyl.create(name="Luigi")
    await pizzeria.notes.create(text="tasty")
    assert [n.text for n in await pizzeria.notes.all()] == ["tasty"]
    got = await Pizzeria.vinyl.prefetch_related("notes").get(pk=pizzeria.pk)
    assert [n.text for n in got["notes"]] == ["tasty"]


async def test_abstract_base_fields_and_manager_are_inherited():
    note = await Note.vinyl.create(text="hello")
    assert type(note) is Note.vinyl.model
    assert note.created == "today"
    assert (await Note.vinyl.get(pk=note.pk)).created == "today"
    from tests.relapp.models import Stamped

    with pytest.raises(TypeError, match="abstract"):
        Stamped.vinyl  # noqa: B018


async def test_proxy_model_instances_are_of_the_proxy_vinyl_class():
    await Place.vinyl.create(name="big one")
    big = await BigPlace.vinyl.get()
    assert type(big) is BigPlace.vinyl.model
    assert isinstance(big, BigPlace) and isinstance(big, Place)
    assert big.shout() == "BIG ONE"
    created = await BigPlace.vinyl.create(name="another")
    assert type(created) is BigPlace.vinyl.model
    assert await Place.vinyl.count() == 2
    assert await created.delete() == (1, {"relapp.BigPlace": 1})


async def test_proxy_signals_have_the_proxy_as_sender():
    senders = []

    async def receiver(sender, instance, created, **kwargs):
        senders.append((sender, created))

    post_save.connect(receiver, sender=BigPlace)
    try:
        big = await BigPlace.vinyl.create(name="x")
        await Place.vinyl.create(name="y")
        big.name = "z"
        await big.save()
    finally:
        post_save.disconnect(receiver, sender=BigPlace)
    assert senders == [(BigPlace, True), (BigPlace, False)]
