"""The C prefetch loops (vinyl.translate._rowbuild) do what their Python twins do.

``attach_owners`` (vinyl.prefetch._attach_owners), ``group_rows``
(vinyl.prefetch._group_rows) and ``cache_querysets``
(vinyl._compat.cache_prefetched's loop) run on the same inputs as the
Python code and leave the same objects behind: each container's keys in
order, values by identity, errors by class and message, and what was done
before an error. Then whole prefetches on each backend, on the C loops and
on the Python ones (the row builder swapped with them), compared object by
object.
"""

from __future__ import annotations

import datetime
import decimal
import gc
import sys
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.db.models import Model, Prefetch
from django.db.models.base import ModelState

from tests.testapp.models import Author, Book
from tests.translate.test_rowbuild import WithNew, WithSetattr
from vinyl import _compat, prefetch
from vinyl.translate import instances

#: The C extension as vinyl loaded it (tests swap instances.ROWBUILD).
COMPILED = instances.ROWBUILD


def _rowbuild() -> Any:
    if COMPILED is None:
        pytest.fail("vinyl.translate._rowbuild is not built or not loaded (pip install -e ., or setup.py build_ext --inplace)")
    return COMPILED


#: Values compared by equality (each run made its own); every other object by
#: the place it was first seen in the walk (see _walk).
PLAIN_VALUES = (int, float, str, bytes, bool, type(None), decimal.Decimal, datetime.date, datetime.time, datetime.timedelta, uuid.UUID)


def _walk(root: Any) -> Any:
    """``root`` as nested tuples: each object reached (instances, states,
    querysets, dicts, lists) numbered when first seen and then named by that
    number, so two walks are equal when the objects hold the same values,
    keys in the same order, and the same objects in the same places."""
    seen: dict[int, int] = {}
    alive: list[Any] = []  # (no id reused during the walk)

    def walk(value: Any) -> Any:
        if isinstance(value, PLAIN_VALUES) or isinstance(value, type):
            return ("value", type(value), value)
        if isinstance(value, tuple):
            return ("tuple", tuple(walk(item) for item in value))
        if id(value) in seen:
            return ("seen", seen[id(value)])
        seen[id(value)] = number = len(seen)
        alive.append(value)
        if isinstance(value, dict):
            return ("dict", number, gc.is_tracked(value), [(walk(k), walk(v)) for k, v in value.items()])
        if isinstance(value, list):
            return ("list", number, [walk(item) for item in value])
        if isinstance(value, (Model, ModelState, prefetch.PrefetchedQuerySet, SimpleNamespace)) or type(value).__module__ == __name__:
            if not hasattr(value, "__dict__"):
                return ("object", number, type(value), gc.is_tracked(value))
            return ("object", number, type(value), gc.is_tracked(value), [(k, walk(v)) for k, v in vars(value).items()])
        return ("other", number, type(value))  # (a Field, a Query, a queryset of a Prefetch...)

    return walk(root)


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Exception as error:  # compared by class and message
        return (type(error), str(error))


def _both(make: Callable[[], Any], compiled: Callable[..., Any], python: Callable[..., Any]) -> None:
    """``compiled(*args)`` and ``python(*args)`` on two copies of ``args``
    (``make()``): the same outcome, the same objects left behind."""
    results = []
    for loop in (compiled, python):
        args = make()
        results.append((_outcome(lambda: loop(*args)), _walk(args)))
    assert results[0] == results[1]


class Row:
    """A made-up prefetched row: a key attribute, a state."""

    def __init__(self, key: Any, cache: Any = None, **extra: Any) -> None:
        self.__dict__["key"] = key
        self._state = ModelState()
        if cache is not None:
            self._state.fields_cache = cache
        for name, value in extra.items():
            setattr(self, name, value)


class DeferredRow(Row):
    """A row whose key is not in its __dict__: its descriptor (here a property) gives it."""

    def __init__(self, key: Any, **extra: Any) -> None:
        self._state = ModelState()
        self._deferred = key

    @property
    def key(self) -> Any:
        return self._deferred


class Owner:
    def __init__(self, name: str) -> None:
        self.name = name


class Groups:
    """A group that is not a list: appended to through its method."""

    def __init__(self) -> None:
        self.items: list = []

    def append(self, row: Any) -> None:
        if row.key == "refused":
            raise ValueError(f"refused {row.key!r}")
        self.items.append(row)


class Cache(dict):
    """A fields_cache of another class (its `in` and item store are the dict's)."""


class RefusingCache:
    """A fields_cache whose `in` raises (``clear``: Django 6.1's ModelState.__del__ calls it)."""

    def __contains__(self, name: Any) -> bool:
        raise TypeError(f"no lookup of {name!r}")

    def clear(self) -> None:
        pass


def _attach_cases() -> Iterator[Callable[[], tuple]]:
    def case(rows: Callable[[], list], keys: tuple = (1, 2, 3), plain: bool = True, groups: Any = None) -> Callable[[], tuple]:
        def make() -> tuple:
            owners = {key: Owner(f"owner {key!r}") for key in keys}
            by_key = groups() if groups is not None else {key: [] for key in keys}
            return (rows(), "key", "owner", owners, by_key, plain)

        return make

    for plain in (True, False):
        yield case(lambda: [Row(1), Row(2), Row(1), Row(3)], plain=plain)
        yield case(lambda: [], plain=plain)
        yield case(lambda: [Row(1), DeferredRow(2), Row(2)], plain=plain)  # a deferred key
        yield case(lambda: [Row(1), Row(4), Row(2)], plain=plain)  # no group, no owner: KeyError
        yield case(lambda: [Row(1), Row((1, 2))], plain=plain)  # KeyError of a tuple key
        yield case(lambda: [Row(1), Row([1])], plain=plain)  # unhashable: TypeError
        yield case(lambda: [Row("a"), Row("b")], keys=("a", "b"), plain=plain)
        yield case(lambda: [Row(1), Row("refused")], keys=(1, "refused"), plain=plain, groups=lambda: {1: Groups(), "refused": Groups()})
        yield case(lambda: [Row(1), object()], plain=plain)  # no __dict__ key, no attribute: AttributeError
    # A row that holds its owner already keeps it; other caches get it.
    yield case(lambda: [Row(1, {"owner": "kept", "other": 1}), Row(2, {}), Row(3, Cache(x=1))], plain=False)
    yield case(lambda: [Row(1, {"owner": None}), Row(2, RefusingCache())], plain=False)  # `in` raises
    yield case(lambda: [Row(1, {"owner": "kept"}), Row(4, {"owner": "kept"}), Row(4, {})], plain=False)  # (owners[4] read only when missing)

    # Groups that are not dicts, owners that are not dicts.
    class Mapping:
        def __init__(self, values: dict) -> None:
            self.values = values

        def __getitem__(self, key: Any) -> Any:
            return self.values[key]

    def mapped() -> tuple:
        owners = {1: Owner("one"), 2: Owner("two")}
        return ([Row(1), Row(2), Row(3)], "key", "owner", Mapping(owners), Mapping({1: [], 2: []}), True)

    yield mapped


def test_attach_owners_does_what_its_python_twin_does() -> None:
    for make in _attach_cases():
        _both(make, _rowbuild().attach_owners, prefetch._attach_owners)


def test_attach_owners_on_model_instances() -> None:
    def make(plain: bool) -> Callable[[], tuple]:
        def made() -> tuple:
            authors = [Author(id=k, name=f"a{k}") for k in (1, 2)]
            books = [Book(id=k, title=f"b{k}", author_id=1 + k % 2) for k in range(5)]
            if not plain:
                books[0]._state.fields_cache["author"] = authors[1]
            return (books, "author_id", "author", {a.id: a for a in authors}, {1: [], 2: []}, plain)

        return made

    for plain in (True, False):
        _both(make(plain), _rowbuild().attach_owners, prefetch._attach_owners)


def _group_cases() -> Iterator[Callable[[], tuple]]:
    log: list = []

    def prepare(value: Any) -> Any:
        log.append(repr(value))
        if value == "bad":
            raise ValueError(f"bad value {value!r}")
        return ("prepared", value) if not isinstance(value, int) else int(value)

    class IntSubclass(int):
        pass

    keys = [1, 2, 1, 0, True, False, IntSubclass(2), "s", None, 3, 2**70, -1, 1.0]
    for ints in (True, False):
        for values in (keys, [1, "bad", 2], [], [[1]]):
            def make(values: list = values, ints: bool = ints) -> tuple:
                log.clear()
                return ([Row(None, extra=value) for value in values], "extra", ints, prepare, {}, log)

            yield make
    # A row without the attribute: AttributeError; a prepared key that is unhashable: TypeError.
    yield lambda: ([Row(None, extra=1), Row(None)], "extra", True, prepare, {}, log)
    yield lambda: ([Row(None, extra=1), Row(None, extra=2)], "extra", True, lambda v: [v], {1: [Row(None)]}, log)
    yield lambda: ([Row(None, extra=1), Row(None, extra=2)], "extra", False, lambda v: [v], {}, log)


def test_group_rows_does_what_its_python_twin_does() -> None:
    for make in _group_cases():
        # (The last argument, the log of prepare's calls, is compared, not passed.)
        _both(make, lambda *args: _rowbuild().group_rows(*args[:5]), lambda *args: prefetch._group_rows(*args[:5]))


def _cache_cases() -> Iterator[Callable[[], tuple]]:
    class WithGetattr:
        def __getattr__(self, name: str) -> Any:
            if name == "_prefetched_objects_cache":
                return None
            raise AttributeError(name)

    class Slotted:
        __slots__ = ("name",)

    class RefusingGetattr:
        def __getattr__(self, name: str) -> Any:
            raise KeyError(name)  # not an AttributeError: getattr(..., None) lets it through

    def owners() -> list:
        made = [Author(id=k, name=f"a{k}") for k in range(3)]
        made[1]._prefetched_objects_cache = {"other": 1}
        made.append(Owner("x"))
        made.append(WithGetattr())
        return made

    def case(objs: Callable[[], list], keyed: bool, sizes: tuple = (0, 0)) -> Callable[[], tuple]:
        def make() -> tuple:
            items = objs()
            rows_of = [[Row(k)] for k in range(len(items) - sizes[0])]
            values = [f"value {k}" for k in range(len(items) - sizes[1])]
            keys = [k for k in range(len(items) - sizes[1])] if keyed else None
            return (prefetch.PrefetchedQuerySet, Author, "db", ("name", None, None, False), "book_set", items, rows_of, values, keys)

        return make

    for keyed in (False, True):
        yield case(owners, keyed)
        yield case(list, keyed)
        yield case(owners, keyed, (1, 0))  # shorter lists: zip stops at the shortest
        yield case(owners, keyed, (0, 2))
        yield case(lambda: [Author(id=1), Slotted()], keyed)  # AttributeError on the store
        yield case(lambda: [Author(id=1), RefusingGetattr()], keyed)
        yield case(lambda: [Author(id=1), SimpleNamespace(_prefetched_objects_cache=5)], keyed)  # TypeError on the store


def test_cache_querysets_does_what_cache_prefetched_does() -> None:
    for make in _cache_cases():
        _both(
            make,
            lambda *args: _compat.cache_prefetched(*args, compiled=_rowbuild().cache_querysets),
            lambda *args: _compat.cache_prefetched(*args, compiled=None),
        )


def test_no_reference_is_leaked_on_success_or_error() -> None:
    module = _rowbuild()
    key, name, cache_name, model, db = object(), "key", "owner-" + str(id(object())), Author, "alias-" + str(id(object()))
    owner = Owner("o")
    watched = (key, owner, cache_name, model, db, prefetch.PrefetchedQuerySet)

    def run(rows: list, groups: dict, owners: dict) -> None:
        module.attach_owners(rows, name, cache_name, owners, groups, True)
        module.attach_owners(rows, name, cache_name, owners, groups, False)
        module.group_rows(rows, name, True, lambda v: v, {})
        module.cache_querysets(prefetch.PrefetchedQuerySet, (("model", model), ("_db", db)), ("_vinyl_key",), ([key],), [owner], "_cache", cache_name)

    gc.collect()
    before = [sys.getrefcount(x) for x in watched]
    rows = [Row(key) for _ in range(10)]
    run(rows, {key: []}, {key: owner})
    del rows, owner.__dict__["_cache"]
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before
    for bad in (Row(object()), object(), Row([1])):
        rows = [Row(key), bad]
        with pytest.raises((KeyError, AttributeError, TypeError)) as raised:
            module.attach_owners(rows, name, cache_name, {key: owner}, {key: []}, True)
        with pytest.raises((KeyError, AttributeError, TypeError)):
            module.attach_owners(rows, name, cache_name, {key: owner}, {key: []}, False)
        with pytest.raises((AttributeError, TypeError)):
            module.group_rows(rows, name, False, lambda v: [v] if v is not key else v, {})
        del raised, rows
        gc.collect()
        assert [sys.getrefcount(x) for x in watched] == before
    with pytest.raises(AttributeError):
        module.cache_querysets(prefetch.PrefetchedQuerySet, (("model", model),), ("_vinyl_key",), ([key, key],), [owner, 5], "_cache", cache_name)
    del owner.__dict__["_cache"]
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before


def test_wrong_arguments_are_refused() -> None:
    module = _rowbuild()

    attach = ([], "key", "owner", {}, {}, True)
    for position, value in ((0, ()), (1, 5), (2, None)):
        args = list(attach)
        args[position] = value
        with pytest.raises(TypeError):
            module.attach_owners(*args)
    group = ([], "key", True, int, {})
    for position, value in ((0, ()), (1, 5), (4, [])):
        args = list(group)
        args[position] = value
        with pytest.raises(TypeError):
            module.group_rows(*args)
    cache = (prefetch.PrefetchedQuerySet, (("model", 1),), ("_x",), ([],), [], "_cache", "name")
    for position, value in (
        (0, WithNew), (0, WithSetattr), (0, 5), (1, [("model", 1)]), (1, (("model",),)), (1, ((5, 1),)),
        (2, ["_x"]), (2, (5,)), (3, ([], [])), (3, ((),)), (4, ()), (5, 5),
    ):  # fmt: skip
        args = list(cache)
        args[position] = value
        with pytest.raises(TypeError):
            module.cache_querysets(*args)
    for function, args in ((module.attach_owners, attach), (module.group_rows, group), (module.cache_querysets, cache)):
        with pytest.raises(TypeError):
            function(*args[:-1])


# -- whole prefetches, on each backend ---------------------------------------------


async def _library() -> None:
    from tests.relapp.models import Club, Membership, Person
    from tests.testapp.models import Coded, Publisher, Tag

    publisher = await Publisher.vinyl.create(name="P")
    tags = [await Tag.vinyl.create(name=f"t{k}") for k in range(3)]
    for k in range(4):
        author = await Author.vinyl.create(name=f"a{k}", age=20 + k)
        for j in range(k):
            book = await Book.vinyl.create(title=f"b{k}.{j}", author=author, pages=j, publisher=publisher if j % 2 else None)
            for tag in tags[: j + 1]:
                await book.tags.aadd(tag)
    await Coded.vinyl.create(owner=publisher)
    people = [await Person.vinyl.create(name=f"p{k}") for k in range(3)]
    for k in range(2):
        club = await Club.vinyl.create(name=f"c{k}")
        for person in people[k:]:
            await Membership.vinyl.create(club=club, person=person)


def _prefetches() -> list[Callable[[], Any]]:
    from tests.relapp.models import Club, Person
    from tests.testapp.models import Publisher, Tag

    return [
        lambda: Author.vinyl.order_by("id").prefetch_related("book_set"),
        lambda: Author.vinyl.order_by("id").prefetch_related(Prefetch("book_set", queryset=Book.vinyl.filter(pages__gte=1).order_by("-pages"))),
        # Rows that hold their owner already (select_related): the non-plain loop.
        lambda: Author.vinyl.order_by("id").prefetch_related(Prefetch("book_set", queryset=Book.vinyl.select_related("author"))),
        lambda: Book.vinyl.order_by("id").prefetch_related("tags"),
        lambda: Tag.vinyl.order_by("id").prefetch_related("book_set"),
        lambda: Author.vinyl.order_by("id").prefetch_related("book_set__tags"),
        lambda: Author.vinyl.order_by("id").prefetch_related("book_set__tags", "book_set__publisher"),
        # Two relations cached on one owner: the second finds its cache.
        lambda: Publisher.vinyl.order_by("id").prefetch_related("book_set", "coded"),
        lambda: Tag.vinyl.order_by("id").prefetch_related("book_set__author__book_set"),
        lambda: Club.vinyl.order_by("id").prefetch_related("members"),
        lambda: Person.vinyl.order_by("id").prefetch_related("clubs__members"),
    ]


@pytest.mark.usefixtures("vinyl_db")
async def test_prefetches_on_the_c_loops_and_the_python_ones_cache_the_same_objects(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from vinyl.translate.plan_cache import plan_cache_for

    module = _rowbuild()
    await _library()
    calls: list[str] = []

    def counted(name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls.append(name)
            return getattr(module, name)(*args)

        return call

    counting = SimpleNamespace(**{name: counted(name) for name in ("build_rows", "attach_owners", "group_rows", "cache_querysets")})
    for query in _prefetches():
        walks = []
        for rowbuild in (counting, None):
            monkeypatch.setattr(instances, "ROWBUILD", rowbuild)
            plan_cache_for("vinyl_default").clear()
            for _ in range(2):  # cold, then on its plans
                objs = await query()
                assert objs
                walks.append(_walk(objs))
        assert walks[0] == walks[2] and walks[1] == walks[3]
    assert {"attach_owners", "group_rows", "cache_querysets"} <= set(calls)
