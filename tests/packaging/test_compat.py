"""Every private name of a dependency goes through vinyl._compat, checked at import.

- A Django or SQLAlchemy without a name vinyl needs makes ``import vinyl``
  fail at once, with a message naming the dependency, its version and the
  name (simulated here by deleting one before the import).
- No module of vinyl but ``_compat`` reads, writes or overrides a private name
  of Django, SQLAlchemy, the drivers or asyncio (an AST check).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.db.models.query import QuerySet
from sqlalchemy.pool import QueuePool

import vinyl
from vinyl import _compat

VINYL = Path(vinyl.__file__).parent

#: Underscored names Django documents as public API.
DOCUMENTED = {
    "_meta": "Model._meta, the Options API (docs: Model _meta API)",
    "_state": "Model._state.adding and .db (docs: Model instance reference)",
    "_default_manager": "Model._default_manager (docs: Managers)",
    "_base_manager": "Model._base_manager (docs: Managers)",
}

#: vinyl's own attributes that share a name with a private one of a dependency:
#: allowed on ``self`` (and the vinyl objects a vinyl method builds) only.
SHARED = {
    "_chain": "VinylQuerySet._chain: vinyl's own next step of a chain",
    "_db": "VinylQuerySet._db: the alias a vinyl queryset was given",
    "_values": "VinylQuerySet._values: the parameters of its recipe",
    "_rows": "VinylQuerySet._rows: rows of a recipe",
    "_send": "VinylCollector._send / vinyl's many-to-many manager: vinyl's awaited signal sending",
    "_alias": "vinyl's related managers' _alias(): the alias of their instance",
    "_run": "VinylQuerySet._run: one operation in the bridge",
}
VINYL_RECEIVERS = {"self", "cls", "new", "base"}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_a_django_without_a_private_name_fails_at_import_with_a_clear_message():
    result = _run(
        """
        import django.db.models
        del django.db.models.Model._save_table
        import vinyl
        """
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: vinyl ")
    assert "django.db.models.base.Model._save_table (Django 5.2-6.1)" in last
    assert f"Django {django_version()} does not have it" in last


def test_a_sqlalchemy_without_a_private_name_fails_at_import_with_a_clear_message():
    result = _run(
        """
        from sqlalchemy.pool import QueuePool
        original = QueuePool.__init__
        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            del self._max_overflow
        QueuePool.__init__ = __init__
        import vinyl
        """
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ImportError: vinyl " in last
    assert "sqlalchemy.pool.impl.QueuePool._max_overflow (SQLAlchemy" in last
    assert "does not have it" in last


def test_a_changed_signature_fails_at_import_too():
    result = _run(
        """
        import django.db.models
        def _save_parents(self, cls, using, force_insert):
            pass
        django.db.models.Model._save_parents = _save_parents
        import vinyl
        """
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "Model._save_parents" in last and "changed its parameters" in last


def test_a_backend_without_a_private_name_fails_when_that_backend_is_loaded():
    # A backend's names (its SQLAlchemy dialect, its driver) are checked when
    # Django loads the backend, before any statement runs on it.
    result = _run(
        """
        import django
        from django.conf import settings
        settings.configure(DATABASES={"default": {}, "vinyl_default": {"ENGINE": "vinyl.postgresql_backend", "NAME": "x"}})
        django.setup()
        import vinyl
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
        del AsyncAdapt_asyncpg_connection._start_transaction
        from django.db import connections
        connections["vinyl_default"]
        """
    )
    assert result.returncode != 0
    assert (
        "ImportError: vinyl " in result.stderr
        and "AsyncAdapt_asyncpg_connection._start_transaction (SQLAlchemy" in result.stderr
        and "does not have it" in result.stderr
    ), result.stderr


def test_a_sqlite_backend_without_a_private_name_of_djangos_sqlite3_backend_fails_too():
    result = _run(
        """
        import django
        from django.conf import settings
        settings.configure(DATABASES={"default": {}, "vinyl_default": {"ENGINE": "vinyl.sqlite_backend", "NAME": ":memory:"}})
        django.setup()
        import vinyl
        from django.db.backends.sqlite3 import base
        from django.db.backends.sqlite3.operations import DatabaseOperations
        del DatabaseOperations._quote_params_for_last_executed_query
        from django.db import connections
        connections["vinyl_default"]
        """
    )
    assert result.returncode != 0
    assert (
        "ImportError: vinyl " in result.stderr
        and "DatabaseOperations._quote_params_for_last_executed_query (Django" in result.stderr
    ), result.stderr


def test_a_content_type_manager_without_its_cache_fails_at_the_first_generic_relation():
    # ContentTypeManager's module needs loaded apps: its name is checked when
    # vinyl first reads a content type, before any answer comes from it.
    result = _run(
        """
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes"],
            DATABASES={"default": {}, "vinyl_default": {"ENGINE": "vinyl.sqlite_backend", "NAME": ":memory:"}},
        )
        django.setup()
        import vinyl
        from django.contrib.contenttypes.models import ContentType, ContentTypeManager
        del ContentTypeManager._get_from_cache
        from vinyl.generic import cached_content_type
        cached_content_type("vinyl_default", ContentType)
        """
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: vinyl ")
    assert "django.contrib.contenttypes.models.ContentTypeManager._get_from_cache (Django" in last


_OTHER_BACKENDS = {
    "postgresql": ("asyncmy", "aiosqlite", "sqlalchemy.dialects.mysql", "sqlalchemy.dialects.sqlite", "django.db.backends.sqlite3"),
    "mysql": ("asyncpg", "aiosqlite", "sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.sqlite", "django.db.backends.sqlite3"),
    "sqlite": ("asyncpg", "asyncmy", "sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.mysql"),
}


@pytest.mark.parametrize("backend", sorted(_OTHER_BACKENDS))
def test_vinyl_imports_only_the_configured_backends_dialect_and_driver(backend):
    # Cold start (issue 17): `import vinyl` imports no dialect or driver; an
    # engine of one backend imports that backend's, never another's.
    result = _run(
        f"""
        import sys
        import django
        from django.conf import settings
        settings.configure(DATABASES={{"default": {{}}, "vinyl_default": {{"ENGINE": "vinyl.{backend}_backend", "NAME": "x"}}}})
        django.setup()
        def loaded(prefix):
            return sorted(m for m in sys.modules if m == prefix or m.startswith(prefix + "."))
        import vinyl
        print("after import:", [m for p in ("asyncpg", "asyncmy", "aiosqlite") for m in loaded(p)]
              + [m for m in loaded("sqlalchemy.dialects") if m.count(".") > 1])
        vinyl.get_engine()
        print("after engine:", [m for p in {_OTHER_BACKENDS[backend]!r} for m in loaded(p)])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["after import: []", "after engine: []"]


def test_the_first_query_imports_no_sqlalchemy_orm():
    # Cold start (issue 17): vinyl uses SQLAlchemy's async engine, not its
    # ORM, which sqlalchemy.ext.asyncio's __init__ imports (for AsyncSession):
    # vinyl defers that __init__ (vinyl._compat). A first query on each
    # backend imports no sqlalchemy.orm.
    result = _run(
        """
        import asyncio
        import os
        import sys
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        import django
        django.setup()
        import vinyl
        from tests.settings import BACKENDS, VINYL_ALIAS

        async def first_queries():
            for backend in BACKENDS:
                assert await vinyl.fetch("SELECT 1", using=VINYL_ALIAS[backend]) == [(1,)]
            await vinyl.dispose()

        asyncio.run(first_queries())
        print(sorted(m for m in sys.modules if m.startswith(("sqlalchemy.orm", "sqlalchemy.ext.asyncio.s"))))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]"]


@pytest.mark.parametrize(
    "use",
    [
        "from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, AsyncEngine",
        "from sqlalchemy.ext.asyncio import *",
        "import sqlalchemy.ext.asyncio as a; AsyncSession = a.AsyncSession; AsyncEngine = a.AsyncEngine",
        "import sqlalchemy.ext.asyncio.session as s; AsyncSession = s.AsyncSession; from sqlalchemy.ext.asyncio import AsyncEngine",
    ],
)
def test_sqlalchemy_ext_asyncio_is_whole_for_whoever_imports_it_after_vinyl(use):
    # The deferred package runs its own __init__ at its first use: the same
    # module and classes as without vinyl.
    result = _run(
        f"""
        import sys
        import vinyl
        from vinyl.engine.engines import AsyncConnection
        import sqlalchemy.ext.asyncio.engine as engine
        assert "sqlalchemy.orm" not in sys.modules
        {use}
        import sqlalchemy.ext.asyncio as package
        import sqlalchemy.orm
        assert sys.modules["sqlalchemy.ext.asyncio"] is package
        assert AsyncSession is sys.modules["sqlalchemy.ext.asyncio.session"].AsyncSession is package.AsyncSession
        assert AsyncEngine is engine.AsyncEngine and package.AsyncConnection is AsyncConnection
        assert "__getattr__" not in vars(package) and "AsyncSession" in dir(package)
        assert package.async_scoped_session.__module__ == "sqlalchemy.ext.asyncio.scoping"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ok"]


def test_a_process_that_imported_sqlalchemy_ext_asyncio_keeps_it():
    result = _run(
        """
        import sqlalchemy.ext.asyncio as package
        import vinyl
        import sys
        assert sys.modules["sqlalchemy.ext.asyncio"] is package and "AsyncSession" in vars(package)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ok"]


def django_version() -> str:
    import django

    return django.get_version()


def test_every_needed_name_has_a_reason():
    for check in (_compat.check_postgresql, _compat.check_mysql, _compat.check_sqlite, _compat.check_contenttypes):
        check()
    assert len(_compat.NEEDED) > 50
    for needed in _compat.NEEDED:
        assert needed.reason and needed.dependency in _compat.SUPPORTED, needed


# -- no private name outside vinyl._compat ----------------------------------------


def _vinyl_modules() -> list[object]:
    modules = []
    for info in pkgutil.walk_packages([str(VINYL)], "vinyl."):
        if info.name in ("vinyl.test", "vinyl.testing") or ".management" in info.name:
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _private(names: object) -> set[str]:
    return {name for name in names if name.startswith("_") and not name.startswith("__")}  # type: ignore[attr-defined]


def _foreign_names() -> set[str]:
    """Private names of the dependencies' classes vinyl uses or subclasses."""
    modules = _vinyl_modules()  # first: each backend registers its names when imported
    names = _private(needed.name for needed in _compat.NEEDED)
    names |= _private(vars(QuerySet())) | _private(vars(QueuePool(lambda: None)))
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            for base in cls.__mro__:
                if not base.__module__.startswith("vinyl") and base is not object:
                    names |= _private(dir(base))
    return names - set(DOCUMENTED)


def _overridable() -> set[str]:
    return {n.name for n in _compat.NEEDED if n.how in ("override", "implement")}


def test_no_module_but_compat_uses_a_private_name_of_a_dependency():
    foreign = _foreign_names()
    overridable = _overridable()
    wrong = []
    for path in sorted(VINYL.rglob("*.py")):
        if path.name == "_compat.py":
            continue
        tree = ast.parse(path.read_text())
        where = path.relative_to(VINYL.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and not (node.module or "").startswith("vinyl"):
                wrong += [f"{where}:{node.lineno}: from {node.module} import {a.name}" for a in node.names if _private([a.name])]
                if _private((node.module or "").split(".")):
                    wrong.append(f"{where}:{node.lineno}: from {node.module} import ...")
            elif isinstance(node, ast.Attribute) and node.attr in foreign:
                receiver = node.value
                if isinstance(receiver, ast.Name) and receiver.id in VINYL_RECEIVERS and node.attr in SHARED:
                    continue
                if isinstance(receiver, ast.Call) and getattr(receiver.func, "id", None) == "super" and node.attr in overridable:
                    continue
                wrong.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in foreign:
                if node.value not in SHARED:
                    wrong.append(f"{where}:{node.lineno}: {node.value!r}")
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names = [item.name]
                    elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                        names = [target.id for target in targets if isinstance(target, ast.Name)]
                    else:
                        continue
                    for name in names:
                        if name in foreign and name not in overridable and name not in SHARED:
                            wrong.append(f"{where}:{item.lineno}: {node.name}.{name} (register it in vinyl._compat)")
    assert not wrong, "private names of dependencies outside vinyl._compat:\n" + "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_every_shared_name_is_vinyls_own(name):
    # A name is listed only while vinyl defines an attribute of that name.
    source = "\n".join(path.read_text() for path in VINYL.rglob("*.py") if path.name != "_compat.py")
    assert f"def {name}(" in source or f"self.{name} =" in source or f'"{name}"' in source, name


def test_the_scoped_transaction_flags_are_djangos_with_djangos_defaults():
    # vinyl keeps the flags BaseDatabaseWrapper.__init__ sets in the engine
    # scope, starting from the same values: a Django that adds or changes one
    # shows here.
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper

    from vinyl._backend.base import _SCOPED_DEFAULTS

    assert set(_SCOPED_DEFAULTS) == set(_compat.WRAPPER_TRANSACTION_ATTRIBUTES)
    fresh = DatabaseWrapper({**connections["default"].settings_dict, "NAME": ":memory:"}, alias="compat-probe")
    for name, default in _SCOPED_DEFAULTS.items():
        expected = default() if callable(default) else default
        assert getattr(fresh, name) == expected, name


def test_the_supported_ranges_in_messages_are_pyprojects():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((VINYL.parent / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"]) + [
        line for extra in ("postgresql", "mysql") for line in project["optional-dependencies"][extra]
    ]
    names = {"django": "Django", "sqlalchemy": "SQLAlchemy", "asyncpg": "asyncpg", "asyncmy": "asyncmy", "aiosqlite": "aiosqlite"}
    for requirement in map(Requirement, lines):
        name = names.get(requirement.name.lower())
        if name is None:
            continue
        low, _, high = _compat.SUPPORTED[name].partition("-")
        bounds = {spec.operator: Version(spec.version) for spec in requirement.specifier}
        assert Version(low) == bounds[">="], name
        assert Version(high or low) < bounds["<"], name


def test_a_mutable_queryset_default_a_later_django_adds_is_each_prefetched_querysets_own(monkeypatch):
    """Prefetched querysets share QuerySet.__init__'s immutable defaults on
    their class; a mutable one (none in Django 5.2-6.1) must not be shared
    between them, nor stop vinyl from importing."""
    from django.db.models.query import ModelIterable

    original = QuerySet.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._later_django = []

    monkeypatch.setattr(QuerySet, "__init__", init)

    class Prefetched(QuerySet):
        pass

    _compat.install_prefetched_state(Prefetched, ModelIterable, lambda qs: {}, lambda qs: None)
    first, second = object.__new__(Prefetched), object.__new__(Prefetched)
    first._later_django.append(1)
    assert first._later_django == [1] and second._later_django == []
    _compat.store_prefetched_state(second)  # (what deepcopy and pickle read first)
    second._later_django.append(2)
    assert second.__dict__["_vinyl_own_later_django"] == [2] and first._later_django == [1]
    assert Prefetched._sticky_filter is False and "_sticky_filter" not in vars(first)
