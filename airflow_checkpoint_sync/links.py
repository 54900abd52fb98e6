"""Extra link from a task to its pipeline in the Feldera web console."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class FelderaPipelineLink(BaseOperatorLink):
    """ "Feldera pipeline": the pipeline's page in the Feldera web console.

    Airflow asks for the link on the worker at the end of every run of the task (the run that defers included)
    and stores it as the XCom ``_link_FelderaPipelineLink``, which is all the web UI reads. The URL comes from the
    task's connection (``console_url``, or the API's URL) and its rendered ``pipeline_name``: nothing else is
    stored for it.
    """

    name = "Feldera pipeline"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            url: str = operator.hook.pipeline_url(operator.pipeline_name)  # type: ignore[attr-defined]
        except Exception:  # a connection that does not resolve has no console to link to; the task says why
            return ""
        return url
