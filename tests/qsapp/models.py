"""Models for the QuerySet API tests (tests/queryset_api)."""

from __future__ import annotations

from django.db import models

from vinyl import VinylManager


class Gadget(models.Model):
    """A row with a unique natural key, for upserts and get_or_create races."""

    code = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=100, default="")
    count = models.IntegerField(default=0)
    created_by = models.CharField(max_length=20, default="")

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["code"]


class Wide(models.Model):
    """Many columns per row: bulk_create must split batches under the limit."""

    c00 = models.IntegerField()
    c01 = models.IntegerField(default=1)
    c02 = models.IntegerField(default=2)
    c03 = models.IntegerField(default=3)
    c04 = models.IntegerField(default=4)
    c05 = models.IntegerField(default=5)
    c06 = models.CharField(max_length=20, default="six")
    c07 = models.CharField(max_length=20, default="seven")
    c08 = models.CharField(max_length=20, default="eight")
    c09 = models.BigIntegerField(default=9)
    c10 = models.DecimalField(max_digits=8, decimal_places=2, default=10)
    c11 = models.BooleanField(default=True)
    c12 = models.DateField(null=True)
    c13 = models.FloatField(default=13.5)
    c14 = models.TextField(default="fourteen")

    objects = models.Manager()
    vinyl = VinylManager()


class Event(models.Model):
    """Timestamps for dates()/datetimes(), Extract/Trunc and window functions."""

    name = models.CharField(max_length=50)
    kind = models.CharField(max_length=20, default="")
    at = models.DateTimeField()
    score = models.IntegerField(default=0)

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["at"]
