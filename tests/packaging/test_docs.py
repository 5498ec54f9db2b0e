"""Every command and code block of the README and docs is checked.

Python blocks compile; shell commands name Makefile targets that exist (and
that make accepts), modules that import, and extras that pyproject declares;
``make docs`` builds the API reference.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "alembic-free-examples" / "README.md", ROOT / "benchmarks" / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`((?:make|python|\.venv/bin/python|pip install)\s[^`]+)`")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TARGETS = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def blocks(path: Path, languages: tuple[str, ...]) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang in languages]


def commands(path: Path) -> list[str]:
    found = []
    for body in blocks(path, ("sh", "bash", "console")):
        for line in body.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                found.extend(part.strip() for part in line.split("&&"))
    text = FENCE.sub("", path.read_text())
    for span in INLINE.findall(text):
        found.extend(part.strip() for part in span.split("&&"))
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_compile(path: Path) -> None:
    for body in blocks(path, ("python", "py")):
        compile(body, str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def check_command(command: str, cwd: Path) -> None:
    words = shlex.split(command)
    program, args = words[0], words[1:]
    if program == "make":
        target = next((a for a in args if "=" not in a and not a.startswith("-")), "all")
        assert target in TARGETS, f"{command!r}: no target {target!r} in the Makefile"
        dry = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, f"{command!r}: {dry.stderr}"
    elif program == "pip" and args[:1] == ["install"]:
        for spec in (a for a in args[1:] if not a.startswith("-")):
            name, _, extras = spec.partition("[")
            if "/" not in name:
                assert name == PYPROJECT["project"]["name"], command
            wanted = set(filter(None, extras.rstrip("]").split(",")))
            assert wanted <= set(PYPROJECT["project"]["optional-dependencies"]), command
    elif program.endswith("python"):
        if args[:1] == ["-m"]:
            module = args[1]
            sys.path.insert(0, str(cwd))
            try:
                assert importlib.util.find_spec(module) is not None, f"{command!r}: no module {module}"
            finally:
                sys.path.remove(str(cwd))
        elif args[0] == "manage.py" and not (cwd / "manage.py").exists():
            # A command of the reader's own project: one of Django's.
            from django.core.management import get_commands

            assert args[1] in get_commands(), f"{command!r}: Django has no {args[1]!r} command"
        else:
            assert (cwd / args[0]).exists(), f"{command!r}: no file {args[0]} in {cwd}"
    else:
        pytest.fail(f"{command!r}: a documented command the docs test does not know how to check")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_commands_name_real_targets_modules_and_extras(path: Path) -> None:
    for command in commands(path):
        if path.parent.name == "alembic-free-examples":
            # Each example's commands run in its own directory.
            cwds = [d for d in path.parent.iterdir() if d.is_dir()]
            errors = []
            for cwd in cwds:
                try:
                    check_command(command, cwd)
                    break
                except AssertionError as exc:
                    errors.append(str(exc))
            else:
                pytest.fail("; ".join(errors))
        else:
            check_command(command, ROOT)


def test_make_docs_builds_the_api_reference(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "docs/api/build.py", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "vinyl" / "queryset.html").read_text()
    assert "VinylQuerySet" in page and "get_or_create" in page
    assert "VinylManager" in (tmp_path / "vinyl.html").read_text()
