"""Compiled INSERTs for ``create()`` and ``bulk_create()``, reused.

``Model.vinyl.create(**kwargs)`` on a plain model (one table, no save
signals, no overridden save machinery) sends one ``INSERT ... RETURNING``.
Its SQL depends only on the model and on whether the primary key is given,
as long as every value is a plain value (not an expression, which Django
compiles into the SQL). Django's own insert compiler builds the SQL once and
prepares each call's values (``pre_save``, ``get_db_prep_save``); the
statement then runs straight on the driver.

``bulk_create(objs)`` of such a model, with default options and objects that
fit in one of Django's batches, is one ``INSERT ... RETURNING`` of every
object: its SQL depends on the number of objects unless Django binds one
array per column (PostgreSQL's ``UNNEST``), when it serves any count.
"""

from __future__ import annotations

from itertools import chain, product
from operator import itemgetter
from typing import Any, Callable, Sequence

import django
from django.db import connections, models
from django.db.models import Model
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery

from vinyl import _compat
from vinyl._compat import SAVE_PATH
from vinyl._syncguard import unguarded
from vinyl.translate.plans import NEVER

# Methods of Model that a create() goes through: a model that overrides one
# keeps Django's full path.
_SAVE_PATH = SAVE_PATH


class InsertPlan:
    """The INSERT of one model, and how to fill it and read its result."""

    # Plain classes, not dataclasses, here and below: building a dataclass
    # costs about 0.4 ms at import, paid by every cold start.
    __slots__ = ("sql", "returning", "compiler", "converters", "prepare", "preparers", "insert_id", "read", "plain", "only")

    def __init__(
        self,
        sql: str,
        returning: tuple,
        compiler: Any,
        converters: dict,
        prepare: Any,
        preparers: tuple,
        insert_id: bool = False,
        unchanged: tuple = (),
    ) -> None:
        self.sql = sql
        self.returning = returning
        self.compiler = compiler
        self.converters = converters
        # The attname of the one column returned, where no converter applies
        # (the new key, usually); else None.
        self.only: str | None = returning[0].attname if len(returning) == 1 and not converters else None
        # The backend cursor's SQL and parameter rewriting for its driver.
        self.prepare = prepare
        # obj -> parameter, per field (see _preparer).
        self.preparers = preparers
        # The new auto-increment key comes from the driver (MySQL's insert id),
        # not from a RETURNING clause: write the statement with rows="insert_id".
        self.insert_id = insert_id
        #: Where every field hands its value back unchanged for some types
        #: (see _unchanged_kinds), two fields or more and few type
        #: combinations: the getter of the fields' values from an
        #: instance's ``__dict__``, and the type tuples (one type per field)
        #: that are the parameters as read; else None.
        self.read: Callable[[dict], tuple] | None = None
        self.plain: frozenset = frozenset()
        if len(unchanged) >= 2 and all(kinds is not None for _attname, kinds in unchanged):
            combinations = 1
            for _attname, kinds in unchanged:
                combinations *= len(kinds)
            if combinations <= _PLAIN_COMBINATIONS:
                self.read = itemgetter(*[attname for attname, _kinds in unchanged])
                self.plain = frozenset(product(*[kinds for _attname, kinds in unchanged]))

    def params(self, obj: Model) -> tuple | None:
        """The statement's parameters for ``obj``; None if one is an expression."""
        read = self.read
        if read is not None:
            # (The preparers' answer where each value is of a type its field
            # hands back unchanged: one read and one type check in C.)
            try:
                values = read(obj.__dict__)
            except KeyError:  # a deferred field: its preparer reads it
                pass
            else:
                if tuple(map(type, values)) in self.plain:
                    return values
        params = tuple([prepare(obj) for prepare in self.preparers])
        return None if _has_expression(params) else params

    def assign(self, obj: Model, rows: Sequence[Sequence[Any]], db: str) -> None:
        """Set what the statement returned on ``obj`` and mark it saved."""
        only = self.only
        if only is not None and rows:
            setattr(obj, only, rows[0][0])
        elif rows:
            row = rows[0]
            if self.converters:
                row = next(iter(self.compiler.apply_converters([row], self.converters)))
            for value, field in zip(row, self.returning):
                setattr(obj, field.attname, value)
        obj._state.adding = False
        obj._state.db = db


#: The most type combinations InsertPlan.read serves (2 ** 8: eight
#: fields of two types each, a value or None).
_PLAIN_COMBINATIONS = 256


def _plain_save(model: type[Model], db: str) -> bool:
    origin = getattr(model, "_vinyl_origin", model)
    if not _one_table(model):
        return False
    # (vinyl's own async-misuse guard around save() is no override.)
    if any(unguarded(getattr(origin, name, None)) is not getattr(Model, name) for name in _SAVE_PATH):
        return False
    # Without RETURNING, Django reads the new key from the cursor.
    return bool(connections[db].features.can_return_columns_from_insert)


class CreateFacts:
    """What ``create()`` of one model on one alias needs, found once."""

    __slots__ = ("origin", "reverse_one", "relations", "pk", "attname", "no_key_hook", "key", "key_given")

    def __init__(self, model: type[Model]) -> None:
        meta = model._meta.concrete_model._meta
        # The user's class, the signals' sender.
        self.origin = getattr(model, "_vinyl_origin", model)
        # Reverse one-to-one names: a keyword of one goes to Django's save().
        self.reverse_one: frozenset[str] = _compat.reverse_one_to_one_names(model._meta)
        self.relations = tuple(_relations(meta))
        self.pk = meta.pk
        self.attname = meta.pk.attname
        # The key has no default nor hook of its own: nothing to set when None.
        self.no_key_hook = _no_key_hook(meta.pk)
        # The plan cache keys of the INSERT, the key left to the database or given.
        self.key = (model, "insert", False)
        self.key_given = (model, "insert", True)

    def prepare(self, obj: Model) -> bool | None:
        """Do what save() does before its INSERT; return whether the pk is set.

        None when Django's own save() must handle the instance: a related
        object assigned to it is unsaved, or its key no longer matches the
        column (Django raises or re-reads them; vinyl's descriptors would
        hand back awaitables here).
        """
        if self.relations:
            return _prepare(obj, self.relations, self.pk, self.no_key_hook)
        attname = self.attname
        if getattr(obj, attname) is None:
            if not self.no_key_hook:
                setattr(obj, attname, self.pk.get_pk_value_on_save(obj))
                return getattr(obj, attname) is not None
            return False
        return True


def creatable(model: type[Model], db: str, kwargs: dict) -> CreateFacts | None:
    """Can ``create(**kwargs)`` on ``model`` run as one compiled INSERT on
    ``db``? Its facts if so; None when Django's save() must insert (a save
    signal connected, a reverse one-to-one keyword, a model whose save path
    vinyl does not plan)."""
    facts = _create_facts.get((model, db))
    if facts is None:
        facts = _create_facts[(model, db)] = CreateFacts(model) if _plain_save(model, db) else False
    if type(facts) is not CreateFacts:
        return None
    if (pre_save.receivers or post_save.receivers) and (
        pre_save.has_listeners(facts.origin) or post_save.has_listeners(facts.origin)
    ):
        return None
    if facts.reverse_one and not facts.reverse_one.isdisjoint(kwargs):
        return None
    return facts


# (model, alias) -> its CreateFacts where _plain_save() holds, else False.
_create_facts: dict[tuple, CreateFacts | bool] = {}


def _one_table(model: type[Model]) -> bool:
    # One table, one key column, nothing Django inserts by its own rules.
    meta = model._meta.concrete_model._meta
    return not (
        meta.parents or meta.order_with_respect_to or meta.private_fields or len(getattr(meta, "pk_fields", (meta.pk,))) != 1
    )


def _relations(meta: Any) -> list:
    relations = _relations_of.get(meta)
    if relations is None:
        relations = _relations_of[meta] = [field for field in meta.concrete_fields if field.is_relation]
    return relations


# Options -> its relation fields (a model's fields are fixed once it is ready).
_relations_of: dict[Any, list] = {}


def _prepare(obj: Model, relations: Sequence[Any], pk: Any, no_key_hook: bool) -> bool | None:
    # CreateFacts.prepare() with the model's relation fields and key at hand.
    for field in relations:
        if field.is_cached(obj):
            related = field.get_cached_value(obj)
            if related is None:
                continue
            value = getattr(related, field.target_field.attname)
            if value is None or getattr(obj, field.attname) != value:
                return None
    attname = pk.attname
    if getattr(obj, attname) is None:
        if not no_key_hook:
            setattr(obj, attname, pk.get_pk_value_on_save(obj))
        return getattr(obj, attname) is not None
    return True


def _no_key_hook(pk: Any) -> bool:
    # Django's own get_pk_value_on_save, on a key without a default: it
    # gives None back, nothing to set.
    return not pk.has_default() and type(pk).get_pk_value_on_save is models.Field.get_pk_value_on_save


def compile_insert(obj: Model, db: str, pk_set: bool, params: list) -> InsertPlan | None:
    """Compile the INSERT of ``obj`` (values already prepared as ``params``).

    Returns None when Django's statement is not one ``%s`` per field with
    exactly these parameters (a field with its own placeholder, say).
    """
    model = obj._meta.concrete_model
    meta = model._meta
    fields = tuple(_insert_fields(meta, pk_set))
    returning = tuple(meta.db_returning_fields)
    insert_id = not pk_set and returning == (meta.auto_field,) and connections[db].vinyl_insert_id is not None
    query = InsertQuery(model)
    # raw: read the values pre_save already set, without running it again.
    query.insert_values(fields, [obj], raw=True)
    compiler = query.get_compiler(using=db)
    compiler.returning_fields = None if insert_id else list(returning)
    statements = compiler.as_sql()
    if len(statements) != 1:
        return None
    sql, compiled_params = statements[0]
    if list(compiled_params) != params or any(type(a) is not type(b) for a, b in zip(compiled_params, params)):
        return None
    query.insert_values(fields, [obj], raw=False)  # the plan's compiler runs pre_save
    columns = [field.get_col(meta.db_table) for field in returning]
    prepare = connections[db].vinyl_cursor_class.plan_preparer(sql)
    preparers = tuple(_preparer(compiler, field) for field in fields)
    unchanged = tuple((field.attname, _unchanged_kinds(compiler, field)) for field in fields)
    converters = compiler.get_converters(columns)
    return InsertPlan(sql, returning, compiler, converters, prepare, preparers, insert_id, unchanged)


def insert_params(obj: Model, db: str, pk_set: bool) -> list | None:
    """The parameters Django's compiler gives ``obj`` (first call of a model)."""
    model = obj._meta.concrete_model
    query = InsertQuery(model)
    fields = _insert_fields(model._meta, pk_set)
    query.insert_values(fields, [obj], raw=False)
    compiler = query.get_compiler(using=db)
    params = [compiler.prepare_value(field, compiler.pre_save_val(field, obj)) for field in fields]
    return None if _has_expression(params) else params


def _insert_fields(meta: Any, pk_set: bool) -> list:
    # The columns save() inserts: every local concrete column but generated
    # ones, and the auto key only when it has a value.
    return [f for f in meta.local_concrete_fields if not f.generated and (pk_set or f is not meta.auto_field)]


# -- bulk_create ----------------------------------------------------------------

#: Django 6 sets every returned column on objects whose key was given,
#: the key included; Django 5.2 leaves their key as given.
_SETS_GIVEN_PK = django.VERSION >= (6, 0)


class BulkInsertPlan:
    """The INSERT of many objects of one model, and how to fill and read it."""

    __slots__ = ("sql", "compiler", "converters", "targets", "by_column", "prepare", "columns")

    def __init__(
        self, sql: str, compiler: Any, converters: dict, targets: tuple, by_column: bool, prepare: Any, columns: tuple
    ) -> None:
        self.sql = sql
        self.compiler = compiler
        self.converters = converters
        # (position in a returned row, attname) set on each object.
        self.targets = targets
        # One array per column (UNNEST) rather than each row's values in turn.
        self.by_column = by_column
        self.prepare = prepare
        # objs -> one column of prepared values (None: an expression), per field.
        self.columns = columns

    def params(self, rows: list) -> tuple:
        """The statement's parameters for these prepared rows."""
        return tuple(_by_column(rows)) if self.by_column else tuple(_row_after_row(rows))

    def params_of(self, objs: Sequence[Model]) -> tuple | None:
        """The statement's parameters for ``objs``; None if a value is an expression."""
        columns = []
        try:
            for prepare in self.columns:
                column = prepare(objs)
                if column is None:
                    return None
                columns.append(column)
        except Exception:
            # Another object's value may fail first here than in Django
            # (5.2 prepares object by object, 6.1 column by column): Django's
            # own compilation of these objects raises the error Django raises.
            _compile_as_django(self.compiler, objs)
            raise
        if self.by_column:
            return tuple(columns)
        return tuple(chain.from_iterable(zip(*columns)))

    def assign(self, objs: Sequence[Model], rows: Sequence[Sequence[Any]], db: str) -> None:
        """Set what the statement returned on each object and mark it saved."""
        targets = self.targets
        if not targets:
            for obj in objs:
                state = obj._state
                state.adding = False
                state.db = db
            return
        assert len(rows) == len(objs), "one returned row per inserted object"
        if self.converters:
            rows = list(self.compiler.apply_converters(rows, self.converters))
        if len(targets) == 1:
            # The common case (the new key alone): one loop, no inner one.
            ((position, attname),) = targets
            for obj, row in zip(objs, rows):
                setattr(obj, attname, row[position])
                state = obj._state
                state.adding = False
                state.db = db
            return
        for obj, row in zip(objs, rows):
            for position, attname in targets:
                setattr(obj, attname, row[position])
            state = obj._state
            state.adding = False
            state.db = db


def _compile_as_django(compiler: Any, objs: Sequence[Model]) -> None:
    """Compile the INSERT of ``objs`` with Django's compiler: raises the error Django raises."""
    query = compiler.query.clone()
    query.objs = list(objs)
    query.get_compiler(connection=compiler.connection).as_sql()


class BulkPlans:
    """The bulk INSERT plans of one model and key case, by object count.

    A plan whose SQL serves any count (of two or more objects) is kept
    alone; plans tied to a count are kept for the last few counts seen.
    """

    __slots__ = ("any", "counted")

    LIMIT = 16

    def __init__(self) -> None:
        self.any: BulkInsertPlan | None = None
        self.counted: dict[int, Any] = {}

    def get(self, count: int) -> Any:
        """The plan for ``count`` objects, NEVER, or None if not built yet."""
        if count > 1 and self.any is not None:
            return self.any
        return self.counted.get(count)

    def put(self, count: int, plan: Any, any_count: bool) -> None:
        if any_count and count > 1:
            self.any = plan
            return
        counted = self.counted
        if len(counted) >= self.LIMIT:
            del counted[next(iter(counted))]
        counted[count] = plan


def bulk_plannable(model: type[Model], db: str) -> bool:
    """Can bulk_create() on ``model`` run as one compiled INSERT on ``db``?"""
    key = (model, db)
    static = _bulk_static.get(key)
    if static is None:
        features = connections[db].features
        static = _bulk_static[key] = _one_table(model) and bool(
            features.can_return_columns_from_insert and features.can_return_rows_from_bulk_insert
        )
    return static


# (model, alias) -> what bulk_plannable() decides once per model.
_bulk_static: dict[tuple, bool] = {}


def prepare_bulk(model: type[Model], objs: Sequence[Any]) -> bool | None:
    """Do what bulk_create() does to ``objs`` before inserting them.

    Returns whether their keys are given; None when Django must handle them:
    an object of another table, already saved, with a related object unsaved
    or out of step (see :meth:`CreateFacts.prepare`), or keys given to some
    objects only.
    """
    concrete = model._meta.concrete_model
    relations, pk = _relations(concrete._meta), concrete._meta.pk
    no_key_hook = _no_key_hook(pk)
    if not relations and no_key_hook:
        return _keys_given(concrete, pk.attname, objs)
    pk_set = None
    for obj in objs:
        if not isinstance(obj, Model) or obj._meta.concrete_model is not concrete or not obj._state.adding:
            return None
        given = _prepare(obj, relations, pk, no_key_hook)
        if given is None or (pk_set is not None and given is not pk_set):
            return None
        pk_set = given
    return pk_set


def _keys_given(concrete: type[Model], attname: str, objs: Sequence[Any]) -> bool | None:
    # prepare_bulk() for a model with no relation and nothing to compute on
    # the key: the same checks, a column at a time.
    classes: set[Any] = set(map(type, objs))  # (Model is untyped: Any)
    for cls in classes:
        if not (issubclass(cls, Model) and cls._meta.concrete_model is concrete):
            return None
    if not all([obj._state.adding for obj in objs]):
        return None
    keys = [obj.__dict__.get(attname, _MISSING) for obj in objs]
    if _MISSING in keys:
        return None  # a deferred key: Django's path reads it
    given = keys.count(None)
    if given and given != len(keys):
        return None
    return not given


def bulk_fields(model: type[Model], pk_set: bool) -> tuple:
    """The columns bulk_create() inserts for objects with or without keys."""
    return tuple(_insert_fields(model._meta.concrete_model._meta, pk_set))


def one_batch(db: str, fields: Sequence[Any], objs: Sequence[Model], batch_size: int | None) -> bool:
    """Do ``objs`` fit in one of the batches bulk_create() would send?"""
    if batch_size is not None and batch_size <= 0:
        return False  # Django raises
    limit = max(connections[db].ops.bulk_batch_size(list(fields), objs), 1)
    if batch_size:
        limit = min(batch_size, limit)
    return len(objs) <= limit


def bulk_rows(model: type[Model], db: str, fields: Sequence[Any], objs: Sequence[Model]) -> list | None:
    """Each object's values as Django's compiler prepares them (first call)."""
    query = InsertQuery(model._meta.concrete_model)
    query.insert_values(fields, [], raw=False)
    return prepared_rows(query.get_compiler(using=db), fields, objs)


def prepared_rows(compiler: Any, fields: Sequence[Any], objs: Sequence[Model]) -> list | None:
    """Run ``pre_save`` and ``get_db_prep_save`` as the compiler does, row by row."""
    preparers = [_preparer(compiler, field) for field in fields]
    try:
        rows = [[prepare(obj) for prepare in preparers] for obj in objs]
    except Exception:
        # Another object's value may fail first here than in Django (6.x
        # prepares column by column): as in BulkInsertPlan.params_of, Django's
        # own compilation of these objects raises the error Django raises.
        _compile_as_django(compiler, objs)
        raise
    return None if any(_has_expression(row) for row in rows) else rows


def _has_expression(values: Sequence[Any]) -> bool:
    """Is one of these prepared values an expression Django compiles into SQL?"""
    if _PLAIN_VALUES.issuperset(map(type, values)):  # (the usual row: no loop in Python)
        return False
    return any(type(value) not in _PLAIN_VALUES and hasattr(value, "as_sql") for value in values)


# Parameter types that are never expressions.
_PLAIN_VALUES = frozenset((str, int, float, bool, type(None), bytes))


# Django field classes whose pre_save reads the attribute and whose save
# preparation gives back a value of these exact types (or None) unchanged on
# vinyl's backends. Subclasses may change either, so only exact classes.
_UNCHANGED: dict[type, tuple[type, ...]] = {
    **dict.fromkeys((models.CharField, models.TextField, models.SlugField, models.EmailField), (str, type(None))),
    **dict.fromkeys(
        (
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveSmallIntegerField,
            models.PositiveBigIntegerField,
        ),
        (int, type(None)),
    ),
    models.FloatField: (float, type(None)),
}


def _unchanged_kinds(compiler: Any, field: Any) -> tuple[type, ...] | None:
    """The value types ``field`` hands back unchanged, where it reads its
    attribute as is (a Django field class of _UNCHANGED, not raw)."""
    kinds = _UNCHANGED.get(type(field))
    if kinds is None or compiler.query.raw or type(field).pre_save is not models.Field.pre_save:
        return None
    return kinds


def _preparer(compiler: Any, field: Any) -> Any:
    """``obj -> parameter`` for ``field``: the compiler's own preparation,
    skipped for values it would hand back unchanged (checked against
    Django's compilation when a plan is built)."""
    prepare, pre_save = compiler.prepare_value, compiler.pre_save_val

    def django(obj: Model) -> Any:
        return prepare(field, pre_save(field, obj))

    kinds = _unchanged_kinds(compiler, field)
    if kinds is None:
        return django
    attname = field.attname

    def plain(obj: Model) -> Any:
        value = obj.__dict__.get(attname, django)
        if type(value) in kinds:
            return value
        return django(obj)

    return plain


def _column_preparer(compiler: Any, field: Any) -> Callable[[Sequence[Model]], list | None]:
    """``objs -> [parameter of each]`` for ``field`` (see :func:`_preparer`):
    a column whose values all come back unchanged is read in one pass."""
    prepare = _preparer(compiler, field)

    def each(objs: Sequence[Model]) -> list | None:
        column = [prepare(obj) for obj in objs]
        return None if _has_expression(column) else column

    kinds = _unchanged_kinds(compiler, field)
    if kinds is None:
        return each
    attname, unchanged = field.attname, frozenset(kinds)

    def read(objs: Sequence[Model]) -> list | None:
        column = [obj.__dict__.get(attname, _MISSING) for obj in objs]
        if unchanged.issuperset(map(type, column)):
            return column
        return each(objs)

    return read


_MISSING = object()


def compile_bulk_insert(model: type[Model], db: str, pk_set: bool, fields: tuple, objs: Sequence[Model], rows: list) -> tuple[Any, bool]:
    """Compile the INSERT of ``objs`` (values already prepared as ``rows``).

    Returns ``(plan or NEVER, whether its SQL serves any count)``. NEVER when
    Django's statement is not one statement bound to exactly these values,
    row after row or one array per column.
    """
    concrete = model._meta.concrete_model
    meta = concrete._meta
    returning = tuple(meta.db_returning_fields)
    statement = _statement(concrete, db, fields, returning, objs)
    if statement is None:
        return NEVER, False
    sql, compiled = statement
    if _same(compiled, list(_by_column(rows))):
        by_column = True
    elif _same(compiled, list(_row_after_row(rows))):
        by_column = False
    else:
        return NEVER, False
    # The SQL serves any count if one more object leaves it unchanged.
    longer = _statement(concrete, db, fields, returning, [*objs, objs[0]]) if len(objs) > 1 else None
    any_count = longer is not None and longer[0] == sql
    query = InsertQuery(concrete)
    query.insert_values(fields, [], raw=False)  # the plan's compiler runs pre_save
    compiler = query.get_compiler(using=db)
    converters = compiler.get_converters([field.get_col(meta.db_table) for field in returning])
    targets = tuple(
        (position, field.attname)
        for position, field in enumerate(returning)
        if not pk_set or _SETS_GIVEN_PK or field is not meta.pk
    )
    prepare = connections[db].vinyl_cursor_class.prepare
    columns = tuple(_column_preparer(compiler, field) for field in fields)
    plan = BulkInsertPlan(sql, compiler, converters, targets, by_column, prepare, columns)
    return plan, any_count


def _statement(model: type[Model], db: str, fields: tuple, returning: tuple, objs: Sequence[Model]) -> tuple[str, Sequence[Any]] | None:
    # raw: read the values pre_save already set, without running it again.
    query = InsertQuery(model)
    query.insert_values(fields, objs, raw=True)
    compiler = query.get_compiler(using=db)
    compiler.returning_fields = list(returning)
    statements = compiler.as_sql()
    return statements[0] if len(statements) == 1 else None


def _by_column(rows: list) -> list:
    return [list(column) for column in zip(*rows)]


def _row_after_row(rows: list) -> list:
    return list(chain.from_iterable(rows))


def _same(compiled: Sequence[Any], ours: Sequence[Any]) -> bool:
    """Equal values of the same types, arrays compared item by item."""
    if len(compiled) != len(ours):
        return False
    for a, b in zip(compiled, ours):
        if type(a) is not type(b):
            return False
        if type(a) is list:
            if not _same(a, b):
                return False
        elif a is not b and a != b:
            return False
    return True
