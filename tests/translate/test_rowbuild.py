"""The C row builder (vinyl.translate._rowbuild) builds what the generated Python builds.

Every shape is built by both builders and compared field by field: the
instance's class, its ``__dict__`` (keys in order, values by identity), its
state's class and ``__dict__``; errors by class and message. Then the same
with rows from each backend's driver (asyncpg's Records on PostgreSQL).
"""

from __future__ import annotations

import gc
import logging
import sys
from types import SimpleNamespace
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.db.models.base import ModelState

from tests.testapp.models import AllTypes, Author, Book, Coded, Publisher, Tag, UUIDKeyed
from vinyl.models import vinyl_model
from vinyl.translate import instances
from vinyl.translate.instances import load_rowbuild, rows_maker

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


def _both(monkeypatch: pytest.MonkeyPatch, *args: Any, rows: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The outcome of rows_maker(*args, **kwargs)("alias", rows) on the C and
    the Python builder: the instances, or the exception raised."""
    outcomes = []
    for rowbuild in (_rowbuild(), None):
        monkeypatch.setattr(instances, "ROWBUILD", rowbuild)
        make = rows_maker(*args, **kwargs)
        try:
            outcomes.append(make("alias", rows() if callable(rows) else rows))
        except Exception as error:  # compared below, by class and message
            outcomes.append(error)
    return outcomes[0], outcomes[1]


def _assert_same(compiled: Any, python: Any) -> None:
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
        assert list(vars(mine._state).items()) == list(vars(theirs._state).items())
        assert mine.get_deferred_fields() == theirs.get_deferred_fields()


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


def test_wrong_arguments_are_refused() -> None:
    build_rows = _rowbuild().build_rows

    class WithNew:
        def __new__(cls) -> Any:
            return object.__new__(cls)

    class WithSetattr:
        def __setattr__(self, name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

    good = (Author, ModelState, (), [(1,)], (0,), ("id",), False, -1)
    assert len(build_rows(*good)) == 1
    for position, wrong in ((0, WithNew), (0, WithSetattr), (0, 5), (1, WithNew), (1, WithSetattr), (2, [("db", 1)]), (2, (("db",),)), (4, (-1,)), (4, (0, 1)), (5, (5,))):
        args = list(good)
        args[position] = wrong
        with pytest.raises(TypeError):
            build_rows(*args)
    with pytest.raises(TypeError):
        build_rows(*good[:7])


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

    from vinyl.translate.plan_cache import plan_cache_for

    author = await Author.vinyl.create(name="Ann", age=30)
    publisher = await Publisher.vinyl.create(name="P")
    for k in range(5):
        await Book.vinyl.create(title=f"b{k}", author_id=author.pk, publisher_id=publisher.pk if k % 2 else None, pages=k, price=Decimal("1.50"))
    queries = [
        lambda: Book.vinyl.all(),
        lambda: Book.vinyl.only("title", "author_id"),
        lambda: Book.vinyl.defer("title").filter(pages__gte=1),
        lambda: Author.vinyl.order_by("-id"),
        lambda: Publisher.vinyl.all(),
    ]
    calls = []
    module = _rowbuild()

    def build_rows(*args: Any) -> list:
        calls.append(args[0])
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
            for a, b in zip(mine, theirs):
                assert type(a) is type(b) and list(vars(a)) == list(vars(b))
                assert [(k, v) for k, v in vars(a).items() if k != "_state"] == [(k, v) for k, v in vars(b).items() if k != "_state"]
                assert list(vars(a._state).items()) == list(vars(b._state).items())
    # (On SQLite, Book's decimal and date columns are converted: the C builder
    # builds only the shape that reads neither.)
    assert {model.__name__ for model in calls} == {"Author", "Book", "Publisher"}
