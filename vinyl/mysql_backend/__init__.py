"""MySQL and MariaDB through SQLAlchemy's async engine and asyncmy."""

# First: the private names this backend uses (its SQLAlchemy dialect, its
# driver) are checked before any of its modules runs (see vinyl._compat).
from vinyl._compat import check_mysql

check_mysql()
