"""Instances built straight from rows match Django's ``from_db``: no database."""

from typing import Any

from django.db.models.signals import post_init

from tests.testapp.models import Author
from vinyl.models import vinyl_model
from vinyl.translate.instances import from_db_function, plain_construction, row_maker, rows_maker

NAMES = ["id", "name", "age", "email"]


def _as_django(db: str, names: list, values: tuple) -> Any:
    return Author.from_db(db, names, values)


def test_rows_become_the_instances_django_builds():
    make = rows_maker(Author, NAMES, 1)
    objs = make("alias", [("extra", 1, "Ann", 30, None), ("extra", 2, "Bob", 40, "b@x")])
    expected = [_as_django("alias", NAMES, (1, "Ann", 30, None)), _as_django("alias", NAMES, (2, "Bob", 40, "b@x"))]
    for obj, django_obj in zip(objs, expected):
        assert type(obj) is Author
        mine = {k: v for k, v in obj.__dict__.items() if k != "_state"}
        theirs = {k: v for k, v in django_obj.__dict__.items() if k != "_state"}
        assert list(mine.items()) == list(theirs.items())  # same values, same order
        assert (obj._state.adding, obj._state.db) == (False, "alias")
    assert objs[0]._state is not objs[1]._state


def test_columns_left_out_stay_deferred():
    obj = row_maker(Author, ["id", "name"], 0)("alias", (3, "Cy"))
    assert obj.get_deferred_fields() == {"age", "email"}
    assert obj.get_deferred_fields() == Author.from_db("alias", ["id", "name"], (3, "Cy")).get_deferred_fields()


def test_from_db_replacement_reads_values_of_its_names():
    obj = from_db_function(Author, ["id", "age"], None)("alias", ["id", "age"], (4, 50))
    assert (obj.pk, obj.age, obj._state.db, obj._state.adding) == (4, 50, "alias", False)


def test_names_no_attribute_store_can_spell_are_set_too():
    obj = row_maker(Author, ["id", "not an identifier", "class"], 0)("alias", (5, "x", "y"))
    assert obj.__dict__["not an identifier"] == "x" and obj.__dict__["class"] == "y"


def test_foreign_key_columns_are_stored_as_from_db_stores_them():
    from tests.testapp.models import Book

    names = [f.attname for f in Book._meta.concrete_fields]
    values = tuple(range(1, len(names) + 1))
    obj = row_maker(Book, names, 0)("alias", values)
    expected = Book.from_db("alias", names, values)
    assert list(obj.__dict__)[1:] == [k for k in expected.__dict__ if k != "_state"]
    assert obj.author_id == expected.author_id and "author" not in obj._state.fields_cache


def test_models_with_init_receivers_or_custom_setattr_are_not_plain():
    vinyl_author = vinyl_model(Author)
    assert plain_construction(vinyl_author, NAMES)

    def receiver(**kwargs: Any) -> None:
        pass

    post_init.connect(receiver, sender=vinyl_author)
    try:
        assert not plain_construction(vinyl_author, NAMES)
    finally:
        post_init.disconnect(receiver, sender=vinyl_author)

    class Watched(vinyl_author):  # type: ignore[misc,valid-type]
        class Meta:
            proxy = True
            app_label = "testapp"

        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)

    assert not plain_construction(Watched, NAMES)


def test_whole_instance_dict_and_state_are_djangos():
    # Written straight into __dict__: the same keys, in the same order, with
    # the state first, and a state that is Django's (its own dict too).
    from django.db.models.base import ModelState
    from tests.testapp.models import Book

    names = [f.attname for f in Book._meta.concrete_fields]
    values = tuple(range(1, len(names) + 1))
    obj = rows_maker(Book, names, 0)("alias", [values])[0]
    expected = Book.from_db("alias", names, values)
    assert list(obj.__dict__) == list(expected.__dict__)
    assert [v for k, v in obj.__dict__.items() if k != "_state"] == [v for k, v in expected.__dict__.items() if k != "_state"]
    assert type(obj._state) is ModelState
    assert list(obj._state.__dict__.items()) == list(expected._state.__dict__.items())


def test_columns_before_and_after_a_foreign_key_keep_djangos_order_whatever_was_built_first():
    # With a foreign key among them, every column goes into __dict__ after
    # the state (an attribute store): the order is Django's for every subset
    # of columns, whichever subset the class saw first.
    from tests.testapp.models import Book

    names = [f.attname for f in Book._meta.concrete_fields]
    subsets = [names[:1] + names[3:], names, [names[0], names[2], names[1], *names[3:]][:1] + names[2:], names[:2] + names[4:]]
    for subset in subsets:
        values = tuple(range(1, len(subset) + 1))
        obj = rows_maker(Book, subset, 0, width=len(subset))("alias", [values])[0]
        expected = Book.from_db("alias", subset, values)
        assert list(obj.__dict__.items())[1:] == list(expected.__dict__.items())[1:]
        assert list(obj.__dict__)[0] == "_state" and obj.get_deferred_fields() == expected.get_deferred_fields()


def test_annotations_are_set_after_the_columns_as_djangos_iterable_sets_them():
    # (A many-to-many prefetch's extra() column is one: _prefetch_related_val_<key>.)
    make = rows_maker(Author, ["id", "name"], 0, None, (("_prefetch_related_val_book_id", 3), ("not an identifier", 2)))
    [obj] = make("alias", [(7, "Ann", "x", 9)])
    expected = Author.from_db("alias", ["id", "name"], (7, "Ann"))
    expected._prefetch_related_val_book_id = 9
    setattr(expected, "not an identifier", "x")
    assert list(obj.__dict__.items())[1:] == list(expected.__dict__.items())[1:]
    assert obj.get_deferred_fields() == expected.get_deferred_fields()


def test_descriptor_setters_of_djangos_kinds_keep_models_plain_others_do_not():
    """Django's store-only setters (a foreign key's, also on vinyl's copies of the descriptors) keep the
    generated loops; a descriptor_class with a setter of its own does not (tests/test_descriptor_setters.py)."""
    from tests.testapp.models import Book, Coded

    for model in (Book, vinyl_model(Book)):
        assert plain_construction(model, [f.attname for f in Book._meta.concrete_fields])
    for model in (Coded, vinyl_model(Coded)):
        assert not plain_construction(model, ["id", "code", "owner_id"])
        assert plain_construction(model, ["id", "owner_id"])
