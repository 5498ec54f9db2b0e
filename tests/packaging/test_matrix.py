"""The version matrix: pyproject's bounds are the versions CI tests.

- Every lower bound in pyproject is pinned by ``.ci/lowest-versions.txt``,
  which the lowest leg of ``make test-matrix`` installs.
- Whatever leg runs, the installed dependencies are inside pyproject's bounds,
  and on the lowest leg they are exactly the pinned versions.
"""

from __future__ import annotations

import os
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
# The dependencies the matrix varies (Python itself is chosen by the venv).
MATRIX = {"django", "sqlalchemy", "aiosqlite", "asyncpg", "asyncmy"}


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in ("postgresql", "mysql"):
        lines += project["optional-dependencies"][extra]
    requirements = (Requirement(line) for line in lines)
    return {r.name.lower(): r for r in requirements if r.name.lower() in MATRIX}


def _pinned() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / ".ci" / "lowest-versions.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            pins[name.strip().lower()] = Version(pinned.strip())
    return pins


def _lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{requirement} needs exactly one >= bound"
    return bounds[0]


def test_every_matrix_dependency_has_a_lower_and_an_upper_bound() -> None:
    declared = _declared()
    assert set(declared) == MATRIX
    for requirement in declared.values():
        operators = {s.operator for s in requirement.specifier}
        assert ">=" in operators and "<" in operators, f"{requirement} needs both bounds"


def test_the_lowest_leg_pins_exactly_pyprojects_lower_bounds() -> None:
    declared = _declared()
    assert _pinned() == {name: _lower_bound(r) for name, r in declared.items()}


def test_the_installed_versions_are_inside_the_bounds() -> None:
    for name, requirement in _declared().items():
        installed = version(name)
        assert requirement.specifier.contains(installed, prereleases=True), f"{name} {installed} outside {requirement}"
    if os.environ.get("VINYL_MATRIX_LEG") == "lowest":
        assert {name: Version(version(name)) for name in MATRIX} == _pinned()
