"""vinyl's quicker ``Model.__init__`` (vinyl.construct) builds what Django's does.

Each case builds an instance both ways, Django's ``Model.__init__`` and
vinyl's, and compares the attributes, their order and the state (or the
error). No database.
"""

from __future__ import annotations

import pytest
from django.db import models
from django.db.models.base import DEFERRED
from django.db.models.signals import post_init, pre_init
from django.test.utils import isolate_apps

from tests.nativeapp.models import Bookmark, TaggedItem
from tests.testapp.models import Author, Book, Profile, UUIDKeyed
from vinyl import VinylManager, construct
from vinyl.translate.instances import plain_construction


def _build(init, cls, args, kwargs):
    obj = cls.__new__(cls)
    try:
        init(obj, *args, **kwargs)
    except Exception as exc:  # compared between the two builds
        return ("error", type(exc), str(exc))
    state = obj.__dict__["_state"]
    attrs = [(k, v) for k, v in obj.__dict__.items() if k != "_state"]
    return ("ok", list(obj.__dict__), attrs, state.adding, state.db, dict(state.__dict__.get("fields_cache", {})))


def assert_same(cls, *args, **kwargs):
    """Django's and vinyl's __init__ give ``cls(*args, **kwargs)`` alike:
    the generic one and the class's own (generated for it on its first
    instance, see construct._keyword_init)."""
    django = _build(construct._django_init, cls, args, dict(kwargs))
    ours = _build(construct._init, cls, args, dict(kwargs))
    assert ours == django
    _build(construct._init, cls, (), {})  # its first instance: the class's own __init__ is in place
    assert _build(cls.__init__, cls, args, dict(kwargs)) == django
    return ours


def test_models_with_a_vinyl_manager_get_the_quick_init():
    assert Author(name="a").name == "a"
    # From its first instance on, the class's keyword path is its own function.
    assert construct.is_keyword_init(vars(Author)["__init__"])
    assert construct.builds_like_django(Author.vinyl.model.__init__)
    # Reads still build rows without any __init__ (vinyl.translate.instances).
    assert plain_construction(Author.vinyl.model, ["id", "name", "age", "email"])


def test_vinyl_classes_get_their_own_keyword_init():
    # create() builds instances of the vinyl class; its field descriptors
    # (vinyl.descriptors) store values as Django's do.
    for cls, kwargs in (
        (Author.vinyl.model, {"name": "a", "age": 3}),
        (Book.vinyl.model, {"title": "t", "author_id": 1}),
    ):
        assert_same(cls, **kwargs)
        assert_same(cls, *([None] * len(cls._meta.concrete_fields)))
        assert construct.is_keyword_init(vars(cls)["__init__"])
        assert construct._specs[cls].direct


@pytest.mark.parametrize(
    "cls, args, kwargs",
    [
        (Author, (), {}),
        (Author, (), {"name": "a"}),
        (Author, (), {"name": "a", "age": 3, "email": None, "id": 7}),
        (Author, (), {"name": DEFERRED, "age": 1}),
        (Author, (1, "a", 3, "e"), {}),
        (Author, (1, DEFERRED, 3, DEFERRED), {}),
        (Author, (1, "a"), {}),  # fewer values than fields: Django's own path
        (Author, (1, "a", 3, "e", 5), {}),  # too many: Django's IndexError
        (Author, (1,), {"name": "a"}),  # mixed
        (Author, (1,), {"id": 2}),  # both ways: Django's TypeError
        (Author, (), {"pk": 4, "name": "a"}),  # a property
        (Author, (), {"nope": 1}),  # unknown: Django's TypeError
        (Book, (), {"title": "t", "author_id": 1, "publisher_id": None}),
        (Book, (), {"title": "t", "author_id": DEFERRED}),
        (Book, (None, "t", 1, None, 3, 4, None), {}),
        (Profile, (), {"author_id": 2}),
        (TaggedItem, (), {"object_id": 1, "content_type_id": 1}),
        (Bookmark, (), {}),
    ],
)
def test_same_instance_as_djangos(cls, args, kwargs):
    assert_same(cls, *args, **kwargs)


def test_related_object_by_field_name_goes_through_djangos_descriptor():
    author = Author(id=5, name="a")
    result = assert_same(Book, title="t", author=author)
    assert ("author_id", 5) in result[2]
    book = Book(title="t", author=author)
    assert book.author is author


def test_callable_default_is_called_once_per_instance():
    first, second = UUIDKeyed(), UUIDKeyed()
    assert first.pk is not None and first.pk != second.pk


def test_defaults_are_djangos():
    # Constant defaults are read once; callable ones and db_default expressions
    # are built per instance, as Django's get_default() does.
    spec = construct._spec_of(Author)
    assert [(name, constant, factory is None) for name, constant, factory in spec.by_keyword] == [
        ("id", None, True), ("name", "", True), ("age", 0, True), ("email", None, True),
    ]
    assert construct._spec_of(UUIDKeyed).by_keyword[0][2] is not None


@isolate_apps("tests.testapp")
def test_db_default_expression_is_new_or_shared_per_instance_as_djangos():
    class Stamp(models.Model):
        n = models.IntegerField(db_default=3)
        vinyl = VinylManager()

        class Meta:
            app_label = "testapp"

    first, second = Stamp(), Stamp()
    assert type(first.n).__name__ == "DatabaseDefault"
    # Django 5.2 builds a new expression per instance, 6.1 shares one.
    theirs = [Stamp.__new__(Stamp), Stamp.__new__(Stamp)]
    for instance in theirs:
        construct._django_init(instance)
    assert (first.n is second.n) == (theirs[0].n is theirs[1].n)
    assert_same(Stamp)


def test_init_signals_are_sent_as_by_django():
    seen = []

    def before(sender, args, kwargs, **extra):
        seen.append(("pre", sender, args, dict(kwargs)))

    def after(sender, instance, **extra):
        seen.append(("post", sender, instance.name))

    pre_init.connect(before, sender=Author)
    post_init.connect(after, sender=Author)
    try:
        Author(name="a")
        Author(1, "b", 2, None)
        Book(title="t", author_id=1)  # no receiver for Book
    finally:
        pre_init.disconnect(before, sender=Author)
        post_init.disconnect(after, sender=Author)
    assert seen == [
        ("pre", Author, (), {"name": "a"}),
        ("post", Author, "a"),
        ("pre", Author, (1, "b", 2, None), {}),
        ("post", Author, "b"),
    ]


def test_post_init_receiver_alone_runs_after_the_quick_path():
    seen = []

    def after(sender, instance, **extra):
        seen.append((sender, instance.__dict__.get("name")))

    post_init.connect(after, sender=Author)
    try:
        Author(name="a")
    finally:
        post_init.disconnect(after, sender=Author)
    assert seen == [(Author, "a")]


@isolate_apps("tests.testapp")
def test_own_init_and_descriptors_are_kept():
    class Upper:
        """A data descriptor: stores the value upper-cased."""

        def __set_name__(self, owner, name):
            self.name = name

        def __get__(self, instance, owner=None):
            return self if instance is None else instance.__dict__.get(self.name)

        def __set__(self, instance, value):
            instance.__dict__[self.name] = value.upper() if isinstance(value, str) else value

    class Shouting(models.Model):
        word = models.CharField(max_length=10, default="x")
        number = models.IntegerField(default=5)
        vinyl = VinylManager()

        class Meta:
            app_label = "testapp"

    Shouting.word = Upper()
    Shouting.word.__set_name__(Shouting, "word")
    construct._specs.pop(Shouting, None)
    assert_same(Shouting, word="hey")
    assert assert_same(Shouting, None, "hey", 3)[2] == [("id", None), ("word", "HEY"), ("number", 3)]
    assert Shouting(word="hey").word == "HEY"

    class Mixin:
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.mixed = True

    class Mixed(models.Model, Mixin):
        name = models.CharField(max_length=10)
        vinyl = VinylManager()

        class Meta:
            app_label = "testapp"

    assert Mixed(name="a").mixed is True  # the mixin's __init__ still runs

    class Own(models.Model):
        name = models.CharField(max_length=10)
        vinyl = VinylManager()

        class Meta:
            app_label = "testapp"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.own = True

    assert Own.__init__ is not construct._init
    assert Own(name="a").own is True


@isolate_apps("tests.testapp")
def test_multi_table_child_and_proxy_use_their_own_fields():
    class Parent(models.Model):
        name = models.CharField(max_length=10)
        vinyl = VinylManager()

        class Meta:
            app_label = "testapp"

    class Child(Parent):
        extra = models.IntegerField(default=2)

        class Meta:
            app_label = "testapp"

    class Proxy(Parent):
        class Meta:
            app_label = "testapp"
            proxy = True

    assert_same(Child, name="a", extra=3)
    assert_same(Child, name="a")
    assert_same(Child, None, "a", None, 4)
    assert_same(Proxy, name="a")
    assert Child(name="a").extra == 2
