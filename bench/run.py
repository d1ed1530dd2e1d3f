"""Run the benchmarks one after another at a size: `make bench` (small: under 10 minutes
on a 2-core machine) and `make bench-large` (1 million members, 10 million lots).

    .venv/bin/python bench/run.py [--size small|large] [--server-args "..."] [NAME ...]

NAME is a benchmark of PLAN (default: all, in PLAN's order); each runs as its own
process (`bench/<name>.py` with the size's arguments) and writes its own
bench/results/<name>.json; this writes bench/results/run.json with what ran, how long it
took and whether it succeeded. A benchmark that fails does not stop the others; the exit
status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLAN: dict[str, dict[str, list[str]]] = {
    # name: {size: arguments}; a new benchmark is one line here.
    "earn": {
        "small": ["--duration", "12", "--warmup", "3"],
        "large": ["--duration", "30", "--warmup", "5", "--members", "1000000"],
    },
    "reads": {
        "small": ["--duration", "15", "--warmup", "3"],
        "large": ["--duration", "30", "--warmup", "5", "--members", "1000000"],
    },
    "jobs": {
        "small": ["--lots", "500000", "--members", "125000", "--tier-members", "50000"],
        "large": ["--lots", "10000000", "--members", "1000000", "--tier-members", "1000000"],
    },
    "imports": {
        "small": ["--members", "3000", "--orders", "20000", "--store", "both"],
        "large": ["--members", "1000000", "--orders", "10000000", "--store", "postgres"],
    },
}
TAKES_SERVER_ARGS = {"earn", "reads"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=["small", "large"], default="small")
    parser.add_argument("--server-args", help="passed to the benchmarks that start a server")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(PLAN)}")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in PLAN]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(PLAN)})")
    ran = []
    started = time.perf_counter()
    for name in args.names or list(PLAN):
        command = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *PLAN[name][args.size]]
        if args.server_args is not None and name in TAKES_SERVER_ARGS:
            command += ["--server-args", args.server_args]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        began = time.perf_counter()
        code = subprocess.run(command, cwd=ROOT, check=False, env=os.environ).returncode
        took = round(time.perf_counter() - began, 1)
        print(f"== {name}: {'done' if code == 0 else f'FAILED (exit {code})'} in {took} s\n")
        ran.append({"name": name, "arguments": command[2:], "seconds": took, "exit": code})
    total = round(time.perf_counter() - started, 1)
    summary = {
        "size": args.size,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": total,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "ran": ran,
    }
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    for item in ran:
        print(
            f"{item['name']:<8} {item['seconds']:>8} s  {'ok' if item['exit'] == 0 else 'FAILED'}"
        )
    print(f"{'total':<8} {total:>8} s")
    sys.exit(1 if any(item["exit"] for item in ran) else 0)


if __name__ == "__main__":
    main()
