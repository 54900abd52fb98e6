"""``make bench``: every benchmark, with the machine and versions; ``--write`` also saves benchmarks/results.md."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bench_import
import bench_overhead
import bench_parse
import bench_triggers
from common import machine

if TYPE_CHECKING:
    from collections.abc import Iterator

SECTIONS = [
    ("1. Import cost", bench_import.measure),
    ("2. DAG parse", bench_parse.measure),
    ("3. Waiting at scale", bench_triggers.measure),
    ("3b. Waiting at scale, gc.freeze() after start-up", lambda: bench_triggers.measure(freeze_gc=True)),
    ("4. Overhead against the official client", bench_overhead.measure),
]


#: Where what the benchmarks' libraries print (Airflow's task log lines, say) goes, so the output is figures only.
LOG = Path(__file__).parent / "bench.log"


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (the file descriptors: logging handlers hold their own streams) to
    ``path`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main() -> int:
    started = time.monotonic()
    lines = [f"Machine: {machine()}", ""]
    print(lines[0], flush=True)
    LOG.write_text("")
    for title, run in SECTIONS:
        print(f"\n{title}", flush=True)
        with output_to(LOG):
            figures = run()
        print("\n".join(figures), flush=True)
        lines += [f"## {title}", "", "```", *figures, "```", ""]
    total = f"All benchmarks took {time.monotonic() - started:.0f}s."
    print(f"\n{total} What their libraries logged is in {LOG}.")
    if "--write" in sys.argv:
        out = Path(__file__).parent / "results.md"
        out.write_text("# Benchmark results\n\n" + "\n".join(lines) + total + "\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
