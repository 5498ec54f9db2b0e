"""``Model.vinyl`` offers the QuerySet API as explicit, typed methods."""

from __future__ import annotations

import inspect

import pytest

from tests.testapp.models import Author
from vinyl.queryset import VinylQuerySet

CHAINABLE = (
    "all", "filter", "exclude", "complex_filter", "order_by", "reverse", "distinct",
    "values", "values_list", "annotate", "alias", "select_related",
    "prefetch_related", "only", "defer", "none", "select_for_update", "union",
    "intersection", "difference", "dates", "datetimes", "using",
)  # fmt: skip
TERMINAL = (
    "get", "first", "last", "latest", "earliest", "count", "exists", "contains",
    "aggregate", "in_bulk", "create", "get_or_create", "update_or_create",
    "bulk_create", "bulk_update", "update", "delete", "explain",
)  # fmt: skip


@pytest.mark.parametrize("name", CHAINABLE)
def test_chainable_methods_start_a_queryset(name: str) -> None:
    assert not inspect.iscoroutinefunction(getattr(Author.vinyl, name))
    assert hasattr(VinylQuerySet, name)


@pytest.mark.parametrize("name", TERMINAL)
def test_terminal_methods_are_coroutine_functions(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(Author.vinyl, name))
    assert inspect.iscoroutinefunction(getattr(VinylQuerySet, name))


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError):
        Author.vinyl.no_such_method  # noqa: B018


def test_manager_is_not_reachable_from_instances() -> None:
    with pytest.raises(AttributeError, match="isn't accessible via Author instances"):
        Author(name="x").vinyl  # noqa: B018


def test_queryset_chain_from_manager() -> None:
    qs = Author.vinyl.filter(name="a").exclude(age=3)
    assert isinstance(qs, VinylQuerySet)
    assert qs.model is Author.vinyl.model


def test_unknown_names_on_the_manager_raise_attribute_error():
    with pytest.raises(AttributeError, match="nonsense"):
        Author.vinyl.nonsense


def test_the_manager_offers_the_querysets_own_read_coroutines() -> None:
    # One coroutine per read: Model.vinyl.get() is VinylQuerySet.get run
    # from the manager's get_queryset(), not a proxy awaiting it.
    from vinyl.related import VinylRelatedManager

    for name in ("get", "count", "exists"):
        assert getattr(type(Author.vinyl), name) is getattr(VinylQuerySet, name)
        assert getattr(VinylRelatedManager, name) is getattr(VinylQuerySet, name)


def test_the_manager_offers_the_querysets_create_coroutine() -> None:
    # Model.vinyl.create() is VinylQuerySet.create run from the manager's
    # get_queryset() (one coroutine); related managers keep their own.
    from vinyl.related import VinylRelatedManager

    assert type(Author.vinyl).create is VinylQuerySet.create
    assert VinylRelatedManager.create is not VinylQuerySet.create


def test_unknown_names_are_plain_attribute_errors_without_a_lookup_hook() -> None:
    # No __getattr__ on the manager or the QuerySet: every attribute read of
    # theirs on the read path (self._recipe, qs.filter...) keeps CPython's
    # generic, specialisable lookup; a missing name is Python's own error.
    for obj in (Author.vinyl, Author.vinyl.all()):
        assert "__getattr__" not in {name for cls in type(obj).__mro__ for name in vars(cls)}
        with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
            obj.nonsense  # noqa: B018
