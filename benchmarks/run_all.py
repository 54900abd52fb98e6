"""``make bench``: every benchmark, with the machine and versions; ``--write`` also saves benchmarks/results.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import bench_import
import bench_overhead
import bench_parse
import bench_triggers
from common import machine

SECTIONS = [
    ("1. Import cost", bench_import.measure),
    ("2. DAG parse", bench_parse.measure),
    ("3. Waiting at scale", bench_triggers.measure),
    ("3b. Waiting at scale, gc.freeze() after start-up", lambda: bench_triggers.measure(freeze_gc=True)),
    ("4. Overhead against the official client", bench_overhead.measure),
]


def main() -> int:
    started = time.monotonic()
    lines = [f"Machine: {machine()}", ""]
    print(lines[0], flush=True)
    for title, run in SECTIONS:
        print(f"\n{title}", flush=True)
        figures = run()
        print("\n".join(figures), flush=True)
        lines += [f"## {title}", "", "```", *figures, "```", ""]
    total = f"All benchmarks took {time.monotonic() - started:.0f}s."
    print(f"\n{total}")
    if "--write" in sys.argv:
        out = Path(__file__).parent / "results.md"
        out.write_text("# Benchmark results\n\n" + "\n".join(lines) + total + "\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
