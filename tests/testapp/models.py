"""Models shared by the test suite."""

from __future__ import annotations

import uuid

from django.db import models

from vinyl import VinylManager


class Publisher(models.Model):
    name = models.CharField(max_length=100)

    objects = models.Manager()
    vinyl = VinylManager()


class Author(models.Model):
    name = models.CharField(max_length=100)
    age = models.IntegerField(default=0)
    email = models.CharField(max_length=100, unique=True, null=True, blank=True)

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["id"]
        get_latest_by = "age"

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    objects = models.Manager()
    vinyl = VinylManager()


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    publisher = models.ForeignKey(Publisher, on_delete=models.SET_NULL, null=True, blank=True)
    pages = models.IntegerField(default=0)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    published = models.DateField(null=True, blank=True)
    tags = models.ManyToManyField(Tag, blank=True)

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["id"]


class Profile(models.Model):
    author = models.OneToOneField(Author, on_delete=models.CASCADE)
    bio = models.TextField(default="")

    objects = models.Manager()
    vinyl = VinylManager()


class AllTypes(models.Model):
    """One column of every common field type, all nullable."""

    big = models.BigIntegerField(null=True)
    small = models.SmallIntegerField(null=True)
    positive = models.PositiveIntegerField(null=True)
    flag = models.BooleanField(null=True)
    text = models.TextField(null=True)
    char = models.CharField(max_length=50, null=True)
    decimal = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    floating = models.FloatField(null=True)
    day = models.DateField(null=True)
    moment = models.DateTimeField(null=True)
    clock = models.TimeField(null=True)
    span = models.DurationField(null=True)
    uid = models.UUIDField(null=True)
    data = models.JSONField(null=True)
    blob = models.BinaryField(null=True)
    ip = models.GenericIPAddressField(null=True)
    slug = models.SlugField(null=True)
    email = models.EmailField(null=True)
    url = models.URLField(null=True)

    objects = models.Manager()
    vinyl = VinylManager()


class UUIDKeyed(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    label = models.CharField(max_length=20)

    objects = models.Manager()
    vinyl = VinylManager()


class Ledger(models.Model):
    """A model whose save() wraps itself in Django's own atomic()."""

    label = models.CharField(max_length=20)
    saves = models.IntegerField(default=0)

    objects = models.Manager()
    vinyl = VinylManager()

    def save(self, *args, **kwargs):
        from django.db import transaction

        with transaction.atomic(using=kwargs.get("using")):
            self.saves += 1
            return super().save(*args, **kwargs)


class LowerCaseAttribute(models.query_utils.DeferredAttribute):
    """A field descriptor with a setter of its own (Field.descriptor_class):
    every value set on an instance is stored lower-cased, loading included."""

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value.lower() if isinstance(value, str) else value


class LowerCaseField(models.CharField):
    descriptor_class = LowerCaseAttribute


class Coded(models.Model):
    """A model with a custom descriptor's setter (see LowerCaseAttribute)."""

    code = LowerCaseField(max_length=20, null=True)
    owner = models.ForeignKey(Publisher, null=True, on_delete=models.SET_NULL, related_name="coded")

    objects = models.Manager()
    vinyl = VinylManager()
