"""Django's postgresql compilers, with vinyl's explain() and parent fields for select_related."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql.compiler import SQLAggregateCompiler, SQLDeleteCompiler, SQLInsertCompiler, SQLUpdateCompiler
from django.db.backends.postgresql.compiler import SQLCompiler as BaseSQLCompiler

from vinyl._backend.compiler import ExplainMixin, ParentFieldsMixin


class DistinctOrderByPositionMixin:
    """ORDER BY of a SELECT DISTINCT names a selected expression that holds values by its position.

    PostgreSQL requires each ORDER BY expression of a SELECT DISTINCT to be
    in the select list, and Django writes the expression twice there (an
    ordering by an annotation ``values()`` left out is added to the select
    list). psycopg inlines the values, so both copies read alike; asyncpg
    binds each copy as its own ``$n`` and the server refuses the query.
    Ordering by the column's position is the same order, with one copy.
    """

    query: Any
    select: Any
    ordering_parts: Any

    def pre_sql_setup(self, *args: Any, **kwargs: Any) -> Any:
        extra_select, order_by, group_by = super().pre_sql_setup(*args, **kwargs)  # type: ignore[misc]
        query = self.query
        if query.distinct and not query.distinct_fields and not query.combinator and order_by:
            if any(params and not is_ref for _, (_, params, is_ref) in order_by):
                order_by = self._positional_order_by(self.select + extra_select, order_by)
        return extra_select, order_by, group_by

    def _positional_order_by(self, columns: list, order_by: list) -> list:
        selected: dict[tuple[str, tuple], int] = {}
        for position, (_, (sql, params), _) in enumerate(columns, 1):
            selected.setdefault((sql, tuple(params)), position)
        out = []
        for expr, (sql, params, is_ref) in order_by:
            if params and not is_ref:
                expression = self.ordering_parts.search(sql)[1]
                found = selected.get((expression, tuple(params)))
                if found is not None:
                    sql, params = f"{found}{sql[len(expression):]}", []
            out.append((expr, (sql, params, is_ref)))
        return out


class SQLCompiler(DistinctOrderByPositionMixin, ParentFieldsMixin, ExplainMixin, BaseSQLCompiler):
    pass


__all__ = ["SQLAggregateCompiler", "SQLCompiler", "SQLDeleteCompiler", "SQLInsertCompiler", "SQLUpdateCompiler"]
