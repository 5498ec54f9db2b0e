"""Importing vinyl has no process-wide side effect."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_mysql_backend_does_not_install_mysqldb_for_the_process():
    out = run_python(
        """
        import sys
        import django
        from django.conf import settings
        settings.configure(DATABASES={"default": {}, "vinyl_default": {"ENGINE": "vinyl.mysql_backend", "NAME": "x"}})
        django.setup()
        import vinyl
        from django.db import connections
        wrapper = connections["vinyl_default"]
        print(type(wrapper).__module__, wrapper.vendor)
        print("MySQLdb" in sys.modules)
        try:
            import MySQLdb
        except ImportError:
            print("no MySQLdb")
        """
    )
    assert out.split("\n")[:3] == ["vinyl.mysql_backend.base mysql", "False", "no MySQLdb"]


def test_vinyl_has_the_version_of_its_distribution():
    from importlib.metadata import version

    import vinyl

    assert vinyl.__version__ == version("django-vinyl")


def test_the_wheel_declares_name_license_and_extras_without_warnings(tmp_path):
    from pathlib import Path
    import zipfile

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(root)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "BuildBackendWarning" not in output and "deprecated" not in output.lower(), output
    (wheel,) = tmp_path.glob("django_vinyl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
        assert any(n.endswith("licenses/LICENSE") for n in archive.namelist())
        assert any(n == "vinyl/py.typed" for n in archive.namelist())
    assert "Name: django-vinyl" in text
    assert "License-Expression: BSD-3-Clause" in text
    assert "Provides-Extra: postgresql" in text and "Provides-Extra: mysql" in text
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(driver in line for line in requires for driver in ("asyncpg", "asyncmy", "psycopg", "pymysql"))


def test_importing_vinyl_and_a_backend_leaves_the_garbage_collector_as_it_was():
    # vinyl pauses the collector while it imports SQLAlchemy, and a backend's
    # dialect and driver (vinyl._coldstart): enabled before, enabled after;
    # disabled by the application, still disabled. At most two collections
    # run during `import vinyl`, once the collector is back on (Python 3.11
    # runs the one that is due as one pass, 3.12 as two; without
    # the pause: dozens).
    code = """
        import gc
        import sys
        if sys.argv[1] == "off":
            gc.disable()
        import django
        from django.conf import settings
        settings.configure(DATABASES={"default": {}, "vinyl_default": {"ENGINE": "vinyl.%s_backend", "NAME": "x"}})
        django.setup()
        runs = []
        gc.callbacks.append(lambda phase, info: runs.append(phase) if phase == "start" else None)
        import vinyl
        print(gc.isenabled(), len(runs) <= 2)
        from django.db import connections
        connections["vinyl_default"]
        print(gc.isenabled(), hasattr(vinyl, "collector_paused"))
        """
    for backend in ("postgresql", "mysql", "sqlite"):
        for state, expected in (("on", ["True True", "True False"]), ("off", ["False True", "False False"])):
            result = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(code % backend), state],
                capture_output=True, text=True, timeout=120,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines() == expected, (backend, state)


#: A class of each backend's SQLAlchemy dialect, imported when Django loads
#: the backend for an alias (with the collector paused, vinyl._coldstart).
_DIALECTS = {
    "postgresql": "sqlalchemy.dialects.postgresql.asyncpg:PGDialect_asyncpg",
    "mysql": "sqlalchemy.dialects.mysql.asyncmy:MySQLDialect_asyncmy",
    "sqlite": "sqlalchemy.dialects.sqlite.aiosqlite:SQLiteDialect_aiosqlite",
}


def test_what_vinyl_and_a_backend_import_is_left_in_the_oldest_generation():
    # Imported with the collector paused, SQLAlchemy's objects would all be
    # young when it resumes: its next two collections would walk each of
    # them (about 55 ms of CPU of a cold start). vinyl._coldstart moves them
    # to the oldest generation instead, unless objects were frozen before
    # (by the application, or Python 3.12 at start): those stay frozen
    # (gc.unfreeze() would thaw them).
    code = """
        import gc
        import importlib
        import sys
        kept = [[]]  # an object of the application's, frozen by it or not
        at_start = gc.get_freeze_count()  # Python 3.12 starts with some tuples frozen
        if sys.argv[2] == "frozen":
            gc.freeze()
        import django
        from django.conf import settings
        settings.configure(DATABASES={"default": {}, "vinyl_default": {"ENGINE": "vinyl.%s_backend", "NAME": "x"}})
        django.setup()

        def generation(obj):
            assert gc.is_tracked(obj)
            return next((str(g) for g in range(3) if any(o is obj for o in gc.get_objects(generation=g))), "frozen")

        import vinyl
        from sqlalchemy.sql.compiler import SQLCompiler
        print(generation(SQLCompiler), generation(vinyl.VinylManager))
        from django.db import connections
        connections["vinyl_default"]
        module, name = sys.argv[1].split(":")
        print(generation(getattr(importlib.import_module(module), name)))
        print(generation(kept), gc.isenabled(), at_start > 0, gc.get_freeze_count() == at_start)
        """
    for backend, dialect in _DIALECTS.items():
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code % backend), dialect, "plain"],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        if lines[-1].split()[2] == "True":  # objects frozen at start (3.12): not done, none thawed
            assert lines[-1].split()[1:] == ["True", "True", "True"], (backend, lines)
        else:
            assert lines == ["2 2", "2", "2 True False True"], backend
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code % backend), dialect, "frozen"],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].startswith("frozen True"), backend
