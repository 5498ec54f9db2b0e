"""vinyl: natively asynchronous Django ORM on SQLAlchemy's async engine.

::

    class Book(models.Model):
        objects = models.Manager()
        vinyl = VinylManager()

    books = await Book.vinyl.filter(author__name="Ann").select_related("author")
    async with vinyl.atomic():
        await Book.vinyl.create(title="x", author=author)

Layout, lowest first: each module imports only the ones listed before it
(tests/packaging/test_import_graph.py checks it):

1. ``vinyl.engine``: SQLAlchemy's async engines, pools, transactions (scopes).
2. ``vinyl.translate``: Django queries compiled once into driver SQL (plans).
3. ``vinyl.routing``, ``vinyl._bridge``: which alias, and running Django's
   sync code on it; ``vinyl.transaction`` (``atomic``).
4. The ORM layer, in order: ``_vinylize`` (the vinyl model classes, looked
   up), ``deletion``, ``generic`` (content types), ``prefetch``, ``raw``,
   ``queryset``, ``proxies`` (its methods on managers), ``related``
   (related managers), ``descriptors``, ``pickling`` (vinyl classes and
   instances through pickle), ``models`` (builds the vinyl classes; their
   instance methods), ``manager``; then this package.
"""

# Imported with the garbage collector paused: SQLAlchemy's import creates a
# few hundred thousand objects that all live (see vinyl._coldstart).
from vinyl._coldstart import collector_paused

with collector_paused():
    from vinyl._version import __version__

    # First: fails at import if a dependency lacks a private name vinyl needs.
    from vinyl import _compat  # noqa: F401, E402

    from vinyl._querylog import capture_queries
    from vinyl.engine.engines import dispose, get_engine, set_engine
    from vinyl.manager import VinylManager
    from vinyl.raw import execute, fetch
    from vinyl.transaction import atomic, on_commit, use_connection
    from vinyl.translate.plan_cache import plan_cache_info

del collector_paused

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
