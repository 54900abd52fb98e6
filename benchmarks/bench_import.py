"""1. Import cost: the operators module against airflow.sdk alone, in fresh interpreters (medians)."""

from __future__ import annotations

from common import median, ratio_line, run_fresh

RUNS = 9
PROBE = """
import json, sys, time
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
print(json.dumps({{"s": elapsed, "modules": sorted(sys.modules)}}))
"""


def measure() -> list[str]:
    sdk, ours = [], []
    sdk_modules: set[str] = set()
    our_modules: set[str] = set()
    for _ in range(RUNS):
        a = run_fresh(PROBE.format(module="airflow.sdk"))
        b = run_fresh(PROBE.format(module="airflow_checkpoint_sync.operators.checkpoint"))
        sdk.append(float(a["s"]))  # type: ignore[arg-type]
        ours.append(float(b["s"]))  # type: ignore[arg-type]
        sdk_modules = set(a["modules"])  # type: ignore[arg-type]
        our_modules = set(b["modules"])  # type: ignore[arg-type]
    added = sorted(our_modules - sdk_modules)
    cloud = [m for m in added if m.split(".")[0] in ("boto3", "botocore", "aiobotocore", "google", "azure")]
    return [
        ratio_line(
            "import airflow_checkpoint_sync.operators.checkpoint vs import airflow.sdk", median(ours), median(sdk), 1.10
        ),
        f"  modules the provider adds ({len(added)}): {', '.join(added)}",
        f"  cloud SDK modules among them: {cloud or 'none'}",
    ]


if __name__ == "__main__":
    print("\n".join(measure()))
