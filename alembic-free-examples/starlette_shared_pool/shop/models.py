from __future__ import annotations

from django.db import models

from vinyl import VinylManager


class Product(models.Model):
    name = models.CharField(max_length=100, unique=True)
    stock = models.PositiveIntegerField(default=0)

    objects = models.Manager()
    vinyl = VinylManager()


class Order(models.Model):
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()

    objects = models.Manager()
    vinyl = VinylManager()
