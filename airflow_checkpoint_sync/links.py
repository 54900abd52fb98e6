"""Extra link from a task to its pipeline in the Feldera web console."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: XCom key the operators push the console URL under, before any wait.
PIPELINE_URL_KEY = "feldera_pipeline_url"


class FelderaPipelineLink(BaseOperatorLink):
    """ "Feldera pipeline": the pipeline's page in the Feldera web console."""

    name = "Feldera pipeline"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # Resolved here, on the API server's side of the link, not when a DAG file is parsed.
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=PIPELINE_URL_KEY)
        return str(url) if url else ""
