"""The C row builder (vinyl.translate._rowbuild) builds what the generated Python builds.

Every shape is built by both builders and compared field by field: the
instance's class, its ``__dict__`` (keys in order, values by identity), its
state's class and ``__dict__``; errors by class and message. Then the same
with rows from each backend's driver (asyncpg's Records on PostgreSQL).
"""

from __future__ import annotations

import datetime
import gc
import logging
import sys
import zoneinfo
from types import SimpleNamespace
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.db.models.base import ModelState

from tests.testapp.models import AllTypes, Author, Book, Coded, Profile, Publisher, Tag, UUIDKeyed
from vinyl.models import vinyl_model
from vinyl.translate import instances
from vinyl.translate.converters import value_expressions
from vinyl.translate.instances import Joined, joined_rows_maker, load_rowbuild, rows_maker

#: A fetch mode to give the state on Django 6.1 (ModelState has one there).
FETCH_MODES: list[Any] = [None]
if hasattr(ModelState, "fetch_mode"):
    from django.db.models import FETCH_PEERS

    FETCH_MODES.append(FETCH_PEERS)


#: The C builder as vinyl loaded it (tests swap instances.ROWBUILD).
COMPILED = instances.ROWBUILD


def _rowbuild() -> Any:
    if COMPILED is None:
        pytest.fail("vinyl.translate._rowbuild is not built or not loaded (pip install -e ., or setup.py build_ext --inplace)")
    return COMPILED


class Row(Sequence):
    """A row of neither tuple nor list (as asyncpg's Record): read through the sequence protocol."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = tuple(values)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: Any) -> Any:
        return self.values[index]


def _both(monkeypatch: pytest.MonkeyPatch, *args: Any, rows: Any, maker: Any = rows_maker, **kwargs: Any) -> tuple[Any, Any]:
    """The outcome of maker(*args, **kwargs)("alias", rows) on the C and
    the Python builder: the instances, or the exception raised."""
    outcomes: list[Any] = []
    for rowbuild in (_rowbuild(), None):
        monkeypatch.setattr(instances, "ROWBUILD", rowbuild)
        make = maker(*args, **kwargs)
        try:
            outcomes.append(make("alias", rows() if callable(rows) else rows))
        except Exception as error:  # compared below, by class and message
            outcomes.append(error)
    return outcomes[0], outcomes[1]


def _assert_same(compiled: Any, python: Any, seen: set | None = None) -> None:
    if isinstance(python, Exception) or isinstance(compiled, Exception):
        assert type(compiled) is type(python) and str(compiled) == str(python), (compiled, python)
        return
    assert type(compiled) is list and len(compiled) == len(python)
    for mine, theirs in zip(compiled, python):
        assert type(mine) is type(theirs)
        assert gc.is_tracked(mine) == gc.is_tracked(theirs)
        mine_vars, theirs_vars = vars(mine), vars(theirs)
        assert list(mine_vars) == list(theirs_vars)
        for name, value in mine_vars.items():
            if name != "_state":
                assert value is theirs_vars[name], name
        assert type(mine._state) is type(theirs._state) is ModelState
        mine_state, theirs_state = vars(mine._state), vars(theirs._state)
        assert list(mine_state) == list(theirs_state)
        for name, value in mine_state.items():
            if name != "fields_cache":
                assert value is theirs_state[name], name
        assert mine.get_deferred_fields() == theirs.get_deferred_fields()
        if "fields_cache" in mine_state:
            _assert_same_cache(mine, theirs, set() if seen is None else seen)


def _assert_same_cache(mine: Any, theirs: Any, seen: set) -> None:
    # The joined objects, at every depth (a back entry: the parent, seen already).
    if id(mine) in seen:
        assert id(theirs) in seen
        return
    seen.update((id(mine), id(theirs)))
    mine_cache, theirs_cache = mine._state.fields_cache, theirs._state.fields_cache
    assert list(mine_cache) == list(theirs_cache)
    for name, joined in mine_cache.items():
        other = theirs_cache[name]
        if joined is None or other is None:
            assert joined is other is None, name
            continue
        _assert_same([joined], [other], seen)


MODELS = [Author, Book, Publisher, Tag, AllTypes, UUIDKeyed, vinyl_model(Author), vinyl_model(Book)]


def _subsets(names: list[str]) -> Iterator[list[str]]:
    yield names
    yield names[:1]
    yield names[::-1]
    yield names[::2]
    yield [names[0], *names[2:]]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.__module__.split('.')[0]}.{m.__name__}")
def test_every_shape_is_built_as_the_python_builder_builds_it(monkeypatch: pytest.MonkeyPatch, model: type) -> None:
    names = [f.attname for f in model._meta.concrete_fields]
    for subset in _subsets(names):
        for start in (0, 2):
            values = [[object() for _ in range(start + len(subset))] for _ in range(3)]
            for width in (None, start + len(subset)):
                for fetch_mode in FETCH_MODES:
                    for rows in (
                        [tuple(v) for v in values],
                        tuple(tuple(v) for v in values),
                        [list(v) for v in values],
                        [Row(v) for v in values],
                        lambda: (tuple(v) for v in values),  # any iterable of rows
                        [],
                    ):
                        compiled, python = _both(monkeypatch, model, subset, start, fetch_mode, width=width, rows=rows)
                        _assert_same(compiled, python)


BOOK = [f.attname for f in Book._meta.concrete_fields]
AUTHOR = [f.attname for f in Author._meta.concrete_fields]
PUBLISHER = [f.attname for f in Publisher._meta.concrete_fields]
PROFILE = [f.attname for f in Profile._meta.concrete_fields]


def _joined_shapes() -> Iterator[tuple[type, list[str], tuple[Joined, ...], int]]:
    """(model, attnames, joins, row width) as select_related gives them,
    with made-up nestings too (the builders do not read the relations)."""
    a, p = len(BOOK), len(BOOK) + len(AUTHOR)
    author = Joined(Author, tuple(AUTHOR), a, 0, "author", None)
    publisher = Joined(Publisher, tuple(PUBLISHER), p, 0, "publisher", None)
    yield Book, BOOK, (author,), a + len(AUTHOR)
    yield Book, BOOK, (author, publisher), p + len(PUBLISHER)
    yield Book, BOOK, (publisher, author), p + len(PUBLISHER)
    # A one-to-one's object caches its parent back; a nesting.
    back = Joined(Author, tuple(AUTHOR), len(PROFILE), 0, "author", "profile")
    yield Profile, PROFILE, (back,), len(PROFILE) + len(AUTHOR)
    nested = Joined(Author, tuple(AUTHOR), a, 0, "author", None, (Joined(Publisher, tuple(PUBLISHER), p, 0, "publisher", "back"),))
    yield Book, BOOK, (nested,), p + len(PUBLISHER)
    yield vinyl_model(Book), BOOK, (Joined(vinyl_model(Author), tuple(AUTHOR), a, 0, "author", None),), a + len(AUTHOR)


def test_select_related_shapes_are_built_as_the_python_builder_builds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for model, names, joins, width in _joined_shapes():
        keys = [join.start + join.pk for join in joins] + [j.start + j.pk for join in joins for j in join.joins]
        for nulls in ((), keys[:1], keys[1:], keys):
            values = [[None if k in nulls else object() for k in range(width)] for _ in range(3)]
            for fetch_mode in FETCH_MODES:
                for row_width in (None, width):
                    for rows in ([tuple(v) for v in values], [Row(v) for v in values]):
                        compiled, python = _both(monkeypatch, model, names, 0, fetch_mode, joins, rows=rows, maker=joined_rows_maker, width=row_width)
                        _assert_same(compiled, python)
            # A row too short for a joined object's columns.
            short = [tuple(values[0][: joins[0].start + 1])]
            compiled, python = _both(monkeypatch, model, names, 0, None, joins, rows=short, maker=joined_rows_maker)
            assert isinstance(python, IndexError) or joins[0].start + joins[0].pk in nulls
            _assert_same(compiled, python)


def test_names_no_attribute_store_spells_and_setters_go_into_the_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    for model, names in ((Author, ["id", "not an identifier", "class"]), (Book, ["id", "author_id", "title"]), (Coded, ["id", "owner_id"])):
        rows = [tuple(range(k, k + len(names))) for k in range(2)]
        _assert_same(*_both(monkeypatch, model, names, 0, rows=rows))


@pytest.mark.parametrize("kind", [tuple, list, Row])
def test_rows_of_another_width_raise_as_the_python_builder_raises(monkeypatch: pytest.MonkeyPatch, kind: Any) -> None:
    names = ["id", "name", "age"]
    for values in ((1, 2), (1, 2, 3, 4), ()):
        for width in (3, None):
            rows = [kind((1, 2, 3)), kind(values)]
            compiled, python = _both(monkeypatch, Author, names, 0, width=width, rows=rows)
            if width is None and len(values) > 3:
                _assert_same(compiled, python)  # (extra columns are not read)
                continue
            assert isinstance(python, (ValueError, IndexError)), python
            _assert_same(compiled, python)


def test_what_is_not_rows_raises_as_the_python_builder_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    for rows in (None, 5, [None], [5]):
        for width in (None, 2):
            compiled, python = _both(monkeypatch, Author, ["id", "name"], 0, width=width, rows=rows)
            assert type(compiled) is type(python) is TypeError, (compiled, python)


def test_no_reference_is_leaked_on_success_or_error() -> None:
    # The values, the model, the state class and the alias are held by the
    # instances while they live, and by nothing once they are gone, or when
    # a row fails midway.
    build = rows_maker(Book, ["id", "title", "author_id"], 0, width=3) if _rowbuild() else None
    assert build is not None
    value, db = object(), "alias-" + str(id(object()))
    watched = (value, Book, ModelState, db)
    before = [sys.getrefcount(x) for x in watched]
    alone = sys.getrefcount(value)
    objs = build(db, [(value, value, value)] * 10)
    assert sys.getrefcount(value) == alone + 30
    del objs
    assert [sys.getrefcount(x) for x in watched] == before
    for short in (True, False):
        with pytest.raises((ValueError, TypeError)) as raised:
            build(db, [(value, value, value), (value, value) if short else 7])
        del raised  # (its traceback holds the rows)
        assert [sys.getrefcount(x) for x in watched] == before


class WithNew:
    """A class with its own ``__new__``: the C loops refuse to make its instances."""

    def __new__(cls) -> Any:
        return object.__new__(cls)


class WithSetattr:
    """A class with its own ``__setattr__``: the C loops refuse to store on its instances."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)


def test_wrong_arguments_are_refused() -> None:
    build_rows = _rowbuild().build_rows

    shape = (Author, 0, ("id",), False, (), None)
    good = (shape, ModelState, (), [(1,)], -1, (None,))
    assert len(build_rows(*good)) == 1
    def text(value: Any, expression: Any, connection: Any) -> str:
        return str(value)

    conversion = ((text,), None, None, None, False, None)
    assert build_rows((Author, 0, ("id",), False, (), (conversion,)), *good[1:])[0].id == "1"
    wrong_conversions = [
        [(text,), None, None, None, False, None],
        conversion[:5],
        ([text], *conversion[1:]),
        ((5,), *conversion[1:]),
        (*conversion[:4], 0, None),
        ((), None, None, 0, False, None),
        ((text,), None, None, 1, False, None),
        ((text,), None, None, -1, False, None),
        ((text,), None, None, "0", False, None),
    ]
    wrong_shapes = [
        (WithNew, *shape[1:]),
        (WithSetattr, *shape[1:]),
        (5, *shape[1:]),
        shape[:5],
        list(shape),
        (Author, -1, ("id",), False, (), None),
        (Author, "0", ("id",), False, (), None),
        (Author, sys.maxsize, ("id",), False, (), None),
        (Author, 0, ["id"], False, (), None),
        (Author, 0, (5,), False, (), None),
        (Author, 0, ("id",), 0, (), None),
        (Author, 0, ("id",), False, ((shape, 0, "x"),), None),
        (Author, 0, ("id",), False, ((shape, -1, "x", None),), None),
        (Author, 0, ("id",), False, ((shape, 0, "x", 5),), None),
        (Author, 0, ("id",), False, (((WithNew, *shape[1:]), 0, "x", None),), None),
        (Author, 0, ("id",), False, (), ()),
        (Author, 0, ("id",), False, (), [None]),
        *((Author, 0, ("id",), False, (), (c,)) for c in wrong_conversions),
        (Author, 0, ("id",), False, (((Author, 0, ("id",), False, (), (wrong_conversions[-1],)), 0, "x", None),), None),
    ]
    wrong = [(0, s) for s in wrong_shapes] + [(1, WithNew), (1, WithSetattr), (2, [("db", 1)]), (2, (("db",),)), (4, "x"), (5, [None])]
    for position, value in wrong:
        args = list(good)
        args[position] = value
        with pytest.raises(TypeError):
            build_rows(*args)
    with pytest.raises(TypeError):
        build_rows(*good[:5])


def test_the_extension_is_loaded_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_rowbuild() is _rowbuild()
    for value in ("1", "yes"):
        monkeypatch.setenv("VINYL_NO_EXTENSIONS", value)
        assert load_rowbuild() is None
    monkeypatch.setenv("VINYL_NO_EXTENSIONS", "0")
    assert load_rowbuild() is _rowbuild()


def test_a_stale_or_other_version_build_is_refused_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    module = _rowbuild()
    caplog.set_level(logging.WARNING, logger="vinyl.translate")
    monkeypatch.setattr(module, "SOURCE_HASH", "0" * 64)
    assert load_rowbuild() is None
    assert "built from another version" in caplog.text
    monkeypatch.undo()
    caplog.clear()
    monkeypatch.setattr(module, "VERSION", module.VERSION + 1)
    assert load_rowbuild() is None
    assert "of version" in caplog.text


@pytest.mark.usefixtures("vinyl_db")
async def test_rows_of_each_driver_are_built_as_the_python_builder_builds_them(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal


    author = await Author.vinyl.create(name="Ann", age=30)
    publisher = await Publisher.vinyl.create(name="P")
    for k in range(5):
        await Book.vinyl.create(title=f"b{k}", author_id=author.pk, publisher_id=publisher.pk if k % 2 else None, pages=k, price=Decimal("1.50"))
    await Profile.vinyl.create(author_id=author.pk, bio="x")
    queries = [
        lambda: Book.vinyl.all(),
        lambda: Book.vinyl.only("title", "author_id"),
        lambda: Book.vinyl.defer("title").filter(pages__gte=1),
        lambda: Author.vinyl.order_by("-id"),
        lambda: Publisher.vinyl.all(),
        lambda: Book.vinyl.select_related("author", "publisher"),
        lambda: Book.vinyl.select_related("author").only("title", "author__name"),
        lambda: Profile.vinyl.select_related("author"),
    ]
    calls = await _both_builders(monkeypatch, queries, lambda shape: (shape[0], len(shape[4])), _assert_equal)
    # (On SQLite, Book's decimal and date columns are converted, by the C
    # builder too.)
    built = {(model.__name__, joins) for model, joins in calls}
    assert {("Author", 0), ("Book", 0), ("Publisher", 0), ("Profile", 1), ("Book", 2)} <= built


async def _both_builders(monkeypatch: Any, queries: list, note: Any, compare: Any) -> list:
    """Run each query on the C builder, then on the generated Python, each
    twice (cold, then on its plan), and ``compare`` the two builders'
    instances; return ``note(shape)`` of every shape the C builder built."""
    from vinyl.translate.plan_cache import plan_cache_for

    calls = []
    module = _rowbuild()

    def build_rows(*args: Any) -> list:
        calls.append(note(args[0]))
        return module.build_rows(*args)

    counting = SimpleNamespace(build_rows=build_rows)
    for query in queries:
        results = []
        for rowbuild in (counting, None):
            monkeypatch.setattr(instances, "ROWBUILD", rowbuild)
            plan_cache_for("vinyl_default").clear()
            results.append([obj async for obj in query()])
            results.append([obj async for obj in query()])  # (the plan's second run)
        compiled, compiled_again, python, python_again = results
        for mine, theirs in ((compiled, python), (compiled_again, python_again)):
            assert len(mine) == len(theirs) > 0
            compare(mine, theirs)
    return calls


def _assert_equal(mine: list, theirs: list, parents: tuple = (None, None)) -> None:
    # Objects from the database: equal values (each run made its own).
    for a, b in zip(mine, theirs):
        assert type(a) is type(b) and list(vars(a)) == list(vars(b))
        assert [(k, v) for k, v in vars(a).items() if k != "_state"] == [(k, v) for k, v in vars(b).items() if k != "_state"]
        state_a, state_b = vars(a._state), vars(b._state)
        assert [(k, v) for k, v in state_a.items() if k != "fields_cache"] == [(k, v) for k, v in state_b.items() if k != "fields_cache"]
        assert list(state_a) == list(state_b)
        if "fields_cache" in state_a:
            cache_a, cache_b = state_a["fields_cache"], state_b["fields_cache"]
            assert list(cache_a) == list(cache_b)
            for name in cache_a:
                if cache_a[name] is None or cache_b[name] is None:
                    assert cache_a[name] is cache_b[name] is None
                elif cache_a[name] is parents[0]:  # a back entry: the very parent
                    assert cache_b[name] is parents[1]
                else:
                    _assert_equal([cache_a[name]], [cache_b[name]], (a, b))


def _same_value(mine: Any, theirs: Any) -> bool:
    """Equal values of one class; a datetime with the very tzinfo and fold."""
    if mine is theirs:
        return True
    if type(mine) is not type(theirs) or mine != theirs:
        return False
    return not isinstance(mine, datetime.datetime) or (mine.tzinfo is theirs.tzinfo and mine.fold == theirs.fold)


def _assert_same_converted(compiled: Any, python: Any) -> None:
    """As _assert_same, converted values compared by :func:`_same_value`
    (each builder made its own)."""
    if isinstance(python, Exception) or isinstance(compiled, Exception):
        assert type(compiled) is type(python) and str(compiled) == str(python), (compiled, python)
        return
    assert type(compiled) is list and len(compiled) == len(python)
    for mine, theirs in zip(compiled, python):
        _assert_same_instance(mine, theirs)


def _assert_same_instance(mine: Any, theirs: Any, parents: tuple = (None, None)) -> None:
    assert type(mine) is type(theirs) and gc.is_tracked(mine) == gc.is_tracked(theirs)
    mine_vars, theirs_vars = vars(mine), vars(theirs)
    assert list(mine_vars) == list(theirs_vars)
    for name, value in mine_vars.items():
        if name != "_state":
            assert _same_value(value, theirs_vars[name]), (name, value, theirs_vars[name])
    mine_state, theirs_state = vars(mine._state), vars(theirs._state)
    assert list(mine_state) == list(theirs_state)
    for name, value in mine_state.items():
        if name != "fields_cache":
            assert value is theirs_state[name], name
    if "fields_cache" in mine_state:
        assert list(mine_state["fields_cache"]) == list(theirs_state["fields_cache"])
        for name, joined in mine_state["fields_cache"].items():
            other = theirs_state["fields_cache"][name]
            if joined is None or other is None:
                assert joined is other is None, name
            elif joined is parents[0]:  # a back entry: the very parent
                assert other is parents[1], name
            else:
                _assert_same_instance(joined, other, (mine, theirs))


class Calls:
    """Converters that log each call (its tag, value, expression and
    connection), to compare the calls both builders make."""

    def __init__(self) -> None:
        self.log: list[tuple] = []

    def converter(self, tag: str, raise_on: Any = ...) -> Any:
        def convert(value: Any, expression: Any, connection: Any) -> Any:
            self.log.append((tag, repr(value), expression, id(connection)))
            if value is raise_on:
                raise ValueError(f"{tag} refuses {value!r}")
            return (tag, value)

        return convert


def _mysql_datetime(zone: Any) -> Any:
    """Django's MySQL datetime converter, of operations whose connection's
    time zone is ``zone`` (what vinyl inlines, see vinyl.translate.converters)."""
    from django.db.backends.mysql.operations import DatabaseOperations

    return DatabaseOperations(SimpleNamespace(timezone=zone)).convert_datetimefield_value


def _both_converted(monkeypatch: pytest.MonkeyPatch, calls: Calls, build: Any, rows: Any) -> tuple[Any, Any]:
    """``build()("alias", rows)`` on the C and the Python builder, with the
    log of converter calls of each: they must match."""
    outcomes, logs = [], []
    for rowbuild in (_rowbuild(), None):
        monkeypatch.setattr(instances, "ROWBUILD", rowbuild)
        calls.log.clear()
        make = build()
        try:
            outcomes.append(make("alias", rows))
        except Exception as error:  # compared by the caller, by class and message
            outcomes.append(error)
        logs.append(list(calls.log))
    assert logs[0] == logs[1]
    return outcomes[0], outcomes[1]


ZONES = [datetime.timezone.utc, zoneinfo.ZoneInfo("Europe/Paris"), None]


def _datetime_values(zone: Any) -> list[Any]:
    """Values a MySQL datetime column's converters may see: the driver's
    naive datetimes (of each fold), None, and what they refuse or leave to Django."""

    class Subclass(datetime.datetime):
        pass

    return [
        datetime.datetime(2024, 10, 27, 2, 30, 15, 123456),
        datetime.datetime(2024, 10, 27, 2, 30, fold=1),
        datetime.datetime(1, 1, 1),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
        None,
        Subclass(2020, 1, 2, 3, 4, 5),
        datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc),  # refused by make_aware (and by v - epoch)
        "0000-00-00 00:00:00",  # a zero date asyncmy leaves as text: make_aware raises
        datetime.date(2020, 1, 2),
    ]


def test_converted_shapes_are_built_as_the_python_builder_builds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["id", "name", "age", "email"]
    calls = Calls()
    for zone in ZONES:
        for naive in (True, False):
            connection = SimpleNamespace(vinyl_driver_datetimes_naive=naive)
            for converters in (
                {1: ([calls.converter("a")], "e1")},
                {3: ([calls.converter("a"), calls.converter("b")], "e3"), 1: ([calls.converter("c")], "e1")},
                {2: ([_mysql_datetime(zone)], "e2")},
                {2: ([_mysql_datetime(zone), calls.converter("after")], "e2"), 0: ([calls.converter("c")], "e0")},
                {2: ([_mysql_datetime(zone)], "e2"), 3: ([_mysql_datetime(datetime.timezone.utc)], "e3")},
            ):
                for width in (None, 4):
                    for value in _datetime_values(zone):
                        rows = [(k, f"n{k}", value, value) for k in range(3)]
                        converted = value_expressions(converters, connection, "row", width is not None)
                        compiled, python = _both_converted(
                            monkeypatch,
                            calls,
                            lambda: rows_maker(Author, names, 0, FETCH_MODES[-1], converted=converted, width=width),
                            [Row(row) for row in rows] if width is None else rows,
                        )
                        _assert_same_converted(compiled, python)


def test_converted_joined_shapes_are_built_as_the_python_builder_builds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    a, p = len(BOOK), len(BOOK) + len(AUTHOR)
    width = p + len(PUBLISHER)
    author = Joined(Author, tuple(AUTHOR), a, 0, "author", None, (Joined(Publisher, tuple(PUBLISHER), p, 0, "publisher", "back"),))
    naive = datetime.datetime(2024, 3, 1, 12, 0)
    for zone in ZONES:
        converters = {
            1: ([calls.converter("title")], "e"),
            a + 1: ([_mysql_datetime(zone)], "e"),
            a + 2: ([calls.converter("age", raise_on="bad")], "e"),
            p + 1: ([calls.converter("publisher")], "e"),
        }
        converted = value_expressions(converters, SimpleNamespace(vinyl_driver_datetimes_naive=True), "row", True)
        for nulls in ((), (a,), (p,), (a, p)):
            for age in (7, None, "bad"):
                values = [[naive if k == a + 1 else age if k == a + 2 else k for k in range(width)] for _ in range(3)]
                rows = [tuple(None if k in nulls else v for k, v in enumerate(row)) for row in values]
                compiled, python = _both_converted(
                    monkeypatch, calls, lambda: joined_rows_maker(Book, BOOK, 0, None, (author,), converted, width), rows
                )
                if age == "bad" and a not in nulls:
                    assert isinstance(python, ValueError), python
                _assert_same_converted(compiled, python)


def test_a_raising_converter_stops_both_builders_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    bad = object()
    converters = {1: ([calls.converter("a")], "e"), 2: ([calls.converter("b", raise_on=bad)], "e")}
    converted = value_expressions(converters, SimpleNamespace(), "row", False)
    for rows in ([(1, 2, bad)], [(1, 2, 3), (4, 5, bad), (7, 8, 9)], [(1, 2, 3), (4, 5, 6)]):
        compiled, python = _both_converted(monkeypatch, calls, lambda: rows_maker(Author, ["id", "name", "age"], 0, converted=converted), rows)
        assert isinstance(python, ValueError) == any(bad in row for row in rows)
        _assert_same_converted(compiled, python)


def test_no_reference_is_leaked_by_conversions() -> None:
    # The values, converters, expression and connection are held by the
    # instances and the maker while they live, and by nothing once the
    # instances are gone, or when a converter raises midway.
    value, expression, connection, db = object(), object(), SimpleNamespace(vinyl_driver_datetimes_naive=True), "alias-" + str(id(object()))
    zone = datetime.timezone(datetime.timedelta(hours=3))
    moment = datetime.datetime(2020, 5, 6, 7, 8, 9)
    ops_convert = _mysql_datetime(zone)
    ops = ops_convert.__self__

    def identity(v: Any, e: Any, c: Any) -> Any:
        if v == "raise":
            raise KeyError(v)
        return v

    converters = {0: ([identity], expression), 2: ([ops_convert, identity], expression)}
    build = rows_maker(Book, ["id", "title", "author_id"], 0, converted=value_expressions(converters, connection, "row", True), width=3)
    assert instances.ROWBUILD is not None and build.__name__ == "make_zoned"
    watched = (value, expression, connection, identity, ops, zone, moment, Book, ModelState, db)
    build(db, [])  # (the zone's aware epoch, which vinyl keeps for the next batch)
    gc.collect()
    before = [sys.getrefcount(x) for x in watched]
    objs = build(db, [(value, value, moment)] * 10)
    assert all(obj.author_id == moment.replace(tzinfo=zone) and obj.author_id.tzinfo is zone for obj in objs)
    del objs
    assert [sys.getrefcount(x) for x in watched] == before
    for k in range(3):
        with pytest.raises((KeyError, TypeError, AttributeError)) as raised:
            bad = [("raise", value, moment), (value, value, moment.replace(tzinfo=zone)), (value, value, "0000-00-00")][k]
            build(db, [(value, value, moment), bad])
        del raised, bad  # (its traceback holds the rows)
        gc.collect()  # (and the frames of the converters' calls, a cycle)
        assert [sys.getrefcount(x) for x in watched] == before


def _converted_shape(shape: tuple) -> bool:
    return shape[5] is not None or any(_converted_shape(join[0]) for join in shape[4])


@pytest.mark.usefixtures("vinyl_db")
async def test_converted_rows_of_each_driver_are_built_as_the_python_builder_builds_them(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Columns each backend's converters convert (MySQL's datetimes, booleans
    # and UUIDs; SQLite's decimals, dates, times...; JSON everywhere), with
    # values and nulls, on their own and joined (select_related).
    import uuid
    from decimal import Decimal

    from tests.diffapp.models import Item, Owner
    from tests.diffapp.models import Profile as OwnerProfile

    moment = datetime.datetime(2024, 10, 27, 1, 30, 15, 123456, tzinfo=datetime.timezone.utc)
    day = datetime.date(2024, 2, 29)
    values = dict(flag=True, decimal=Decimal("1.5"), floating=0.5, day=day, moment=moment, clock=datetime.time(1, 2, 3), span=datetime.timedelta(days=1, microseconds=5), uid=uuid.UUID(int=7), data={"a": [1]}, text="t")
    await AllTypes.vinyl.create(**values)
    await AllTypes.vinyl.create(**{**values, "flag": False, "moment": moment.replace(year=1999)})
    await AllTypes.vinyl.create()  # every column null
    owner = await Owner.vinyl.create(name="o", joined=day)
    await OwnerProfile.vinyl.create(owner=owner, bio="b", score=1.5)
    await OwnerProfile.vinyl.create(owner=await Owner.vinyl.create(name="p"))  # a null date
    await Item.vinyl.create(name="i", flag=True, maybe=False, at=moment, uid=uuid.UUID(int=9), data=[1, "x"], dec=Decimal("2.125"), day=day, owner=owner)
    await Item.vinyl.create(name="j")  # nulls, no owner
    queries = [
        lambda: AllTypes.vinyl.order_by("id"),
        lambda: AllTypes.vinyl.only("moment", "flag").order_by("-id"),
        lambda: Item.vinyl.order_by("id"),
        lambda: Item.vinyl.select_related("owner").order_by("id"),
        lambda: Item.vinyl.select_related("owner").only("at", "flag", "owner__joined").order_by("id"),
        lambda: OwnerProfile.vinyl.select_related("owner").order_by("id"),
    ]
    def same_instances(mine: list, theirs: list) -> None:
        for a, b in zip(mine, theirs):
            _assert_same_instance(a, b)

    calls = await _both_builders(
        monkeypatch, queries, lambda shape: (shape[0].__name__, len(shape[4]), _converted_shape(shape)), same_instances
    )
    # Every backend converts JSON; MySQL (datetimes, booleans) and SQLite
    # (dates) convert columns of joined shapes too.
    built = set(calls)
    assert ("AllTypes", 0, True) in built and ("Item", 0, True) in built
    assert backend == "postgresql" or ("Item", 1, True) in built
    assert backend != "sqlite" or ("Profile", 1, True) in built
