"""Django's mysql compilers, with vinyl's explain(), parent fields for
select_related, and NOWAIT's failure as Django's own error."""

from __future__ import annotations

from typing import Any

from vinyl.mysql_backend import _mysqldb

_mysqldb.import_django_mysql()

from django.db import OperationalError
from django.db.backends.mysql.compiler import SQLAggregateCompiler, SQLDeleteCompiler, SQLInsertCompiler, SQLUpdateCompiler
from django.db.backends.mysql.compiler import SQLCompiler as BaseSQLCompiler

from vinyl._backend.compiler import ExplainMixin, ParentFieldsMixin
from vinyl.exceptions import MYSQL_LOCK_WAIT_TIMEOUT, TransactionConflict


class SQLCompiler(ParentFieldsMixin, ExplainMixin, BaseSQLCompiler):
    def execute_sql(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_sql(*args, **kwargs)
        except TransactionConflict as exc:
            # MariaDB reports a row NOWAIT found locked as error 1205, the
            # code of a lock wait that timed out, which vinyl retries. NOWAIT
            # is the caller's "do not wait": Django's OperationalError, as
            # on PostgreSQL (55P03), never run again.
            # (Django's compiled Query is the one place that says NOWAIT.)
            if exc.args[:1] != (MYSQL_LOCK_WAIT_TIMEOUT,) or not self.query.select_for_update_nowait:
                raise
            raise OperationalError(*exc.args).with_traceback(exc.__traceback__) from exc.__cause__


__all__ = ["SQLAggregateCompiler", "SQLCompiler", "SQLDeleteCompiler", "SQLInsertCompiler", "SQLUpdateCompiler"]
