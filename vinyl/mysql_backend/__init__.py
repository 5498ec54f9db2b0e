"""MySQL and MariaDB through SQLAlchemy's async engine and asyncmy."""
