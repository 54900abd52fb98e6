"""Answering Airflow's human-in-the-loop requests (``ApprovalOperator`` and the like) in tests and demos.

``dag.test()`` and ``airflow dags test`` leave a task that waits for input in ``awaiting_input`` until someone
answers from outside: in a real deployment, a person in the Required Actions UI. :func:`answering` plays that person
through the Core API's own handler (``PATCH .../hitlDetails``), which validates the answer and resumes the task, so
an approval-guarded DAG (the failover example) runs to its end in a test::

    from airflow_checkpoint_sync.testing.approvals import answering

    with answering("feldera_failover", "Approve") as requests:
        dag.test(run_conf={...})
    print(requests[0]["body"])  # what the approver was shown

``python -m airflow_checkpoint_sync.testing approve <dag_id>`` does the same from another process sharing the
metadata database (for ``airflow dags test``).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


def answer_waiting(dag_id: str, option: str, params_input: dict[str, Any], user: str) -> list[dict[str, Any]]:
    """Answer each request of ``dag_id`` that waits for input now; returns what each showed (``subject``,
    ``body``, ``params``, ``task_id``, ``run_id``)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    answered = []
    with create_session() as session:
        waiting = session.execute(
            select(TaskInstance, HITLDetail)
            .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
        ).all()
        for ti, detail in waiting:
            if detail.response_received:
                continue
            answered.append(
                {
                    "task_id": ti.task_id,
                    "run_id": ti.run_id,
                    "subject": detail.subject,
                    "body": detail.body,
                    "params": dict(detail.params or {}),
                }
            )
            update_hitl_detail(
                dag_id=ti.dag_id,
                dag_run_id=ti.run_id,
                task_id=ti.task_id,
                update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option], params_input=params_input),
                user=SimpleAuthManagerUser(username=user, role="admin"),
                session=session,
                map_index=ti.map_index,
            )
    return answered


@contextmanager
def answering(
    dag_id: str, option: str, params_input: dict[str, Any] | None = None, *, user: str = "oncall", every: float = 0.3
) -> Iterator[list[dict[str, Any]]]:
    """Answer ``dag_id``'s human-in-the-loop requests with ``option`` (and the form's ``params_input``) as ``user``
    while the block runs, looking every ``every`` seconds. Yields the list of requests answered, as they showed.

    :param dag_id: the DAG whose requests to answer.
    :param option: the chosen option, e.g. ``"Approve"`` or ``"Reject"`` for an ``ApprovalOperator``.
    :param params_input: the form's fields, e.g. ``{"allow_stale_checkpoint": True}``.
    :param user: the user name Airflow records as the respondent.
    :param every: seconds between looks.
    """
    answered: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                answered.extend(answer_waiting(dag_id, option, params_input or {}, user))
            except Exception as exc:  # raised at the block's end: the run itself would wait forever
                errors.append(exc)
                return
            time.sleep(every)

    thread = threading.Thread(target=loop, name=f"answer-{dag_id}", daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(timeout=10)
    if errors:
        raise errors[0]


def answer_until(dag_id: str, option: str, params_input: dict[str, Any], user: str, count: int, timeout: float) -> int:
    """Answer ``count`` requests of ``dag_id`` (or give up after ``timeout`` seconds); returns how many were."""
    done = 0
    deadline = time.monotonic() + timeout
    while done < count and time.monotonic() < deadline:
        done += len(answer_waiting(dag_id, option, params_input, user))
        time.sleep(0.3)
    return done
