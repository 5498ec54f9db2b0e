from __future__ import annotations

from django.db import models

from vinyl import VinylManager


class Event(models.Model):
    kind = models.CharField(max_length=20)
    amount = models.IntegerField()
    payload = models.TextField()

    objects = models.Manager()
    vinyl = VinylManager()
