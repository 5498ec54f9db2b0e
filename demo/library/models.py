"""The demo's models: declared once, used by Django and by vinyl."""

from __future__ import annotations

from django.db import models

from vinyl import VinylManager


class Author(models.Model):
    name = models.CharField(max_length=100)

    objects = models.Manager()  # Django's sync ORM, admin, migrations
    vinyl = VinylManager()  # the same table, asynchronously

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    pages = models.PositiveIntegerField(default=0)

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title
