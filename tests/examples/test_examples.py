"""The demo and alembic-free-examples/ run as a user runs them, so they cannot rot.

Each example is its own project with its own settings: its ``test_*.py``
runs in a fresh interpreter (``python -m pytest``) inside the example's
directory, with ``DATABASE_URL`` pointing at SQLite, PostgreSQL or MariaDB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "alembic-free-examples"


def database_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'example.sqlite3'}"
    db = settings.PG if backend == "postgresql" else settings.MYSQL
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"{backend}://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def run(args: list[str], cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "VINYL_DEMO_DATABASE": url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


EXAMPLE_BACKENDS = [b for b in ("sqlite", "postgresql", "mysql") if b in settings.BACKENDS]


@pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)
@pytest.mark.parametrize(
    "example, tests",
    [
        ("django_asgi", "test_notes_site.py"),
        ("starlette_shared_pool", "test_shop_app.py"),
        ("streaming", "test_stream_events.py"),
    ],
)
def test_example_passes_its_own_tests(example: str, tests: str, backend: str, tmp_path: Path) -> None:
    result = run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", tests],
        EXAMPLES / example,
        database_url(backend, tmp_path),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout


@pytest.mark.parametrize("backend", settings.BACKENDS)
def test_demo_prints_every_step(backend: str, tmp_path: Path) -> None:
    result = run(["-m", "demo"], ROOT, database_url(backend, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in (
        "migrated library.0001_initial",
        "created 2 authors, 4 books",
        "select_related: 'Ancillary Justice' by Ann Leckie",
        "(1 query for 4 books and their authors)",
        "prefetch_related: Ted Chiang: Exhalation, Stories of Your Life",
        "after rollback: 4 books, 'Ted Chiang' unchanged",
        "after commit: 5 books",
        "Core count(library_book) = 5",
        "Core insert + vinyl count in one transaction: Ann has 4 books",
    ):
        assert expected in out, out


def test_the_django_example_serves_with_the_readme_command(tmp_path: Path) -> None:
    """README: `python manage.py migrate && python -m uvicorn notes_site.asgi:application`."""
    import socket
    import time
    import urllib.request

    example = EXAMPLES / "django_asgi"
    url = database_url("sqlite", tmp_path)
    migrated = run(["manage.py", "migrate"], example, url)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "notes_site.asgi:application", "--port", str(port)],
        cwd=example, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/notebooks/", timeout=5) as response:
                    assert response.status == 200
                    assert response.read().startswith(b"{")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "uvicorn did not answer"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
