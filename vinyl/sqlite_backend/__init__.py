"""SQLite through SQLAlchemy's async engine and aiosqlite: the embedded default."""

# First: the private names this backend uses (its SQLAlchemy dialect, its
# driver) are checked before any of its modules runs (see vinyl._compat).
from vinyl._compat import check_sqlite

check_sqlite()
