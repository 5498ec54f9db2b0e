"""Instances built from rows go through a field's own descriptor setter, as Django's ``from_db`` does.

``Field.descriptor_class`` is Django's documented way to customize what
setting a field's attribute does; ``Model.__init__`` (and so every loaded
instance) calls its ``__set__``. vinyl's generated row loops store values
straight into the instance only where the descriptor's setter is one of
Django's that just stores them.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Prefetch

from tests.testapp.models import Coded, Publisher

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_loaded_instances_go_through_the_descriptors_setter(backend: str) -> None:
    publisher = await Publisher.vinyl.create(name="p")
    await Coded.vinyl.create(code="abc", owner_id=publisher.pk)
    await Coded.vinyl.create(code=None)
    # update() writes the column as given (no instance, no setter).
    await Coded.vinyl.filter(code="abc").update(code="MiXeD")
    alias = settings.SYNC_ALIAS[backend]

    def djangos() -> list:
        plain = [c.code for c in Coded.objects.using(alias).order_by("pk")]
        related = [c.code for c in Coded.objects.using(alias).select_related("owner").order_by("pk")]
        only = [c.code for c in Coded.objects.using(alias).only("code").order_by("pk")]
        prefetched = [c.code for p in Publisher.objects.using(alias).prefetch_related("coded") for c in p.coded.all()]
        return [plain, related, only, prefetched]

    expected = await sync_to_async(djangos)()
    assert expected[0] == ["mixed", None]
    plain = [c.code for c in await Coded.vinyl.order_by("pk")]
    related = [c.code for c in await Coded.vinyl.select_related("owner").order_by("pk")]
    only = [c.code for c in await Coded.vinyl.only("code").order_by("pk")]
    prefetched = [c.code for p in await Publisher.vinyl.prefetch_related("coded") for c in p["coded"]]
    assert [plain, related, only, prefetched] == expected
    streamed = [c.code async for c in Coded.vinyl.order_by("pk").iterator(chunk_size=1)]
    assert streamed == expected[0]
    joined = [p["coded"][0].code for p in await Publisher.vinyl.prefetch_related(
        Prefetch("coded", Coded.vinyl.select_related("owner")))]
    assert joined == expected[3]
    # The joined side: a Publisher's rows with a Coded joined through select_related.
    coded = await Coded.vinyl.select_related("owner").get(owner=publisher)
    assert coded.code == "mixed"
