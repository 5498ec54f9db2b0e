"""Models for the relation tests: on_delete variants, custom through, inheritance."""

from __future__ import annotations

from django.db import models

from vinyl import VinylManager


class Owner(models.Model):
    name = models.CharField(max_length=50)

    objects = models.Manager()
    vinyl = VinylManager()


class Item(models.Model):
    """One foreign key per ``on_delete`` behaviour."""

    label = models.CharField(max_length=50)
    cascade = models.ForeignKey(Owner, models.CASCADE, null=True, related_name="cascaded")
    set_null = models.ForeignKey(Owner, models.SET_NULL, null=True, related_name="nulled")
    set_default = models.ForeignKey(
        Owner, models.SET_DEFAULT, null=True, default=None, related_name="defaulted"
    )
    do_nothing = models.ForeignKey(
        Owner, models.DO_NOTHING, null=True, related_name="ignored", db_constraint=False
    )
    protect = models.ForeignKey(Owner, models.PROTECT, null=True, related_name="protected")
    restrict = models.ForeignKey(Owner, models.RESTRICT, null=True, related_name="restricted")

    objects = models.Manager()
    vinyl = VinylManager()


class Person(models.Model):
    name = models.CharField(max_length=50)

    objects = models.Manager()
    vinyl = VinylManager()


class Club(models.Model):
    name = models.CharField(max_length=50)
    members = models.ManyToManyField(Person, through="Membership", related_name="clubs")

    objects = models.Manager()
    vinyl = VinylManager()


class Membership(models.Model):
    person = models.ForeignKey(Person, models.CASCADE)
    club = models.ForeignKey(Club, models.CASCADE)
    role = models.CharField(max_length=20, default="member")

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        unique_together = [("person", "club")]


# -- inheritance ------------------------------------------------------------


class Place(models.Model):
    name = models.CharField(max_length=50)
    address = models.CharField(max_length=80, default="")

    objects = models.Manager()
    vinyl = VinylManager()


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)


class Pizzeria(Restaurant):
    oven = models.CharField(max_length=20, default="wood")
    code = models.CharField(max_length=10, unique=True, null=True)


class Stamped(models.Model):
    """An abstract base with a field and the vinyl manager."""

    created = models.CharField(max_length=20, default="today")

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        abstract = True


class Note(Stamped):
    text = models.CharField(max_length=50)
    place = models.ForeignKey(Place, models.CASCADE, null=True, related_name="notes")


class BigPlace(Place):
    """A proxy with its own method and manager."""

    objects = models.Manager()
    vinyl = VinylManager()

    class Meta:
        proxy = True

    def shout(self) -> str:
        return self.name.upper()
