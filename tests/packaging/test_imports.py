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
