"""The suite with a database server down, or its databases in use by another
run: it stops at once, on one line, and fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def test_a_server_down_stops_the_run_with_one_line_and_fails():
    down = "MYSQL" if "mysql" in settings.BACKENDS else "PG"
    env = {**os.environ, f"VINYL_TEST_{down}_PORT": "1"}  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/translate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, lines
    assert "test server for alias" in lines[0] and "cannot be reached" in lines[0]
    assert "VINYL_TEST_BACKENDS" in lines[0]


def test_a_second_run_on_the_same_databases_stops_with_one_line_and_fails():
    """This run holds its databases: a run started meanwhile on the same ones
    would empty their tables under this one's tests, and must not start."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/translate"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, lines
    assert f"pid {os.getpid()}" in lines[0] and "is using the" in lines[0]
    assert "VINYL_TEST_PG_NAME" in lines[0]
