"""ConfigureCheckpointSyncOperator, and the steps every operator that writes a sync configuration shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync.operators.base import FelderaPipelineOperator
from airflow_checkpoint_sync.rules.status import PipelineGroup, pipeline_group
from airflow_checkpoint_sync.task_support import build_sync_config, check_pipeline_name, feldera_errors

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

    from airflow_checkpoint_sync.rules.sync_config import SyncConfig


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

    template_fields: Sequence[str] = ("pipeline_name", "feldera_conn_id", "bucket", "bucket_conn_id", "read_bucket")

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
        check_pipeline_name(self.pipeline_name)
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
        check_bucket_owner(self, pipeline, sync, self.bucket_conn_id or None)
        changed = write_sync_config(self, pipeline, sync)
        return {"pipeline_name": self.pipeline_name, "bucket": sync.bucket, "changed": changed}


def check_bucket_owner(
    task: FelderaPipelineOperator, pipeline: Mapping[str, Any], sync: SyncConfig, bucket_conn_id: str | None
) -> None:
    """Refuse a ``bucket`` that another pipeline owns, before anything is written.

    Feldera locks a location to the first pipeline that pushes there (``owner.json``, by the pipeline's system name
    ``pipeline-<id>``) and refuses the others, but only at their first push, long after the configuration was
    written and the pipeline started. Read through ``bucket_conn_id`` (an ``aws`` connection); without one, or
    when the lock cannot be read, Feldera's own check at the first push remains (logged).
    """
    import json

    from airflow_checkpoint_sync.rules.replication import OWNER

    if not bucket_conn_id:
        task.log.info("Who owns %s is checked by Feldera at its first push (no bucket_conn_id to read it)", sync.bucket)
        return
    try:
        body = read_at_location(bucket_conn_id, sync.bucket, OWNER)
    except Exception as exc:  # the check is an early warning; Feldera's own lock still holds
        task.log.warning(
            "Could not read %s/%s to see who owns it (%s); Feldera checks it at its first push", sync.bucket, OWNER, exc
        )
        return
    if body is None:
        return  # nobody owns it yet: the first push claims it
    try:
        owner = json.loads(body).get("pipeline_name")
    except (ValueError, AttributeError):
        owner = None
    me = f"pipeline-{pipeline.get('id')}"
    # Compared on the id's hex digits, so that a different spelling of the same system name is never refused.
    if owner and pipeline.get("id") and _hex(str(pipeline["id"])) not in _hex(str(owner)):
        raise AirflowFailException(
            f"bucket={sync.bucket!r} belongs to another pipeline ({owner}, says its {OWNER}); pipeline "
            f"'{task.pipeline_name}' is {me}, and Feldera refuses to push there. Give this pipeline its own location; "
            "to start from the other's checkpoints, pass that location as read_bucket."
        )


def read_at_location(bucket_conn_id: str, location: str, name: str) -> bytes | None:
    """Object ``name`` under a sync ``location``, read through ``bucket_conn_id``; None when there is none.

    Only ``aws`` connections are read: Feldera reaches every bucket through the S3 protocol, and a
    ``google_cloud_platform`` connection here holds HMAC keys for that protocol, not what Google's SDK needs.
    """
    from airflow_checkpoint_sync.object_stores import read_object, store_for

    return read_object(store_for(bucket_conn_id, location, "bucket_conn_id", ("aws",)), name)


def _hex(text: str) -> str:
    return "".join(c for c in text.lower() if c in "0123456789abcdef")


def write_sync_config(task: FelderaPipelineOperator, pipeline: Mapping[str, Any], sync: SyncConfig) -> bool:
    """PATCH the pipeline's runtime config with ``sync`` merged in, unless it already says exactly that."""
    from airflow_checkpoint_sync.rules.sync_config import SyncConfigError, merge_sync_config

    try:
        merged = merge_sync_config(pipeline.get("runtime_config"), sync)
    except SyncConfigError as exc:
        raise AirflowFailException(f"pipeline '{task.pipeline_name}': {exc}") from exc
    for warning in merged.warnings:
        task.log.warning("%s", warning)
    if not merged.changed:
        task.log.info("Pipeline '%s' already has this sync configuration; nothing to change", task.pipeline_name)
        return False
    with feldera_errors("updating the runtime config", task.pipeline_name):
        task.hook.patch_runtime_config(task.pipeline_name, merged.runtime_config)
    task.log.info("Pipeline '%s' now syncs with %s", task.pipeline_name, sync.redacted())
    return True
