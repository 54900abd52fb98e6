"""RestoreCheckpointOperator: start a pipeline from a synced checkpoint (a migration, a recovery, a standby)."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync.exceptions import SyncConfigError
from airflow_checkpoint_sync.operators.base import FelderaPipelineOperator
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.bucket_layout import CATALOG, CatalogLook, catalog_uuids, restore_source
from airflow_checkpoint_sync.rules.status import INITIAL_STATUS, PipelineGroup, pipeline_group
from airflow_checkpoint_sync.rules.sync_config import merge_sync_config
from airflow_checkpoint_sync.task_support import (
    build_sync_config,
    feldera_errors,
    feldera_template_fields,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_checkpoint_sync.rules.sync_config import SyncConfig

#: task_state_store key: the start a try requested, so that a retry after a lost worker follows it.
STARTED_KEY = "feldera_restore_started"


class RestoreCheckpointOperator(FelderaPipelineOperator):
    """Start a pipeline from a synced checkpoint: a migration, a recovery, or a hot standby.

    Validates everything, then reads the pipeline; a pipeline that is not stopped is refused unless
    ``stop_if_running``. It writes the sync configuration (only ``storage.backend.config.sync`` changes), clears the
    pipeline's storage when asked (so the bucket, not a stale local checkpoint, is used), starts the pipeline with
    ``initial`` and waits for that status.

    .. seealso::
        :ref:`howto/operator:RestoreCheckpointOperator`

    :param pipeline_name: the pipeline to start. (templated)
    :param checkpoint: ``"latest"`` or a checkpoint uuid, typically a sync task's XCom. (templated)
    :param bucket: this pipeline's own ``bucket-name[/prefix]``. (templated)
    :param read_bucket: where to read the checkpoint from when it is not in ``bucket``, e.g. production's bucket in
        a migration; never written. (templated)
    :param bucket_conn_id: an ``aws`` or ``google_cloud_platform`` connection for both buckets; None lets Feldera
        use its own credentials. (templated)
    :param fail_if_no_checkpoint: fail when the checkpoint is not found. True by default: a silent fresh start is
        what a recovery must never do; set False to accept starting empty.
    :param initial: ``"running"``, ``"paused"`` or ``"standby"`` (keep pulling the newest checkpoint, ready for
        :class:`~airflow_checkpoint_sync.operators.standby.ActivateStandbyOperator`). (templated)
    :param pull_interval: seconds between a standby's pulls (Feldera's default 10).
    :param clear_storage: delete the pipeline's local storage first, so the checkpoint comes from the bucket and a
        standby can be started again.
    :param stop_if_running: stop a running pipeline first (gracefully, with a final checkpoint) instead of failing.
    :param sync_options: any other Feldera sync field (``retention_min_count``, ``endpoint``, ``flags``, ...).
    :param wait_for_completion: wait until the pipeline reaches ``initial``'s status.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: how long to wait for the stop, the clear and the start, in seconds or a timedelta.
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    :return: ``{"pipeline_name", "checkpoint", "status"}``.
    """

    template_fields: Sequence[str] = feldera_template_fields(
        "checkpoint", "bucket", "read_bucket", "bucket_conn_id", "initial"
    )

    def __init__(
        self,
        *,
        pipeline_name: str,
        feldera_conn_id: str = "feldera_default",
        checkpoint: str = "latest",
        bucket: str,
        read_bucket: str | None = None,
        bucket_conn_id: str | None = None,
        fail_if_no_checkpoint: bool = True,
        initial: str = "running",
        pull_interval: int | None = None,
        clear_storage: bool = False,
        stop_if_running: bool = False,
        sync_options: dict[str, Any] | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        timeout: float | dt.timedelta = 1800.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline_name = pipeline_name
        self.feldera_conn_id = feldera_conn_id
        self.checkpoint = checkpoint
        self.bucket = bucket
        self.read_bucket = read_bucket
        self.bucket_conn_id = bucket_conn_id
        self.fail_if_no_checkpoint = fail_if_no_checkpoint
        self.initial = initial
        self.pull_interval = pull_interval
        self.clear_storage = clear_storage
        self.stop_if_running = stop_if_running
        self.sync_options = sync_options
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval, self.timeout = params.wait_settings(poll_interval, timeout)

    def execute(self, context: Context) -> dict[str, Any]:
        # Everything is checked before the first request that changes anything.
        with feldera_errors("checking the parameters", self.pipeline_name):
            params.pipeline_name(self.pipeline_name)
            params.checkpoint_reference(self.checkpoint)
            params.choice(self.initial, "initial", tuple(INITIAL_STATUS))
            for name in ("fail_if_no_checkpoint", "clear_storage", "stop_if_running", "wait_for_completion"):
                params.flag(getattr(self, name), name)
        poll = self.poll_interval
        end_time = time.time() + self.timeout
        self.hook.deadline = end_time
        sync = build_sync_config(
            bucket=self.bucket,
            bucket_conn_id=self.bucket_conn_id or None,
            options=self.sync_options,
            read_bucket=self.read_bucket or None,
            start_from_checkpoint=self.checkpoint,
            fail_if_no_checkpoint=self.fail_if_no_checkpoint,
            pull_interval=self.pull_interval,
        )
        pipeline = self.read_pipeline()
        hosts = (pipeline.get("runtime_config") or {}).get("hosts") or 1
        if isinstance(hosts, int) and hosts > 1 and self.checkpoint != "latest":
            raise AirflowFailException(
                f"pipeline '{self.pipeline_name}' runs on {hosts} hosts: Feldera restores multihost pipelines from "
                "'latest' only, not from a checkpoint uuid"
            )
        group = pipeline_group(pipeline)
        result = {"pipeline_name": self.pipeline_name, "checkpoint": self.checkpoint}
        if group not in (PipelineGroup.STOPPED, PipelineGroup.FAILED) and self._started_earlier(
            context, pipeline, sync
        ):
            # An earlier try started it and then died (a lost worker): follow that start instead of refusing.
            self.log.info(
                "Pipeline '%s' was started by an earlier try of this task; waiting for it", self.pipeline_name
            )
            return self._wait(poll, end_time, result)
        self.check_bucket_owner(pipeline, sync, self.bucket_conn_id or None)
        if not (isinstance(hosts, int) and hosts > 1):  # a multihost location has a catalog per host, none at the root
            self._check_source(pipeline, sync)
        if group not in (PipelineGroup.STOPPED, PipelineGroup.FAILED):
            if not self.stop_if_running:
                raise AirflowFailException(
                    f"pipeline '{self.pipeline_name}' is {pipeline.get('deployment_status')}: a restore needs it "
                    "stopped. Stop it first, or set stop_if_running=True to stop it gracefully."
                )
            self._stop(group, poll, end_time)
        self.write_sync_config(pipeline, sync)
        if self.clear_storage:
            self._clear(poll, end_time)
        store = context.get("task_state_store")  # type: ignore[call-overload]
        if store is not None:
            store.set(STARTED_KEY, self._start_marker())
        result["started_at"] = dt.datetime.now(dt.UTC).isoformat()
        with feldera_errors("starting the pipeline", self.pipeline_name):
            self.hook.start_pipeline(self.pipeline_name, self.initial)
        self.log.info(
            "Pipeline '%s' starting from checkpoint %s (%s)", self.pipeline_name, self.checkpoint, self.initial
        )
        return self._wait(poll, end_time, result)

    def _check_source(self, pipeline: Mapping[str, Any], sync: SyncConfig) -> None:
        """Refuse, before anything changes, a restore whose checkpoint no source holds (see ``restore_source``)."""
        from airflow_checkpoint_sync.object_stores import read_catalog

        locations = [sync.bucket, *([sync.read_bucket] if sync.read_bucket else [])]
        if not self.bucket_conn_id:
            looks = [CatalogLook(location, unknown="no bucket_conn_id to read it") for location in locations]
        else:
            looks = []
            for location in locations:
                try:
                    found = read_catalog(self.bucket_store(self.bucket_conn_id, location))
                except Exception as exc:  # an early check only: Feldera's own search at start still holds
                    looks.append(CatalogLook(location, unknown=f"reading its {CATALOG}: {exc}"))
                    continue
                uuids = () if found is None else catalog_uuids(found[0])
                looks.append(
                    CatalogLook(location, unknown=f"its {CATALOG} is not in a known format")
                    if uuids is None
                    else CatalogLook(location, uuids)
                )
        verdict = restore_source(
            self.checkpoint,
            looks,
            local_may_have=not self.clear_storage and pipeline.get("storage_status") != "Cleared",
            standby=self.initial == "standby",
            fail_if_no_checkpoint=self.fail_if_no_checkpoint,
        )
        if verdict.refuse:
            raise AirflowFailException(f"pipeline '{self.pipeline_name}': {verdict.refuse}")
        if verdict.note:
            self.log.info("Pipeline '%s': %s", self.pipeline_name, verdict.note)

    def _start_marker(self) -> dict[str, Any]:
        return {"pipeline_name": self.pipeline_name, "checkpoint": self.checkpoint, "initial": self.initial}

    def _started_earlier(self, context: Context, pipeline: Mapping[str, Any], sync: SyncConfig) -> bool:
        """Whether an earlier try of this task recorded this very start and the pipeline has its sync config."""
        store = context.get("task_state_store")  # type: ignore[call-overload]
        if store is None or store.get(STARTED_KEY) != self._start_marker():
            return False
        try:
            return not merge_sync_config(pipeline.get("runtime_config"), sync).changed
        except SyncConfigError:
            return False

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the checkpoint's location was read (``read_bucket``, else ``bucket``), the pipeline written."""
        from airflow_checkpoint_sync import lineage

        source = self.read_bucket or self.bucket
        read = lineage.location(str(source)) if source else None
        return lineage.operator_lineage([read], [lineage.pipeline(self.feldera_conn_id, self.pipeline_name)])

    def status_reached(self, result: dict[str, Any]) -> dict[str, Any]:
        """The restore reached its initial status: its duration goes to the metrics (a start this try made)."""
        from airflow_checkpoint_sync import metrics

        if "started_at" in result:
            metrics.recovery_ended(metrics.RESTORE_DURATION, self.pipeline_name, result["started_at"])
        return result

    def _wait(self, poll: float, end_time: float, result: dict[str, Any]) -> dict[str, Any]:
        if not self.wait_for_completion:
            return {**result, "status": "starting"}
        return self.wait_for_status(
            [INITIAL_STATUS[self.initial]],
            deferrable=self.deferrable,
            poll_interval=poll,
            end_time=end_time,
            result=result,
        )

    def _stop(self, group: PipelineGroup, poll: float, end_time: float) -> None:
        # A graceful stop makes a final checkpoint; a standby cannot checkpoint, so it is stopped outright.
        force = group in (PipelineGroup.STANDBY, PipelineGroup.TRANSITIONAL, PipelineGroup.AWAITING_APPROVAL)
        self.log.info(
            "Stopping pipeline '%s' (%s) before the restore",
            self.pipeline_name,
            "forced" if force else "graceful: it checkpoints first",
        )
        self.stop_and_wait(force=force, poll_interval=poll, end_time=end_time)

    def _clear(self, poll: float, end_time: float) -> None:
        with feldera_errors("reading the storage status", self.pipeline_name):
            current = self.hook.get_pipeline(self.pipeline_name)
        if current.get("storage_status") != "Cleared":
            self.log.info("Clearing the storage of pipeline '%s'", self.pipeline_name)
            self.clear_and_wait(poll_interval=poll, end_time=end_time)
