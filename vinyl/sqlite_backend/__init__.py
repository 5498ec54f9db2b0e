"""SQLite through SQLAlchemy's async engine and aiosqlite: the embedded default."""
