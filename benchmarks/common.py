"""Shared helpers for the benchmarks: fresh-interpreter timings, medians, the machine and versions."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAFE_ENV = {
    **os.environ,
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_GCE_CHECK": "True",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
}


def deployed_env(cache_dir: str) -> dict[str, str]:
    """SAFE_ENV with bytecode caches on, kept in ``cache_dir``: how an installed Airflow and provider import.

    This machine's shell sets PYTHONDONTWRITEBYTECODE, so without this every module, Airflow's included, would
    compile from source on each import; no deployment runs that way. A run's own cache directory keeps the source
    tree clean and starts every measurement from the same empty cache (a warm-up run fills it).
    """
    env = {k: v for k, v in SAFE_ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache_dir
    return env


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"apache-airflow {version('apache-airflow')}, airflow-checkpoint-sync {version('airflow-checkpoint-sync')}, "
        f"httpx {version('httpx')}, aiohttp {version('aiohttp')}"
    )


def run_fresh(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env or SAFE_ENV,
        timeout=300,
        check=True,
        cwd=ROOT,
    )
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def verdict(met: bool) -> str:
    """How a figure stands against its goal, as every benchmark prints it."""
    return "goal met" if met else "GOAL MISSED"


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio_line(name: str, ours: float, reference: float, goal: float, unit: str = "s") -> str:
    ratio = ours / reference if reference else float("inf")
    verdict = "meets" if ratio <= goal else "MISSES"
    return f"{name}: {ours:.4f}{unit} vs {reference:.4f}{unit} -> ratio {ratio:.3f} ({verdict} the goal <= {goal})"


def report(title: str, filename: str, size_mb: int, lines: list[str]) -> None:
    """Print a replication benchmark's ``lines``; with ``--write``, also save them to ``benchmarks/<filename>``."""
    print("\n".join(lines))
    if "--write" in sys.argv:
        out = Path(__file__).parent / filename
        body = "\n".join(lines)
        out.write_text(f"# {title}\n\n`make bench-replicate`, {size_mb} MB:\n\n```\n{body}\n```\n")
        print(f"written to {out}")
