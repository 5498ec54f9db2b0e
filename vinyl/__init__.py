"""vinyl: natively asynchronous Django ORM on SQLAlchemy's async engine.

::

    class Book(models.Model):
        objects = models.Manager()
        vinyl = VinylManager()

    books = await Book.vinyl.filter(author__name="Ann").select_related("author")
    async with vinyl.atomic():
        await Book.vinyl.create(title="x", author=author)
"""

__version__ = "0.2.0"

# First: fails at import if a dependency lacks a private name vinyl needs.
from vinyl import _compat  # noqa: F401, E402

from vinyl._querylog import capture_queries
from vinyl.engine.engines import dispose, get_engine, set_engine
from vinyl.manager import VinylManager
from vinyl.raw import execute, fetch
from vinyl.transaction import atomic, on_commit, use_connection
from vinyl.translate.plan_cache import plan_cache_info

__all__ = [
    "VinylManager",
    "__version__",
    "atomic",
    "capture_queries",
    "dispose",
    "execute",
    "fetch",
    "get_engine",
    "on_commit",
    "plan_cache_info",
    "set_engine",
    "use_connection",
]
