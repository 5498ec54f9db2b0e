"""vinyl in a few seconds: ``python -m demo [--database URL] [--sql]``.

Runs on an SQLite file by default (no server); give a PostgreSQL or MariaDB
URL with ``--database`` or ``VINYL_DEMO_DATABASE`` to run the same code there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database",
        help="database URL (default: an SQLite file in the temp directory); e.g. "
        "postgresql://postgres@127.0.0.1:5432/test or mysql://root@127.0.0.1:3306/test",
    )
    parser.add_argument("--sql", action="store_true", help="log every statement (the vinyl.sql logger)")
    args = parser.parse_args(argv)
    if args.database:
        os.environ["VINYL_DEMO_DATABASE"] = args.database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

    import django

    django.setup()
    if args.sql:
        logging.basicConfig(format="    sql %(message)s")
        logging.getLogger("vinyl.sql").setLevel(logging.DEBUG)

    from demo.tour import migrate, tour

    started = time.perf_counter()
    migrate()
    asyncio.run(tour())
    print(f"\ndone in {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
