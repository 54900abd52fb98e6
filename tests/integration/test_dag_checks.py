"""A failover wired to an approval that cannot approve it is a DAG import error when the file is parsed.

Each DAG file is written to a folder of its own and parsed by Airflow's DagBag, as the DAG processor parses it: the
distribution's ``airflow.policy`` entry point (``dag_checks``) is loaded by Airflow itself.
"""

from __future__ import annotations

import textwrap
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

HEADER = """\
import datetime as dt
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import DAG
from airflow_checkpoint_sync.operators.standby import ActivateStandbyOperator

with DAG("failover", schedule=None, start_date=dt.datetime(2026, 1, 1)):
"""


def parse(folder: Path, body: str) -> dict[str, str]:
    """Parse a DAG file made of HEADER and ``body`` (the DAG's tasks); its import errors, by file."""
    from airflow.dag_processing.dagbag import DagBag

    folder.mkdir()
    (folder / "failover.py").write_text(HEADER + textwrap.indent(textwrap.dedent(body), "    "))
    bag = DagBag(dag_folder=str(folder))
    return {path: str(error) for path, error in bag.import_errors.items()}


def test_the_distribution_registers_the_checks_under_airflow_s_policy_entry_point() -> None:
    assert "airflow_checkpoint_sync.dag_checks" in [ep.value for ep in entry_points(group="airflow.policy")]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            """\
            ApprovalOperator(task_id="approve", subject="Fail over?")
            ActivateStandbyOperator(task_id="activate", pipeline_name="staging", approval_task_id="aprove")
            """,
            "ActivateStandbyOperator 'activate' of DAG 'failover': approval_task_id='aprove' names no task of this DAG",
        ),
        (
            """\
            EmptyOperator(task_id="check") >> ActivateStandbyOperator(
                task_id="activate", pipeline_name="staging", approval_task_id="check"
            )
            """,
            "approval_task_id='check' names a EmptyOperator, not an approval: name an ApprovalOperator",
        ),
        (
            """\
            HITLOperator(task_id="ask", subject="Which?", options=["Yes", "No"]) >> ActivateStandbyOperator(
                task_id="activate", pipeline_name="staging", approval_task_id="ask"
            )
            """,
            "approval_task_id='ask' names a HITLOperator, not an approval",
        ),
        (
            """\
            ApprovalOperator(task_id="approve", subject="Fail over?")
            ActivateStandbyOperator(task_id="activate", pipeline_name="staging", approval_task_id="approve")
            """,
            "approval_task_id='approve' is not upstream of 'activate': set approve >> activate",
        ),
        (
            """\
            approve = ApprovalOperator(task_id="approve", subject="Fail over?")
            ActivateStandbyOperator(task_id="activate", pipeline_name="staging", approval_task_id="approve") >> approve
            """,
            "is not upstream of 'activate'",
        ),
        (
            """\
            ApprovalOperator(task_id="approve", subject="Fail over?")
            ActivateStandbyOperator.partial(task_id="activate", approval_task_id="approve").expand(
                pipeline_name=["a", "b"]
            )
            """,
            "ActivateStandbyOperator 'activate' of DAG 'failover': approval_task_id='approve' is not upstream",
        ),
    ],
    ids=["no such task", "not an approval", "no Approve option", "not wired", "downstream", "mapped, not wired"],
)
def test_an_approval_that_cannot_approve_the_failover_is_an_import_error(tmp_path: Path, body: str, words: str) -> None:
    (error,) = parse(tmp_path / "dags", body).values()
    assert words in error


@pytest.mark.parametrize(
    "body",
    [
        """\
        ApprovalOperator(task_id="approve", subject="Fail over?") >> EmptyOperator(task_id="between") >> (
            ActivateStandbyOperator(task_id="activate", pipeline_name="staging", approval_task_id="approve")
        )
        """,
        """\
        HITLOperator(task_id="ask", subject="Fail over?", options=["Approve", "Wait"]) >> ActivateStandbyOperator(
            task_id="activate", pipeline_name="staging", approval_task_id="ask"
        )
        """,
        """\
        ApprovalOperator.partial(task_id="approve").expand(subject=["a?", "b?"]) >> (
            ActivateStandbyOperator.partial(task_id="activate", approval_task_id="approve").expand(
                pipeline_name=["a", "b"]
            )
        )
        """,
        # Rendered when the task runs, and checked then.
        """\
        ActivateStandbyOperator(task_id="activate", pipeline_name="staging", approval_task_id="{{ params.x }}")
        """,
        """\
        ActivateStandbyOperator(task_id="activate", pipeline_name="staging")
        """,
    ],
    ids=["approval upstream", "HITL with Approve", "both mapped", "templated", "no approval"],
)
def test_a_failover_wired_to_its_approval_parses(tmp_path: Path, body: str) -> None:
    assert parse(tmp_path / "dags", body) == {}
