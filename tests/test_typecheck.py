"""mypy passes on vinyl itself (strict, less what untyped Django forces: see
pyproject's [tool.mypy]) and on the code users write: examples, demo, tests/typing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes_on_vinyl_the_examples_and_the_typing_checks():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
