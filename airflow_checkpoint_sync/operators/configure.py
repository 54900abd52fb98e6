"""ConfigureCheckpointSyncOperator: the setup step, a sync configuration written into a stopped pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync.operators.base import FelderaPipelineOperator
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.status import PipelineGroup, pipeline_group
from airflow_checkpoint_sync.task_support import build_sync_config, feldera_errors, feldera_template_fields

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class ConfigureCheckpointSyncOperator(FelderaPipelineOperator):
    """Write a checkpoint-sync configuration into a stopped pipeline, changing nothing else.

    The setup step of every disaster-recovery DAG. Feldera's PATCH replaces the runtime config whole, so the task
    reads it, replaces only ``storage.backend.config.sync`` and writes it back; every other field, including ones
    newer than this provider, is kept. Running it again with the same settings sends no update.

    .. seealso::
        :ref:`howto/operator:ConfigureCheckpointSyncOperator`

    :param pipeline_name: the Feldera pipeline; it must be stopped. (templated)
    :param bucket: ``bucket-name[/prefix]`` for this pipeline's checkpoints. (templated)
    :param bucket_conn_id: an ``aws`` or ``google_cloud_platform`` connection with the bucket's credentials; None
        lets Feldera use its own environment credentials, keeping keys out of the pipeline's config. (templated)
    :param read_bucket: a read-only fallback source, e.g. another pipeline's bucket. (templated)
    :param push_interval: seconds between automatic pushes (off when None).
    :param retention_min_count: keep at least this many remote checkpoints (Feldera's default 10).
    :param retention_min_age: keep remote checkpoints younger than this many days (Feldera's default 30).
    :param pull_interval: seconds between pulls when the pipeline runs as a standby (Feldera's default 10).
    :param sync_options: any other Feldera sync field (``endpoint``, ``region``, ``provider``, ``transfers``,
        ``checkers``, ``multi_thread_cutoff``, ``flags``, ...).
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    :return: ``{"pipeline_name", "bucket", "changed"}``.
    """

    template_fields: Sequence[str] = feldera_template_fields("bucket", "bucket_conn_id", "read_bucket")

    def __init__(
        self,
        *,
        pipeline_name: str,
        bucket: str,
        bucket_conn_id: str | None = None,
        read_bucket: str | None = None,
        feldera_conn_id: str = "feldera_default",
        push_interval: int | None = None,
        retention_min_count: int | None = None,
        retention_min_age: int | None = None,
        pull_interval: int | None = None,
        sync_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline_name = pipeline_name
        self.feldera_conn_id = feldera_conn_id
        self.bucket = bucket
        self.bucket_conn_id = bucket_conn_id
        self.read_bucket = read_bucket
        self.push_interval = push_interval
        self.retention_min_count = retention_min_count
        self.retention_min_age = retention_min_age
        self.pull_interval = pull_interval
        self.sync_options = sync_options

    def execute(self, context: Context) -> dict[str, Any]:
        with feldera_errors("checking the parameters", self.pipeline_name):
            params.pipeline_name(self.pipeline_name)
        sync = build_sync_config(
            bucket=self.bucket,
            bucket_conn_id=self.bucket_conn_id or None,
            options=self.sync_options,
            read_bucket=self.read_bucket or None,
            push_interval=self.push_interval,
            retention_min_count=self.retention_min_count,
            retention_min_age=self.retention_min_age,
            pull_interval=self.pull_interval,
        )
        pipeline = self.read_pipeline()
        if pipeline_group(pipeline) not in (PipelineGroup.STOPPED, PipelineGroup.FAILED):
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' is {pipeline.get('deployment_status')}: Feldera changes a runtime "
                "config only while the pipeline is stopped. Stop it first."
            )
        self.check_bucket_owner(pipeline, sync, self.bucket_conn_id or None)
        changed = self.write_sync_config(pipeline, sync)
        return {"pipeline_name": self.pipeline_name, "bucket": sync.bucket, "changed": changed}
