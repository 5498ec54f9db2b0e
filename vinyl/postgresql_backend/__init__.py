"""PostgreSQL through SQLAlchemy's async engine and asyncpg."""
