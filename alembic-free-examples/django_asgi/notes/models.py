from __future__ import annotations

from django.db import models

from vinyl import VinylManager


class Notebook(models.Model):
    name = models.CharField(max_length=100, unique=True)

    objects = models.Manager()
    vinyl = VinylManager()


class Note(models.Model):
    notebook = models.ForeignKey(Notebook, on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        ordering = ["-created", "-id"]
