"""The differential harness's model set: Django's sync ORM and vinyl read the same rows.

Every field type Django ships (integers of each size and sign, nullable
fields, text, decimal, float, booleans, dates and times, UUID, JSON, binary),
the relations (FK, one-to-one, many-to-many, multi-table inheritance) and
``Meta.ordering``. Each model has Django's manager (the oracle, used on the
sync alias) and vinyl's.
"""

from __future__ import annotations

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from vinyl import VinylManager


class LowerCaseAttribute(DeferredAttribute):
    """A field descriptor with a setter of its own (``Field.descriptor_class``): a value set on an
    instance, loading from the database included, is stored lower-cased; update() writes as given."""

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value.lower() if isinstance(value, str) else value


class LowerCaseField(models.CharField):
    descriptor_class = LowerCaseAttribute


class Tag(models.Model):
    """Many-to-many target; ordered by a unique name."""

    name = models.CharField(max_length=40, unique=True)
    weight = models.SmallIntegerField(default=0)

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["name"]


class Owner(models.Model):
    """Foreign-key target and parent of a multi-table inheritance child."""

    name = models.CharField(max_length=60)
    age = models.IntegerField(null=True)
    joined = models.DateField(null=True)

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["name", "id"]


class Premium(Owner):
    """Multi-table inheritance: a child table joined to Owner (inherits its ordering)."""

    level = models.PositiveSmallIntegerField(default=0)
    since = models.DateTimeField(null=True)
    # A descriptor with a setter of its own: instances of this model are built through from_db (vinyl's
    # generated row loops apply to the others), here and not on Item, whose rows most shapes read.
    code = LowerCaseField(max_length=80, null=True)

    objects = models.Manager()
    vinyl = VinylManager()


class Profile(models.Model):
    """One-to-one to Owner (``owner.profile`` is the reverse side)."""

    owner = models.OneToOneField(Owner, on_delete=models.CASCADE, related_name="profile")
    bio = models.TextField(default="")
    score = models.FloatField(null=True)

    objects = models.Manager()
    vinyl = VinylManager()


class Item(models.Model):
    """One column of every field type, most of them nullable; no Meta.ordering."""

    name = models.CharField(max_length=80)
    text = models.TextField(null=True)
    small = models.SmallIntegerField(null=True)
    psmall = models.PositiveSmallIntegerField(null=True)
    integer = models.IntegerField(null=True)
    pint = models.PositiveIntegerField(null=True)
    big = models.BigIntegerField(null=True)
    pbig = models.PositiveBigIntegerField(null=True)
    dec = models.DecimalField(max_digits=12, decimal_places=3, null=True)
    flt = models.FloatField(null=True)
    flag = models.BooleanField(default=False)
    maybe = models.BooleanField(null=True)
    day = models.DateField(null=True)
    at = models.DateTimeField(null=True)
    clock = models.TimeField(null=True)
    span = models.DurationField(null=True)
    uid = models.UUIDField(null=True)
    data = models.JSONField(null=True)
    blob = models.BinaryField(null=True)
    slug = models.SlugField(max_length=40, default="", blank=True)
    ip = models.GenericIPAddressField(null=True)
    owner = models.ForeignKey(Owner, on_delete=models.SET_NULL, null=True, related_name="items")
    tags = models.ManyToManyField(Tag, related_name="items", blank=True)

    objects = models.Manager()
    vinyl = VinylManager()
