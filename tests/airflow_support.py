"""Running the test DAGs with dag.test() against a migrated sqlite Airflow (set up in tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DAGS = Path(__file__).parent / "dags"


def feldera_connection(url: str, api_key: str | None = None, **extra: Any) -> str:
    """An AIRFLOW_CONN_* value (JSON form) for a `feldera` connection."""
    return json.dumps({"conn_type": "feldera", "host": url, "password": api_key, "extra": extra})


def aws_connection(s3: Any, **fields: Any) -> str:
    """An AIRFLOW_CONN_* value for an ``aws`` connection to the moto server ``s3`` (its keys unless overridden)."""
    connection = {
        "conn_type": "aws",
        "login": s3.access_key,
        "password": s3.secret_key,
        "extra": {"endpoint_url": s3.url, "region_name": "us-east-1"},
        **fields,
    }
    return json.dumps({k: v for k, v in connection.items() if v is not None})


def parsed(dag_id: str) -> Any:
    """One DAG from tests/dags, parsed (which takes seconds: a test that times its run parses first)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(dag_id: str, **conf: Any) -> Any:
    """Run one DAG from tests/dags with dag.test(); returns the DagRun."""
    return parsed(dag_id).test(run_conf=conf or None)


def run_dag_tasks(dag_id: str, task_ids: list[str], **conf: Any) -> Any:
    """Run only ``task_ids`` of a DAG from tests/dags with dag.test() (no upstream task runs); returns the DagRun."""
    subset = parsed(dag_id).partial_subset(task_ids=task_ids, include_upstream=False)
    return subset.test(run_conf=conf or None)


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def xcoms(dag_run: Any) -> dict[tuple[str, str], Any]:
    """Every XCom of the run, by (task_id, key)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
        ).all()
        return {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}


def asset_event_extras(dag_run: Any) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == dag_run.run_id)).all()
        return [dict(event.extra or {}) for event in events]


def dag_bundles() -> list[dict[str, Any]]:
    """Each folder of tests/dags as a DAG bundle of its own.

    ``dag.test()`` re-parses and re-syncs the whole bundle of the DAG it runs (Airflow 3.3, apache/airflow#64884):
    with every test DAG in one bundle, each run serialized all 160 of them, a second per run.
    """
    return [
        {
            "name": folder.name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder)},
        }
        for folder in sorted(DAGS.iterdir())
        if folder.is_dir() and not folder.name.startswith((".", "_"))
    ]


def airflow_env(home: str) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(dag_bundles()),
    }
