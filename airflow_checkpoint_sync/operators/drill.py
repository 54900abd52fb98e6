"""RestoreDrillOperator: prove a synced checkpoint restores, in a scratch pipeline, without touching production."""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from airflow_checkpoint_sync import metrics

# Pure and cheap: checks are parsed when the DAG is, so that a malformed one is an import error naming it.
from airflow_checkpoint_sync.drill import parse_checks
from airflow_checkpoint_sync.task_support import (
    FelderaTaskMixin,
    check_pipeline_name,
    check_positive_seconds,
    feldera_errors,
    outcome,
    read_enterprise_pipeline,
    record_asset_events,
    validate_event,
    wait_settings,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_checkpoint_sync.drill import SqlCheck
    from airflow_checkpoint_sync.hooks.feldera import FelderaHook

#: Seconds the teardown of a scratch pipeline may take (stop, clear, delete), on top of the drill's own timeout.
TEARDOWN_S = 300.0
#: Sync fields of the source that the scratch pipeline must not inherit: where it writes, what it starts from, and
#: anything that would make it push.
NOT_INHERITED = {"bucket", "read_bucket", "start_from_checkpoint", "fail_if_no_checkpoint", "push_interval", "standby"}
#: How :func:`~airflow_checkpoint_sync.replication.location_overlap` words an overlap, said of a scratch location.
OVERLAPS = {
    "they are the same location": "it is the same location",
    "the destination lies inside the source": "it lies inside it",
    "the source lies inside the destination": "it holds it",
}
#: Sync fields a ``bucket_conn_id`` supplies instead of the source's.
FROM_CONNECTION = {"endpoint", "region", "provider", "access_key", "secret_key"}


class RestoreDrillOperator(FelderaTaskMixin, BaseOperator):
    """Prove that a synced checkpoint restores: start a scratch copy of a pipeline from it, check its data, measure
    the recovery time, and delete the copy.

    The drill never writes to the location under test or to the source pipeline:

    1. it reads the source pipeline (its program and runtime config) and picks the checkpoint from the location's
       catalog: ``latest``, a uuid, or ``random`` among those of the last ``random_within_days`` days (the same one
       on every try of a task instance);
    2. it creates the scratch pipeline with the source's program and runtime config, its sync ``bucket`` set to
       ``scratch_bucket`` and ``read_bucket`` to the location under test, ``start_from_checkpoint`` the picked uuid
       and ``fail_if_no_checkpoint=True``; nothing makes it push. A ``scratch_bucket`` that is, holds or lies inside
       the location under test or the source's own bucket is refused before anything is created;
    3. it starts the scratch pipeline and waits for Running (in the triggerer when ``deferrable``), then runs each
       of ``sql_checks`` through Feldera's ad-hoc query endpoint, and ``validate(hook, scratch_pipeline_name)``;
    4. whatever happened (success, a failed check, a timeout, a kill), it stops the scratch pipeline, clears its
       storage, deletes it and, with ``bucket_conn_id``, every object under ``scratch_bucket``. A try killed
       outright (SIGKILL) leaves it behind; the next try deletes it first. Only a pipeline whose description marks
       it as a drill's scratch pipeline is ever deleted.

    A check is a dict: ``{"sql": "SELECT COUNT(*) FROM orders", "min": 1}`` passes when the query answers one row of
    one value within ``min``/``max``; ``{"sql": ..., "expect": 22}`` when the value is exactly 22; ``name`` labels it.

    .. seealso::
        :ref:`howto/operator:RestoreDrillOperator`

    :param pipeline_name: the source pipeline whose checkpoints are drilled; only read. (templated)
    :param scratch_bucket: ``bucket[/prefix]`` the scratch pipeline owns while the drill runs, emptied afterwards
        (with ``bucket_conn_id``); by default ``<location>-drill``, next to the location under test. (templated)
    :param location: the location under test, ``bucket[/prefix]`` on the source's S3 endpoint: the source's sync
        bucket (the default) or an S3-compatible replica. (templated)
    :param scratch_pipeline_name: the scratch pipeline (default ``<pipeline_name>-drill``); a pipeline of that name
        that is not a drill's scratch pipeline is refused. (templated)
    :param bucket_conn_id: an ``aws`` connection to the locations' endpoint: reads the catalog (needed for
        ``random``), gives the scratch pipeline its credentials, and empties ``scratch_bucket`` at the end. Without
        it the scratch pipeline uses the source's sync credentials. (templated)
    :param checkpoint: ``"latest"``, ``"random"`` or a checkpoint uuid. (templated)
    :param random_within_days: with ``checkpoint="random"``, the window to draw from, in days.
    :param sql_checks: the SQL checks, as above.
    :param validate: a callable ``validate(hook, scratch_pipeline_name)`` run after the SQL checks; it fails the
        drill by raising or by returning False.
    :param deferrable: wait for Running in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: how long the scratch pipeline may take to compile and reach Running, in seconds or a timedelta.
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    :return: the drill result: ``pipeline_name``, ``scratch_pipeline_name``, ``location``, ``checkpoint_uuid``,
        ``checkpoint_age_seconds`` (the recovery point), ``recovery_seconds`` (start to Running),
        ``validated_seconds`` (start to every check done), ``checks`` (each with ``name``, ``passed``, ``value``,
        ``message``) and ``passed``. When the task has outlets, each asset event's extra carries it.
    """

    template_fields: Sequence[str] = (
        "pipeline_name",
        "feldera_conn_id",
        "scratch_pipeline_name",
        "scratch_bucket",
        "location",
        "bucket_conn_id",
        "checkpoint",
    )
    ui_color = "#c7e3ff"

    def __init__(
        self,
        *,
        pipeline_name: str,
        scratch_bucket: str | None = None,
        location: str | None = None,
        scratch_pipeline_name: str | None = None,
        bucket_conn_id: str | None = None,
        checkpoint: str = "latest",
        random_within_days: float | None = None,
        sql_checks: list[dict[str, Any]] | None = None,
        validate: Callable[[FelderaHook, str], Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        timeout: float | dt.timedelta = 1800.0,
        feldera_conn_id: str = "feldera_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.checks = parse_checks(sql_checks)
        if validate is not None and not callable(validate):
            raise ValueError(f"validate={validate!r} is not valid: a callable validate(hook, scratch_pipeline_name)")
        self.pipeline_name = pipeline_name
        self.feldera_conn_id = feldera_conn_id
        self.scratch_bucket = scratch_bucket
        self.location = location
        self.scratch_pipeline_name = scratch_pipeline_name
        self.bucket_conn_id = bucket_conn_id
        self.checkpoint = checkpoint
        self.random_within_days = random_within_days
        self.sql_checks = sql_checks
        self.validate = validate
        self.deferrable = deferrable
        self.poll_interval, self.timeout = wait_settings(poll_interval, timeout)
        self._scratch: str | None = None
        self._tested_location: str | None = None

    # -- the drill -----------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        plan = self._plan(context)
        scratch = plan["scratch_pipeline_name"]
        self._scratch = scratch
        self._remove_leftover(scratch)
        self.hook.deadline = plan["end_time"] + TEARDOWN_S
        with self._torn_down_on_error(plan):
            self._create(scratch, plan.pop("body"), plan["end_time"])
            plan["started_at"] = time.time()
            with feldera_errors("starting the scratch pipeline", scratch):
                self.hook.start_pipeline(scratch, "running")
            self.log.info("Drill: '%s' starting from %s of %s", scratch, plan["checkpoint_uuid"], plan["location"])
            trigger = self._running_trigger(scratch, plan)
            event = self.wait_for(trigger, deferrable=self.deferrable, method_name="resume_after_running")
        return self._validate_and_finish(context, event)

    def resume_after_running(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the scratch pipeline reached Running (or did not) in the triggerer."""
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        try:
            checked = validate_event(event, PipelineStatusTrigger)
            self._scratch = str(checked["pipeline_name"])
        except BaseException as exc:
            self._teardown_after(exc)
            raise
        return self._validate_and_finish(context, checked)

    def on_kill(self) -> None:
        if self._scratch:
            try:
                self._teardown(self._scratch)
            except Exception as exc:  # the next try removes what is left
                self.log.warning("Could not remove scratch pipeline '%s' on kill: %s", self._scratch, exc)
        super().on_kill()

    def _plan(self, context: Context) -> dict[str, Any]:
        """Everything checked, and the scratch pipeline's body built, before the first request that changes anything."""
        from airflow_checkpoint_sync.drill import check_selection, pick_checkpoint, scratch_description
        from airflow_checkpoint_sync.replication import location_overlap, split_location
        from airflow_checkpoint_sync.status import uuid7_time
        from airflow_checkpoint_sync.sync_config import current_sync, merge_sync_config

        source = check_pipeline_name(self.pipeline_name)
        scratch = check_pipeline_name(self.scratch_pipeline_name or f"{source}-drill", "scratch_pipeline_name")
        if scratch == source:
            raise AirflowFailException(f"scratch_pipeline_name={scratch!r} is the source pipeline: name another one")
        try:
            wanted, within = check_selection(self.checkpoint, self.random_within_days)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        if wanted == "random" and not self.bucket_conn_id:
            raise AirflowFailException("checkpoint='random' needs bucket_conn_id, to read the location's catalog")
        end_time = time.time() + check_positive_seconds(self.timeout, "timeout")
        check_positive_seconds(self.poll_interval, "poll_interval")
        self.hook.deadline = end_time + TEARDOWN_S
        pipeline = self._read_source(source)
        source_sync = current_sync(pipeline.get("runtime_config")) or {}
        location = self.location or source_sync.get("bucket")
        if not location:
            raise AirflowFailException(
                f"pipeline '{source}' has no checkpoint sync configured: pass the location to drill as location="
            )
        try:
            tested = split_location(location, "location")
            if not self.scratch_bucket and not tested[1]:
                raise ValueError(
                    f"location {location!r} is a whole bucket, so there is no place next to it for the drill's "
                    "scratch location: pass scratch_bucket"
                )
            self.scratch_bucket = self.scratch_bucket or f"{tested[0]}/{tested[1]}-drill"
            scratch_at = split_location(self.scratch_bucket, "scratch_bucket")
            own = split_location(source_sync["bucket"], "the source's bucket") if source_sync.get("bucket") else None
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        protected = [(tested, "the location under test")]
        if own is not None:
            protected.append((own, f"the bucket of pipeline '{source}'"))
        for other, what in protected:
            overlap = location_overlap(("s3", "", *other), ("s3", "", *scratch_at))
            if overlap:
                raise AirflowFailException(
                    f"scratch_bucket={self.scratch_bucket!r} overlaps {what} ({'/'.join(filter(None, other))}): "
                    f"{OVERLAPS.get(overlap, overlap)}. A drill never writes where checkpoints are kept: give it a "
                    "location of its own"
                )
        self._check_scratch_is_free()
        uuid = self._pick(wanted, within, location, context, pick_checkpoint)
        sync = self._scratch_sync(source_sync, uuid, location)
        runtime_config = merge_sync_config(pipeline.get("runtime_config"), sync).runtime_config
        body: dict[str, Any] = {
            "name": scratch,
            "description": scratch_description(source),
            "runtime_config": runtime_config,
            **{k: pipeline[k] for k in ("program_code", "udf_rust", "udf_toml", "program_config") if k in pipeline},
        }
        now = dt.datetime.now(dt.UTC)
        age = (now - uuid7_time(uuid)).total_seconds() if uuid != "latest" else None
        return {
            "pipeline_name": source,
            "scratch_pipeline_name": scratch,
            "scratch_bucket": self.scratch_bucket,
            "location": "/".join(filter(None, tested)),
            "checkpoint_uuid": uuid,
            "checkpoint_age_seconds": None if age is None else round(max(age, 0.0), 3),
            "end_time": end_time,
            "body": body,
        }

    def _check_scratch_is_free(self) -> None:
        """Refuse a scratch location that holds a catalog: it is somebody's sync location, and it would be emptied."""
        from airflow_checkpoint_sync.catalog import CATALOG
        from airflow_checkpoint_sync.operators.configure import read_at_location

        if not self.bucket_conn_id:
            return
        try:
            body = read_at_location(self.bucket_conn_id, self.scratch_bucket or "", CATALOG)
        except Exception as exc:
            raise AirflowException(f"reading the scratch location {self.scratch_bucket}: {exc}") from exc
        if body is not None:
            raise AirflowFailException(
                f"scratch_bucket={self.scratch_bucket!r} holds a {CATALOG}: it is a sync location, and a drill empties "
                "its scratch location when it ends. Give the drill a location of its own"
            )

    def _read_source(self, source: str) -> dict[str, Any]:
        return read_enterprise_pipeline(self.hook, source, "restoring a synced checkpoint needs")

    def _pick(
        self, wanted: str, within: float | None, location: str, context: Context, pick: Callable[..., str]
    ) -> str:
        from airflow_checkpoint_sync.catalog import CATALOG
        from airflow_checkpoint_sync.operators.configure import read_at_location
        from airflow_checkpoint_sync.verification import named_checkpoints

        if not self.bucket_conn_id:
            return wanted  # Feldera resolves 'latest' itself; a uuid it cannot find fails the start
        try:
            catalog = named_checkpoints(read_at_location(self.bucket_conn_id, location, CATALOG))
        except Exception as exc:
            raise AirflowException(f"reading the catalog of {location}: {exc}") from exc
        ti = context["ti"]
        seed = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
        try:
            return pick(wanted, within, catalog, dt.datetime.now(dt.UTC), seed)
        except ValueError as exc:
            raise AirflowFailException(f"location {location!r}: {exc}") from None

    def _scratch_sync(self, source_sync: Mapping[str, Any], uuid: str, location: str) -> Any:
        from airflow_checkpoint_sync.operators.configure import build_sync_config

        dropped = NOT_INHERITED | (FROM_CONNECTION if self.bucket_conn_id else set())
        inherited = {k: v for k, v in source_sync.items() if k not in dropped and v is not None}
        return build_sync_config(
            bucket=self.scratch_bucket,
            bucket_conn_id=self.bucket_conn_id or None,
            options=inherited,
            read_bucket=location,
            start_from_checkpoint=uuid,
            fail_if_no_checkpoint=True,
        )

    def _create(self, scratch: str, body: Mapping[str, Any], end_time: float) -> None:
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        with feldera_errors("creating the scratch pipeline", scratch):
            self.hook.put_pipeline(scratch, body)
        compiled = PipelineStatusTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=scratch,
            targets=["Success"],
            end_time=end_time,
            poll_interval=float(self.poll_interval),
            field="program_status",
        )
        outcome(self.wait_for(compiled, deferrable=False))

    def _running_trigger(self, scratch: str, plan: Mapping[str, Any]) -> Any:
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        return PipelineStatusTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=scratch,
            targets=["Running"],
            end_time=plan["end_time"],
            poll_interval=float(self.poll_interval),
            echo={"plan": dict(plan)},
        )

    def _validate_and_finish(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        plan = dict(event["echo"]["plan"])
        scratch = plan["scratch_pipeline_name"]
        self.scratch_bucket = plan["scratch_bucket"]  # a resumed task renders its default afresh
        with self._torn_down_on_error(plan):
            outcome(event)
            running_at = time.time()
            self.log.info("%s", event["message"])
            checks = [self._run_check(scratch, check) for check in self.checks]
            checks += self._run_validate(scratch)
            validated_at = time.time()
            if plan["checkpoint_uuid"] == "latest":
                plan["checkpoint_uuid"] = self._restored_uuid(scratch)
        self._teardown(scratch)
        result = {
            **{k: plan[k] for k in ("pipeline_name", "scratch_pipeline_name", "scratch_bucket", "location")},
            "checkpoint_uuid": plan["checkpoint_uuid"],
            "checkpoint_age_seconds": plan["checkpoint_age_seconds"],
            "recovery_seconds": round(running_at - plan["started_at"], 3),
            "validated_seconds": round(validated_at - plan["started_at"], 3),
            "checks": checks,
            "passed": all(check["passed"] for check in checks),
        }
        self._record(context, result)
        failed = [check["message"] for check in checks if not check["passed"]]
        if failed:
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowFailException(
                f"restore drill of '{plan['pipeline_name']}' from {plan['checkpoint_uuid']} failed "
                f"{len(failed)} of {len(checks)} check(s): {'; '.join(failed)}"
            )
        self.log.info(
            "Drill passed: checkpoint %s of %s restored in %.1fs, validated in %.1fs (%d check(s))",
            result["checkpoint_uuid"],
            result["location"],
            result["recovery_seconds"],
            result["validated_seconds"],
            len(checks),
        )
        return result

    def _run_check(self, scratch: str, check: SqlCheck) -> dict[str, Any]:
        from airflow_checkpoint_sync.drill import judge
        from airflow_checkpoint_sync.exceptions import FelderaApiError

        try:
            rows = self.hook.query(scratch, check.sql)
        except FelderaApiError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return {"name": check.label, "passed": False, "value": None, "message": f"{check.label}: {exc}"}
            raise
        passed, value, message = judge(check, rows)
        return {"name": check.label, "passed": passed, "value": value, "message": message}

    def _run_validate(self, scratch: str) -> list[dict[str, Any]]:
        if self.validate is None:
            return []
        name = getattr(self.validate, "__name__", "validate")
        try:
            answer = self.validate(self.hook, scratch)
        except Exception as exc:
            return [{"name": name, "passed": False, "value": None, "message": f"{name}: {type(exc).__name__}: {exc}"}]
        passed = answer is not False
        return [
            {
                "name": name,
                "passed": passed,
                "value": None,
                "message": f"{name}: {'passed' if passed else 'returned False'}",
            }
        ]

    def _restored_uuid(self, scratch: str) -> str:
        with feldera_errors("listing the scratch pipeline's checkpoints", scratch):
            local = self.hook.list_checkpoints(scratch)
        return str(local[-1]["uuid"]) if local else "latest"

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the location under test and the source pipeline (its program) were read; nothing durable
        was written (the scratch pipeline and its location are removed)."""
        from airflow_checkpoint_sync import lineage

        tested = lineage.location(self._tested_location) if self._tested_location else None
        return lineage.operator_lineage([tested, lineage.pipeline(self.feldera_conn_id, self.pipeline_name)], [])

    def _record(self, context: Context, result: Mapping[str, Any]) -> None:
        self._tested_location = str(result.get("location") or "") or None
        metrics.drill_ended(dict(result))
        checks = result["checks"]
        summary = {"checks_passed": sum(c["passed"] for c in checks), "checks": len(checks)}
        record_asset_events(context, self.outlets, {k: v for k, v in result.items() if k != "checks"} | summary)

    # -- teardown ------------------------------------------------------------------------------------------------
    def _remove_leftover(self, scratch: str) -> None:
        from airflow_checkpoint_sync.drill import is_scratch

        existing = self._find(scratch)
        if existing is None:
            return
        if not is_scratch(existing):
            raise AirflowFailException(
                f"scratch_pipeline_name={scratch!r} names an existing pipeline that is not a drill's scratch pipeline: "
                "a drill deletes its scratch pipeline when it ends, so name one that does not exist"
            )
        self.log.info("Removing scratch pipeline '%s' left by an earlier try", scratch)
        self._teardown(scratch)

    def _find(self, name: str) -> dict[str, Any] | None:
        from airflow_checkpoint_sync.exceptions import FelderaApiError

        try:
            return self.hook.get_pipeline(name)
        except FelderaApiError as exc:
            if exc.status == 404:
                return None
            raise

    @contextmanager
    def _torn_down_on_error(self, plan: Mapping[str, Any]) -> Iterator[None]:
        """Any error in the block tears the scratch pipeline down, then ends the task saying which drill it was."""
        try:
            yield
        except TaskDeferred:
            raise  # not an error: the wait goes on in the triggerer, and resume_after_running finishes the drill
        except BaseException as exc:
            said = _in_drill(exc, plan, removed=self._teardown_after(exc))
            if said is exc:
                raise
            raise said from exc

    def _teardown_after(self, error: BaseException) -> bool:
        """Tear down after ``error``; a teardown failure is logged (False), and ``error`` stays the task's error."""
        if not self._scratch:
            return True
        try:
            self._teardown(self._scratch)
        except Exception as exc:
            self.log.error("Scratch pipeline '%s' not removed after %s: %s", self._scratch, type(error).__name__, exc)
            return False
        return True

    def _teardown(self, scratch: str) -> None:
        """Stop the scratch pipeline, clear its storage, delete it, and empty ``scratch_bucket``."""
        from airflow_checkpoint_sync.drill import is_scratch
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        self.hook.deadline = time.time() + TEARDOWN_S
        current = self._find(scratch)
        if current is not None and is_scratch(current):
            steps: list[tuple[Callable[[], None], list[str], str]] = [
                (lambda: self.hook.stop_pipeline(scratch, force=True), ["Stopped"], "deployment_status"),
                (lambda: self.hook.clear_storage(scratch), ["Cleared"], "storage_status"),
            ]
            for action, targets, field in steps:
                if current.get(field) in targets:
                    continue
                with feldera_errors("removing the scratch pipeline", scratch):
                    action()
                trigger = PipelineStatusTrigger(
                    feldera_conn_id=self.feldera_conn_id,
                    pipeline_name=scratch,
                    targets=targets,
                    end_time=self.hook.deadline,
                    poll_interval=float(self.poll_interval),
                    field=field,
                )
                outcome(self.wait_for(trigger, deferrable=False))
            with feldera_errors("deleting the scratch pipeline", scratch):
                self.hook.delete_pipeline(scratch)
            self.log.info("Scratch pipeline '%s' deleted", scratch)
        if self.bucket_conn_id and self.scratch_bucket:
            self._empty_scratch_bucket()
        self._scratch = None

    def _empty_scratch_bucket(self) -> None:
        from airflow_checkpoint_sync.object_stores import store_for, store_step

        store = store_for(
            self.bucket_conn_id or "", self.scratch_bucket or "", "bucket_conn_id", ("aws",), "scratch_bucket"
        )
        with store_step("emptying the scratch location", store):
            names = [obj.name for obj in store.list()]
            if names:
                store.delete(names)
        if names:
            self.log.info("Deleted %d object(s) under the scratch location %s", len(names), store)


def _in_drill(error: BaseException, plan: Mapping[str, Any], removed: bool) -> BaseException:
    """A task error that says which drill it ended (its scratch pipeline is torn down by then); other errors as they
    are."""
    if type(error) not in (AirflowException, AirflowFailException):
        return error
    return type(error)(
        f"restore drill of '{plan['pipeline_name']}' from {plan['checkpoint_uuid']} of {plan['location']} failed "
        f"(scratch pipeline '{plan['scratch_pipeline_name']}' {'removed' if removed else 'NOT removed, see the log'}): "
        f"{error}"
    )
