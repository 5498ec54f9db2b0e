"""Models for Django's model API beyond queries: validation, dates, generic relations."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from vinyl import VinylManager


class Slot(models.Model):
    """Unique fields, unique_together, Meta.constraints and dates to walk."""

    code = models.CharField(max_length=20, unique=True)
    room = models.CharField(max_length=20)
    day = models.DateField()
    seats = models.IntegerField(default=1)
    starts = models.DateTimeField()

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        unique_together = [("room", "day")]
        constraints = [
            models.CheckConstraint(condition=Q(seats__gte=1), name="native_slot_seats"),
            models.UniqueConstraint(fields=["code", "seats"], name="native_slot_code_seats"),
        ]


class TaggedItem(models.Model):
    tag = models.CharField(max_length=30)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["id"]


class Bookmark(models.Model):
    url = models.CharField(max_length=100)
    tags = GenericRelation(TaggedItem)

    objects = models.Manager()
    vinyl = VinylManager()


class Note(models.Model):
    text = models.CharField(max_length=100)
    tags = GenericRelation(TaggedItem)

    objects = models.Manager()
    vinyl = VinylManager()
