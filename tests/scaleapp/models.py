"""Models for the scale-out tests: routers, replicas, clusters, retried transfers."""

from __future__ import annotations

from django.db import models

from vinyl import VinylManager


class Branch(models.Model):
    name = models.CharField(max_length=50)

    objects = models.Manager()
    vinyl = VinylManager()


class Account(models.Model):
    branch = models.ForeignKey(Branch, models.CASCADE, null=True, related_name="accounts")
    owner = models.CharField(max_length=50)
    balance = models.IntegerField(default=0)

    objects = models.Manager()
    vinyl = VinylManager()
