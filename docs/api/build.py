"""Build vinyl's API reference from its docstrings: ``make docs`` (pdoc).

Writes HTML to ``build/api`` (or the directory given as the first argument).
The public modules are documented; private ones (``vinyl._*``) are not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

MODULES = [
    "vinyl",
    "vinyl.manager",
    "vinyl.queryset",
    "vinyl.models",
    "vinyl.related",
    "vinyl.proxies",
    "vinyl.generic",
    "vinyl.transaction",
    "vinyl.raw",
    "vinyl.exceptions",
    "vinyl.test",
    "vinyl.testing",
    "vinyl.engine",
]


def main() -> int:
    # vinyl's modules import Django's; no database is touched.
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "unused.sqlite3"}},
    )
    django.setup()
    import pdoc

    output = Path(sys.argv[1] if len(sys.argv) > 1 else "build/api")
    pdoc.render.configure(docformat="restructuredtext", search=True)
    pdoc.pdoc(*MODULES, output_directory=output)
    index = output / "vinyl.html"
    if not index.exists():
        print(f"pdoc wrote no {index}", file=sys.stderr)
        return 1
    print(f"API reference: {output / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
