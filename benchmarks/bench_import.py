"""1. Import cost: the operators module against airflow.sdk alone, in fresh interpreters (medians).

Both with bytecode caches, as installed (see ``common.deployed_env``).
"""

from __future__ import annotations

import tempfile

from common import deployed_env, median, ratio_line, run_fresh

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
    with tempfile.TemporaryDirectory() as cache:
        env = deployed_env(cache)
        run_fresh(PROBE.format(module="airflow_checkpoint_sync.operators.checkpoint"), env=env)  # fills the cache
        runs = [
            (
                run_fresh(PROBE.format(module="airflow.sdk"), env=env),
                run_fresh(PROBE.format(module="airflow_checkpoint_sync.operators.checkpoint"), env=env),
            )
            for _ in range(RUNS)
        ]
    for a, b in runs:
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
