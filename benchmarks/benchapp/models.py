"""The benchmark schema. The other systems map the same tables.

- ``benchapp_author`` (10k rows, with a datetime and a float, as the
  independent harness of issue 17 has them) and ``benchapp_book`` (50k, FK
  to author, two tags each): reads, joins, prefetches, updates, counts;
- ``benchapp_tag`` (100 rows): the many-to-many side of the prefetches;
- ``benchapp_entry``: inserts (emptied after each measurement);
- ``benchapp_item``: the table streamed with ``async for`` (1M rows).
"""

from __future__ import annotations

import os

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)
    age = models.IntegerField(db_index=True)
    email = models.CharField(max_length=100)
    # A datetime (aware under USE_TZ: a per-row conversion on MySQL) and a float.
    joined = models.DateTimeField(db_index=True)
    rating = models.FloatField()

    objects = models.Manager()


class Tag(models.Model):
    name = models.CharField(max_length=50)

    objects = models.Manager()


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    pages = models.IntegerField()
    tags = models.ManyToManyField(Tag)

    objects = models.Manager()


class Entry(models.Model):
    name = models.CharField(max_length=100)
    value = models.IntegerField()

    objects = models.Manager()


class Item(models.Model):
    n = models.IntegerField()
    label = models.CharField(max_length=20)

    objects = models.Manager()


# Django's own cold start (benchmarks/cold.py) measures Django alone: its
# process sets BENCH_WITHOUT_VINYL and never imports vinyl or SQLAlchemy.
if not os.environ.get("BENCH_WITHOUT_VINYL"):
    from vinyl import VinylManager

    for _model in (Author, Tag, Book, Entry, Item):
        _model.add_to_class("vinyl", VinylManager())
