"""The seeded fault matrix over the scheduled-DR, migration and failover flows (see harness.py and plan.py).

``RELIABILITY_RUNS`` runs are made (default: one per fault kind, the CI slice), seeds counting up from
``RELIABILITY_SEED``; ``make reliability`` runs 220. Each run must end as a success or a correct failure.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from conftest import OUTCOMES
from harness import run
from plan import KINDS, matrix

if TYPE_CHECKING:
    from feldera_setup import Feldera
    from plan import Plan

PLANS = matrix(int(os.environ.get("RELIABILITY_RUNS", len(KINDS))), int(os.environ.get("RELIABILITY_SEED", 0)))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("plan", PLANS, ids=[p.label for p in PLANS])
def test_flow_survives_or_fails_correctly(lab: Feldera, plan: Plan, capfd: pytest.CaptureFixture[str]) -> None:
    outcome = run(lab, plan, lambda: capfd.readouterr().out)
    OUTCOMES.append(outcome)
    assert outcome.verdict in ("success", "correct_failure"), outcome.problems
