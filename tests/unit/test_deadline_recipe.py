"""The documented Deadline Alert recipe (docs/recipes/deadline_alerts.py): its DAGs parse, carry the RPO and RTO
deadlines the docs describe, and survive Airflow's serialization, which is what the scheduler evaluates."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "recipes" / "deadline_alerts.py"


def test_the_recipes_deadlines_are_the_documented_ones_and_serialize() -> None:
    from airflow.sdk import DAG, DeadlineReference
    from airflow.serialization.serialized_objects import DagSerialization

    spec = importlib.util.spec_from_file_location("deadline_alerts_recipe", RECIPE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = {dag.dag_id: dag for dag in vars(module).values() if isinstance(dag, DAG)}
    expected = {
        "feldera_scheduled_dr_with_rpo_deadline": (dt.timedelta(minutes=20), "RPO"),
        "feldera_failover_with_rto_deadline": (dt.timedelta(minutes=15), "RTO"),
    }
    assert set(dags) == set(expected)
    for dag_id, (interval, objective) in expected.items():
        [alert] = dags[dag_id].deadline if isinstance(dags[dag_id].deadline, list) else [dags[dag_id].deadline]
        assert alert.interval == interval
        assert isinstance(alert.reference, type(DeadlineReference.DAGRUN_QUEUED_AT))
        assert alert.callback.path == module.CALLBACK and alert.callback.kwargs == {"objective": objective}
        serialized = DagSerialization.to_dict(dags[dag_id])
        assert "deadline" in str(serialized["dag"]) and objective in str(serialized["dag"])
