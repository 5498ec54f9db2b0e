"""Deletion with Django's ``on_delete`` rules, signals sent with ``asend``.

Django's ``Collector.collect()`` finds what a delete touches (cascades,
SET_NULL / SET_DEFAULT updates, PROTECT / RESTRICT errors); vinyl reuses it
as is. Its ``delete()`` sends ``pre_delete`` / ``post_delete`` with the sync
``Signal.send`` and the collected class as sender; :class:`VinylCollector`
performs the deletion itself and awaits the signals with ``Signal.asend``,
with the user's model class as sender. Everything runs in one bridge call, so
the whole delete is one transaction.
"""

from __future__ import annotations

from collections import Counter
from functools import reduce
from operator import attrgetter, or_
from typing import Any

from django.db import models, transaction
from django.db.models import signals, sql
from django.db.models.deletion import Collector
from django.db.models.query import QuerySet

from vinyl import _bridge, _compat
from vinyl._vinylize import as_vinyl_queryset, origin_model


class VinylCollector(Collector):
    """Django's collector, deleting with awaited signals."""

    def _has_signal_listeners(self, model: type[models.Model]) -> bool:
        # Receivers are connected to the user's model, not its vinyl class.
        return super()._has_signal_listeners(origin_model(model))

    def related_objects(self, related_model: Any, related_fields: Any, objs: Any) -> QuerySet:
        # Cascaded objects reach signal receivers as vinyl instances too.
        return as_vinyl_queryset(super().related_objects(related_model, related_fields, objs))

    def _send(self, signal: Any, model: type[models.Model], obj: Any) -> None:
        if model._meta.auto_created:
            return
        _bridge.await_(
            signal.asend(sender=origin_model(model), instance=obj, using=self.using, origin=self.origin)
        )

    def delete(self) -> tuple[int, dict[str, int]]:
        """Delete what was collected; return ``(count, {label: count})``."""
        for model in list(self.data):
            self.data[model] = sorted(self.data[model], key=attrgetter("pk"))
        # Order models so rows go before the rows they reference.
        self.sort()
        deleted: Counter[str] = Counter()
        with transaction.atomic(using=self.using, savepoint=False):
            for model, obj in self.instances_with_model():
                self._send(signals.pre_delete, model, obj)
            for queryset in self.fast_deletes:
                # (None when the query matches nothing by construction: EmptyResultSet.)
                count = _compat.raw_delete(queryset, self.using)
                if count:
                    deleted[origin_model(queryset.model)._meta.label] += count
            self._apply_field_updates()
            for model, instances in self.data.items():
                pks = [obj.pk for obj in reversed(instances)]
                count = sql.DeleteQuery(model).delete_batch(pks, self.using)
                deleted[origin_model(model)._meta.label] += count
                for obj in instances:
                    self._send(signals.post_delete, model, obj)
        for model, instances in self.data.items():
            for obj in instances:
                setattr(obj, model._meta.pk.attname, None)
        counts = {label: n for label, n in deleted.items() if n}
        return sum(counts.values()), counts

    def _apply_field_updates(self) -> None:
        """Run the SET_NULL / SET_DEFAULT / SET(...) updates."""
        for (field, value), groups in self.field_updates.items():
            lazy: list[QuerySet] = []
            loaded: list[Any] = []
            for group in groups:
                if isinstance(group, QuerySet) and not _compat.is_evaluated(group):
                    lazy.append(group)
                else:
                    loaded.extend(group)
            if lazy:
                reduce(or_, lazy).update(**{field.name: value})
            if loaded:
                query = sql.UpdateQuery(type(loaded[0]))
                query.update_batch(list({obj.pk for obj in loaded}), {field.name: value}, self.using)


def delete_instance(obj: models.Model, using: str, keep_parents: bool = False) -> tuple[int, dict[str, int]]:
    """Delete one instance with its cascades (sync; run it in the bridge)."""
    if obj.pk is None:
        raise ValueError(
            f"{obj._meta.object_name} object can't be deleted because its "
            f"{obj._meta.pk.attname} attribute is set to None."
        )
    collector = VinylCollector(using=using, origin=obj)
    collector.collect([obj], keep_parents=keep_parents)
    return collector.delete()


def delete_queryset(queryset: QuerySet, origin: Any = None) -> tuple[int, dict[str, int]]:
    """Delete the rows of ``queryset`` with their cascades (sync; in the bridge)."""
    _compat.refuse_combined(queryset, "delete")
    if queryset.query.is_sliced:
        raise TypeError("Cannot use 'limit' or 'offset' with delete().")
    if queryset.query.distinct_fields:
        raise TypeError("Cannot call delete() after .distinct(*fields).")
    if _compat.is_values(queryset):
        raise TypeError("Cannot call delete() after .values() or .values_list()")
    target = _compat.chain(queryset)
    # Find the related rows on the database that deletes them.
    _compat.for_write(target)
    target.query.select_for_update = False
    target.query.select_related = False
    target.query.clear_ordering(force=True)
    collector = VinylCollector(using=target.db, origin=origin if origin is not None else queryset)
    collector.collect(target)
    return collector.delete()


__all__ = ["VinylCollector", "delete_instance", "delete_queryset"]
