from __future__ import annotations

from django.db.backends.sqlite3.operations import DatabaseOperations as SQLiteOperations


class DatabaseOperations(SQLiteOperations):
    compiler_module = "vinyl.sqlite_backend.compiler"
