"""Checks of how the provider's tasks are wired into their DAG, made when the DAG is parsed.

A parameter that names another task (``ActivateStandbyOperator(approval_task_id=...)``) cannot be checked when the
operator is built: the DAG's other tasks and its dependencies are not there yet. Airflow hands every task of a
parsed DAG, dependencies in place, to the cluster-policy hook ``task_policy``; the distribution registers this
module under the ``airflow.policy`` entry point, so a wrong wiring is a DAG import error shown in the UI when the
file is parsed, not a refusal at 3 a.m. when the failover runs. It touches only the provider's own tasks, changes
nothing, and a value that is templated (``{{ ... }}``) is left to the task's own check when it runs.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl

#: The parameter of a failover task that names its approval.
APPROVAL_PARAMETER = "approval_task_id"


def approval_wiring_problem(task: Any) -> str | None:
    """What is wrong with how ``task`` (any task of a parsed DAG) names its approval, or None.

    The approval must be a task of the same DAG that offers an ``Approve`` option (Airflow's ``ApprovalOperator``,
    or any human-in-the-loop task with that option) and lies upstream of ``task``, so that it has answered by the
    time the activation reads its answer.
    """
    task_id = _approval_task_id(task)
    if not isinstance(task_id, str) or not task_id or "{{" in task_id:
        return None  # not set, or rendered at run time: the task checks it then
    dag = getattr(task, "dag", None)
    if dag is None:
        return None
    where = f"{type_name(task)} '{task.task_id}' of DAG '{dag.dag_id}': {APPROVAL_PARAMETER}={task_id!r}"
    if not dag.has_task(task_id):
        return f"{where} names no task of this DAG; name the ApprovalOperator that approves the failover"
    approval = dag.get_task(task_id)
    if not offers_approve(approval):
        return (
            f"{where} names a {type_name(approval)}, not an approval: name an ApprovalOperator (a human-in-the-loop "
            "task with an 'Approve' option)"
        )
    if task_id not in {upstream.task_id for upstream in task.get_flat_relatives(upstream=True)}:
        return f"{where} is not upstream of '{task.task_id}': set {task_id} >> {task.task_id}, so it answers first"
    return None


def offers_approve(task: Any) -> bool:
    """Whether ``task`` can answer "Approve": an ``ApprovalOperator`` (mapped too), or a human-in-the-loop task
    given that option."""
    built_from = getattr(task, "operator_class", None) or type(task)
    if isinstance(built_from, type) and any(c.__name__ == "ApprovalOperator" for c in built_from.__mro__):
        return True
    options = getattr(task, "options", None) or (getattr(task, "partial_kwargs", None) or {}).get("options") or ()
    return "Approve" in options


def type_name(task: Any) -> str:
    """The class a task was built from, a mapped one too."""
    operator_class = getattr(task, "operator_class", None)
    return str(getattr(operator_class, "__name__", None) or type(task).__name__)


def _approval_task_id(task: Any) -> object:
    if type(task).__module__.startswith("airflow_checkpoint_sync."):
        return getattr(task, APPROVAL_PARAMETER, None)
    # A mapped task keeps its operator's class and the arguments given to partial().
    operator_class = getattr(task, "operator_class", None)
    if getattr(operator_class, "__module__", "").startswith("airflow_checkpoint_sync."):
        return (getattr(task, "partial_kwargs", None) or {}).get(APPROVAL_PARAMETER)
    return None


@hookimpl
def task_policy(task: Any) -> None:
    """Refuse a DAG whose failover names an approval that cannot approve it (Airflow's cluster-policy hook)."""
    problem = approval_wiring_problem(task)
    if problem:
        from airflow.exceptions import AirflowClusterPolicyViolation

        raise AirflowClusterPolicyViolation(problem)
