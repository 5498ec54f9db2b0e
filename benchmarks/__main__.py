"""Run the benchmarks on every database and write ``results/latest.md``.

::

    python -m benchmarks            # full: 10k authors / 50k books / 1M streamed rows, 7 reps
    python -m benchmarks --quick    # scaled down, 3 reps, about 3 minutes (results/quick.md)
    python -m benchmarks --db postgresql --systems raw,vinyl --workloads get,count
    python -m benchmarks --report-only    # rebuild results/latest.md from the last JSON results
    python -m benchmarks --loop uvloop    # the same on uvloop: results/<db>-uvloop.json, latest-uvloop.md

Each database is measured in its own process (``benchmarks.runner``); the
JSON it writes lands in ``results/<db>.json`` and the reports are built from
those files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.config import DATABASES
from benchmarks.report import console, markdown
from benchmarks.systems import SYSTEMS
from benchmarks.workloads import ALL_KEYS

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller data and fewer repetitions")
    parser.add_argument("--db", default=",".join(DATABASES), help="comma-separated: postgresql,mysql")
    parser.add_argument("--systems", default=",".join(k for k, _, _ in SYSTEMS), help="comma-separated system keys")
    parser.add_argument("--workloads", default=",".join(ALL_KEYS), help="comma-separated workload keys")
    parser.add_argument("--reload", action="store_true", help="drop and reload the data set first")
    parser.add_argument("--out", help="Markdown report path (default: results/latest.md, results/quick.md with --quick)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from results/<db>.json, measuring nothing")
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"),
                        help="event loop of the async systems (uvloop results get their own files)")
    args = parser.parse_args(argv)
    suffix = "" if args.loop == "asyncio" else f"-{args.loop}"
    if args.loop != "asyncio":
        # Cold start is measured once, on asyncio's loop: on another it would
        # time importing the loop too.
        args.workloads = ",".join(w for w in args.workloads.split(",") if w != "cold")

    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    root = HERE.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    results = []
    t0 = time.perf_counter()
    for db in [d for d in args.db.split(",") if d]:
        out = results_dir / f"{db}{suffix}.json"
        if args.report_only:
            results.append(json.loads(out.read_text()))
            continue
        cmd = [sys.executable, "-m", "benchmarks.runner", "--db", db, "--out", str(out),
               "--systems", args.systems, "--workloads", args.workloads, "--loop", args.loop]
        cmd += ["--quick"] * args.quick + ["--reload"] * args.reload
        proc = subprocess.run(cmd, cwd=root, env=env)
        if proc.returncode != 0:
            print(f"benchmarks on {db} failed (exit {proc.returncode})", file=sys.stderr)
            return proc.returncode
        result = json.loads(out.read_text())
        results.append(result)
        print()
        print(console(result))
        print(flush=True)
    out_md = Path(args.out or results_dir / f"{'quick' if args.quick else 'latest'}{suffix}.md")
    out_md.write_text(markdown(results))
    print(f"wrote {out_md} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
