"""Compiled INSERTs for ``create()``: one statement per model, reused.

``Model.vinyl.create(**kwargs)`` on a plain model (one table, no save
signals, no overridden save machinery) sends one ``INSERT ... RETURNING``.
Its SQL depends only on the model and on whether the primary key is given,
as long as every value is a plain value (not an expression, which Django
compiles into the SQL). Django's own insert compiler builds the SQL once and
prepares each call's values (``pre_save``, ``get_db_prep_save``); the
statement then runs straight on the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from django.db import connections
from django.db.models import Model
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery

# Methods of Model that a create() goes through: a model that overrides one
# keeps Django's full path.
_SAVE_PATH = (
    "save",
    "save_base",
    "_save_parents",
    "_save_table",
    "_do_insert",
    "_prepare_related_fields_for_save",
)


@dataclass(frozen=True, slots=True)
class InsertPlan:
    """The INSERT of one model, and how to fill it and read its result."""

    sql: str
    fields: tuple
    returning: tuple
    compiler: Any
    converters: dict
    # The backend cursor's SQL and parameter rewriting for its driver.
    prepare: Any

    def params(self, obj: Model) -> list | None:
        """The statement's parameters for ``obj``; None if one is an expression."""
        compiler = self.compiler
        params = [compiler.prepare_value(field, compiler.pre_save_val(field, obj)) for field in self.fields]
        for value in params:
            if hasattr(value, "as_sql"):
                return None
        return params

    def assign(self, obj: Model, rows: Sequence[Sequence[Any]], db: str) -> None:
        """Set what the statement returned on ``obj`` and mark it saved."""
        if rows:
            row = rows[0]
            if self.converters:
                row = next(iter(self.compiler.apply_converters([row], self.converters)))
            for value, field in zip(row, self.returning):
                setattr(obj, field.attname, value)
        obj._state.adding = False
        obj._state.db = db


def plannable(model: type[Model], db: str) -> bool:
    """Can create() on ``model`` run as one compiled INSERT on ``db``?"""
    origin = getattr(model, "_vinyl_origin", model)
    if pre_save.has_listeners(origin) or post_save.has_listeners(origin):
        return False
    key = (model, db)
    static = _static.get(key)
    if static is None:
        static = _static[key] = _plain_save(model, db)
    return static


# (model, alias) -> what plannable() decides once per model.
_static: dict[tuple, bool] = {}


def _plain_save(model: type[Model], db: str) -> bool:
    meta = model._meta.concrete_model._meta
    origin = getattr(model, "_vinyl_origin", model)
    if meta.parents or meta.order_with_respect_to or meta.private_fields or len(getattr(meta, "pk_fields", (meta.pk,))) != 1:
        return False
    if any(getattr(origin, name, None) is not getattr(Model, name) for name in _SAVE_PATH):
        return False
    # Without RETURNING, Django reads the new key from the cursor.
    return bool(connections[db].features.can_return_columns_from_insert)


def prepare_instance(obj: Model) -> bool | None:
    """Do what save() does before its INSERT; return whether the pk is set.

    None when Django's own save() must handle the instance: a related object
    assigned to it is unsaved, or its key no longer matches the column
    (Django raises or re-reads them; vinyl's descriptors would hand back
    awaitables here).
    """
    meta = obj._meta.concrete_model._meta
    for field in meta.concrete_fields:
        if field.is_relation and field.is_cached(obj):
            related = field.get_cached_value(obj)
            if related is None:
                continue
            value = getattr(related, field.target_field.attname)
            if value is None or getattr(obj, field.attname) != value:
                return None
    if getattr(obj, meta.pk.attname) is None:
        setattr(obj, meta.pk.attname, meta.pk.get_pk_value_on_save(obj))
    return getattr(obj, meta.pk.attname) is not None


def compile_insert(obj: Model, db: str, pk_set: bool, params: list) -> InsertPlan | None:
    """Compile the INSERT of ``obj`` (values already prepared as ``params``).

    Returns None when Django's statement is not one ``%s`` per field with
    exactly these parameters (a field with its own placeholder, say).
    """
    model = obj._meta.concrete_model
    meta = model._meta
    fields = tuple(_insert_fields(meta, pk_set))
    returning = tuple(meta.db_returning_fields)
    query = InsertQuery(model)
    # raw: read the values pre_save already set, without running it again.
    query.insert_values(fields, [obj], raw=True)
    compiler = query.get_compiler(using=db)
    compiler.returning_fields = list(returning)
    statements = compiler.as_sql()
    if len(statements) != 1:
        return None
    sql, compiled_params = statements[0]
    if list(compiled_params) != params or any(type(a) is not type(b) for a, b in zip(compiled_params, params)):
        return None
    query.insert_values(fields, [obj], raw=False)  # the plan's compiler runs pre_save
    columns = [field.get_col(meta.db_table) for field in returning]
    prepare = connections[db].vinyl_cursor_class.prepare
    return InsertPlan(sql, fields, returning, compiler, compiler.get_converters(columns), prepare)


def insert_params(obj: Model, db: str, pk_set: bool) -> list | None:
    """The parameters Django's compiler gives ``obj`` (first call of a model)."""
    model = obj._meta.concrete_model
    query = InsertQuery(model)
    fields = _insert_fields(model._meta, pk_set)
    query.insert_values(fields, [obj], raw=False)
    compiler = query.get_compiler(using=db)
    params = [compiler.prepare_value(field, compiler.pre_save_val(field, obj)) for field in fields]
    return None if any(hasattr(value, "as_sql") for value in params) else params


def _insert_fields(meta: Any, pk_set: bool) -> list:
    # The columns save() inserts: every local concrete column but generated
    # ones, and the auto key only when it has a value.
    return [f for f in meta.local_concrete_fields if not f.generated and (pk_set or f is not meta.auto_field)]
