"""RestoreDrillOperator: prove a synced checkpoint restores, in a scratch pipeline, without touching production."""

from __future__ import annotations

import datetime as dt
import io
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from airflow_checkpoint_sync import metrics
from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConfigError, FelderaParameterError, is_not_found
from airflow_checkpoint_sync.operators.base import FelderaPipelineOperator
from airflow_checkpoint_sync.rules import params

# Pure and cheap: checks are parsed when the DAG is, so that a malformed one is an import error naming it.
from airflow_checkpoint_sync.rules.drill import (
    CAUSES,
    MARKER,
    REMOVAL,
    DrillOwner,
    check_selection,
    default_scratch_names,
    judge,
    location_claim,
    marker_body,
    marker_owner,
    missing_files_cause,
    parse_checks,
    pick_checkpoint,
    pipeline_claim,
    removal_refusal,
    removal_step,
    scratch_description,
)
from airflow_checkpoint_sync.rules.locations import location_overlap, split_location
from airflow_checkpoint_sync.rules.status import deployment_error_message, newest_listed, uuid7_time
from airflow_checkpoint_sync.rules.sync_config import current_sync, merge_sync_config
from airflow_checkpoint_sync.rules.verification import named_checkpoints
from airflow_checkpoint_sync.task_support import (
    SUCCESS_STATUSES,
    build_sync_config,
    feldera_errors,
    feldera_template_fields,
    outcome,
    read_enterprise_pipeline,
    record_asset_events,
    store_errors,
    validate_event,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_checkpoint_sync.hooks.feldera import FelderaHook
    from airflow_checkpoint_sync.object_stores.base import ObjectStore
    from airflow_checkpoint_sync.rules.drill import SqlCheck

#: Seconds the teardown of a scratch pipeline may take (stop, clear, delete), on top of the drill's own timeout.
TEARDOWN_S = 300.0
#: Sync fields of the source that the scratch pipeline must not inherit: where it writes, what it starts from, and
#: anything that would make it push.
NOT_INHERITED = {"bucket", "read_bucket", "start_from_checkpoint", "fail_if_no_checkpoint", "push_interval", "standby"}
#: An overlap of the scratch location with a kept one (:func:`~.rules.locations.location_overlap`), in words.
OVERLAPS = {"same": "it is the same location", "inside": "it lies inside it", "holds": "it holds it"}
#: Sync fields a ``bucket_conn_id`` supplies instead of the source's.
FROM_CONNECTION = {"endpoint", "region", "provider", "access_key", "secret_key"}
#: What a failed drill's result says of its plan (what the drill was: which pipeline, where, which checkpoint).
PUBLIC = (
    "pipeline_name",
    "scratch_pipeline_name",
    "scratch_bucket",
    "location",
    "checkpoint_uuid",
    "checkpoint_age_seconds",
)


class RestoreDrillOperator(FelderaPipelineOperator):
    """Prove that a synced checkpoint restores: start a scratch copy of a pipeline from it, check its data, measure
    the recovery time, and delete the copy.

    The drill never writes to the location under test or to the source pipeline, and it deletes only what it can
    prove it created, in this try or an earlier try of the same task instance (its *owner*: DAG, task, map index and
    run, not the try number):

    1. it reads the source pipeline (its program and runtime config) and picks the checkpoint from the location's
       catalog: ``latest``, a uuid, or ``random`` among those of the last ``random_within_days`` days (the same one
       on every try of a task instance);
    2. it claims its scratch pipeline and location, checking both before touching either: a pipeline of that name
       must not exist or be the scratch pipeline of this task instance (its description names its owner); with
       ``bucket_conn_id`` the scratch location must be empty or hold this task instance's marker object
       (``.airflow-checkpoint-sync-drill.json``). Anything else (another drill's, anybody's data, a sync location)
       refuses the drill having changed nothing. What an earlier try of this task instance left is removed, then the
       marker is written, before the scratch pipeline exists;
    3. it creates the scratch pipeline with the source's program and runtime config, its sync ``bucket`` set to
       ``scratch_bucket`` and ``read_bucket`` to the location under test, ``start_from_checkpoint`` the picked uuid
       and ``fail_if_no_checkpoint=True``; nothing makes it push. A ``scratch_bucket`` that is, holds or lies inside
       the location under test or the source's own bucket is refused before anything is created;
    4. it starts the scratch pipeline and waits for Running (in the triggerer when ``deferrable``), then runs each
       of ``sql_checks`` through Feldera's ad-hoc query endpoint, and ``validate(hook, scratch_pipeline_name)``;
    5. whatever happened (success, a failed check, a timeout, a kill), it stops the scratch pipeline, clears its
       storage and deletes it if its description still names this task instance, and, with ``bucket_conn_id``,
       deletes the objects under ``scratch_bucket`` if the marker still names it (the marker last). A try killed
       while deferred has its trigger remove the scratch pipeline (Airflow 3.3's trigger ``on_kill``; the scratch
       location stays). A try killed outright (SIGKILL) leaves both behind; the next try of the task instance
       removes them first.

    By default the scratch names carry a suffix derived from the owner (``<pipeline>-drill-<8 hex digits>``), so two
    drills of one pipeline that overlap (a manual run beside the scheduled one, a backfill) never share them, and
    every try of one task instance uses the same ones.

    Every outcome is on the record: the ``feldera.drill.passed`` or ``feldera.drill.failed`` metric (and a counter
    of the failure's cause), the result in XCom (``return_value``) whether the drill passed or not, and the cause in
    the task's error. Asset events go with a passed drill only: Airflow sends a task's outlet events when it
    succeeds, never when it fails.

    A check is a dict: ``{"sql": "SELECT COUNT(*) FROM orders", "min": 1}`` passes when the query answers one row of
    one value within ``min``/``max``; ``{"sql": ..., "expect": 22}`` when the value is exactly 22; ``name`` labels it.
    ``expect`` and ``min``/``max`` exclude each other, ``min`` may not exceed ``max``, and ``sql`` is one SELECT
    (or ``WITH ... SELECT``); a check that breaks these rules is refused when the DAG is parsed.

    .. seealso::
        :ref:`howto/operator:RestoreDrillOperator`

    :param pipeline_name: the source pipeline whose checkpoints are drilled; only read. (templated)
    :param scratch_bucket: ``bucket[/prefix]`` the scratch pipeline owns while the drill runs: empty or this task
        instance's own, and emptied afterwards (with ``bucket_conn_id``); by default ``<location>-drill-<suffix>``,
        next to the location under test. (templated)
    :param location: the location under test, ``bucket[/prefix]`` on the source's S3 endpoint: the source's sync
        bucket (the default) or an S3-compatible replica. (templated)
    :param scratch_pipeline_name: the scratch pipeline (default ``<pipeline_name>-drill-<suffix>``); a pipeline of
        that name that is not this task instance's scratch pipeline is refused. (templated)
    :param bucket_conn_id: an ``aws`` connection to the locations' endpoint: reads the catalog (needed for
        ``random``), gives the scratch pipeline its credentials, and claims and empties ``scratch_bucket``. Without
        it the scratch pipeline uses the source's sync credentials and the scratch location is never listed,
        marked or emptied. (templated)
    :param checkpoint: ``"latest"``, ``"random"`` or a checkpoint uuid. (templated)
    :param random_within_days: with ``checkpoint="random"``, the window to draw from, in days.
    :param sql_checks: the SQL checks, as above.
    :param validate: a callable ``validate(hook, scratch_pipeline_name)`` run after the SQL checks; it fails the
        drill by raising or by returning False.
    :param deferrable: wait for Running in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between status reads.
    :param timeout: how long the scratch pipeline may take to compile and reach Running, in seconds or a timedelta.
    :param feldera_conn_id: the ``feldera`` Airflow connection. (templated)
    :return: the drill result: ``pipeline_name``, ``scratch_pipeline_name``, ``scratch_bucket``, ``location``,
        ``checkpoint_uuid``, ``checkpoint_age_seconds`` (the recovery point), ``recovery_seconds`` (start to
        Running), ``validated_seconds`` (start to every check done), ``checks`` (each with ``name``, ``passed``,
        ``value``, ``message``), ``passed``, ``cause`` (None, or why it failed: ``checks_failed``,
        ``restore_failed``, ``timeout``, ``refused``, ``error``) and ``error`` (the task's error). A failed drill
        leaves it in XCom too, with what it knew by then. When a passed drill's task has outlets, each asset event's
        extra carries it (without ``checks``).
    """

    template_fields: Sequence[str] = feldera_template_fields(
        "scratch_pipeline_name",
        "scratch_bucket",
        "location",
        "bucket_conn_id",
        "checkpoint",
    )
    # No console link: the source pipeline is only read, and the scratch pipeline is deleted when the drill ends.
    operator_extra_links = ()

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
            raise FelderaParameterError("validate", validate, "a callable validate(hook, scratch_pipeline_name)")
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
        self.poll_interval, self.timeout = params.wait_settings(poll_interval, timeout)
        self._scratch: str | None = None
        self._tested_location: str | None = None
        self._owner: DrillOwner | None = None
        self._facts: dict[str, Any] = {}
        #: Where the drill is ("prepare", "restore", "check") and, once known, why it failed (a key of CAUSES).
        self._stage = "prepare"
        self._cause: str | None = None
        self._recorded = False

    # -- the drill -----------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        self._start_record(context)
        with self._on_the_record(context):
            plan = self._plan(context)
            self._facts = {k: v for k, v in plan.items() if k in PUBLIC}
            scratch = plan["scratch_pipeline_name"]
            self._claim(scratch)
            self.hook.deadline = plan["end_time"] + TEARDOWN_S
            with self._torn_down_on_error(plan):
                self._stage = "restore"
                created_id = self._create(scratch, plan.pop("body"), plan["end_time"])
                plan["started_at"] = time.time()
                try:
                    with feldera_errors("starting the scratch pipeline", scratch):
                        self.hook.start_pipeline(scratch, "running")
                except AirflowFailException:
                    self._cause = "restore_failed"  # Feldera refused the start itself
                    raise
                self.log.info("Drill: '%s' starting from %s of %s", scratch, plan["checkpoint_uuid"], plan["location"])
                trigger = self._running_trigger(scratch, plan, created_id)
                event = self.wait_for(trigger, deferrable=self.deferrable, method_name="resume_after_running")
            return self._validate_and_finish(context, event)

    def resume_after_running(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the scratch pipeline reached Running (or did not) in the triggerer."""
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        self._start_record(context)
        self._stage = "restore"
        with self._on_the_record(context):
            try:
                checked = validate_event(event, PipelineStatusTrigger)
                self._scratch = str(checked["pipeline_name"])
                self._facts = {k: v for k, v in checked["echo"]["plan"].items() if k in PUBLIC}
                self.scratch_bucket = self._facts.get("scratch_bucket")  # a resumed task renders its default afresh
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

    @property
    def _me(self) -> DrillOwner:
        """The task instance this drill runs as (known once execute or resume_after_running has begun)."""
        if self._owner is None:
            raise AirflowException("the drill's task instance is not known: execute() has not begun")
        return self._owner

    def _start_record(self, context: Context) -> None:
        self._owner = DrillOwner.of(context["ti"])
        self._facts = {"pipeline_name": self.pipeline_name}
        self._stage, self._cause, self._recorded = "prepare", None, False

    @contextmanager
    def _on_the_record(self, context: Context) -> Iterator[None]:
        """Whatever ends the drill but a pass (which records itself) is recorded: its metric, its result in XCom
        (``passed`` False, its ``cause`` and ``error``), and the cause in the task's error."""
        try:
            yield
        except TaskDeferred:
            raise
        except Exception as exc:
            if self._recorded:
                raise
            cause = self._cause_of(exc)
            result: dict[str, Any] = {
                **{k: self._facts.get(k) for k in PUBLIC},
                "pipeline_name": str(self._facts.get("pipeline_name") or self.pipeline_name),
                "recovery_seconds": None,
                "validated_seconds": None,
                "checks": [],
                "passed": False,
                "cause": cause,
                "error": str(exc),
            }
            self._recorded = True
            metrics.drill_ended(result)
            try:
                context["ti"].xcom_push(key="return_value", value=result)
            except Exception as push_error:  # the task's own error matters more than its record
                self.log.warning("Could not record the failed drill's result in XCom: %s", push_error)
            raise

    def _cause_of(self, error: BaseException) -> str:
        if self._cause:
            return self._cause
        if self._stage == "prepare" and isinstance(error, AirflowFailException):
            return "refused"
        return "error"

    def _plan(self, context: Context) -> dict[str, Any]:
        """Everything checked, and the scratch pipeline's body built, before the first request that changes anything."""
        owner = self._me
        with feldera_errors("checking the parameters", self.pipeline_name):
            source = params.pipeline_name(self.pipeline_name)
            # The bucket's default needs the location, read below; the name's does not depend on it.
            default_pipeline = default_scratch_names(source, ("", ""), owner)[0]
            scratch = params.pipeline_name(self.scratch_pipeline_name or default_pipeline, "scratch_pipeline_name")
        if scratch == source:
            raise AirflowFailException(f"scratch_pipeline_name={scratch!r} is the source pipeline: name another one")
        with feldera_errors("preparing the drill", self.pipeline_name):
            wanted, within = check_selection(self.checkpoint, self.random_within_days)
        if wanted == "random" and not self.bucket_conn_id:
            raise AirflowFailException("checkpoint='random' needs bucket_conn_id, to read the location's catalog")
        end_time = time.time() + self.timeout
        self.hook.deadline = end_time + TEARDOWN_S
        pipeline = self._read_source(source)
        source_sync = current_sync(pipeline.get("runtime_config")) or {}
        location = self.location or source_sync.get("bucket")
        if not location:
            raise AirflowFailException(
                f"pipeline '{source}' has no checkpoint sync configured: pass the location to drill as location="
            )
        with feldera_errors("preparing the drill", self.pipeline_name):
            tested = split_location(location, "location")
            default_bucket = default_scratch_names(source, tested, owner)[1]
            if not self.scratch_bucket and default_bucket is None:
                raise FelderaConfigError(
                    f"location {location!r} is a whole bucket, so there is no place next to it for the drill's "
                    "scratch location: pass scratch_bucket"
                )
            self.scratch_bucket = self.scratch_bucket or default_bucket
            scratch_at = split_location(self.scratch_bucket or "", "scratch_bucket")
            own = split_location(source_sync["bucket"], "the source's bucket") if source_sync.get("bucket") else None
        protected = [(tested, "the location under test")]
        if own is not None:
            protected.append((own, f"the bucket of pipeline '{source}'"))
        for other, what in protected:
            overlap = location_overlap(("s3", "", *other), ("s3", "", *scratch_at))
            if overlap:
                raise AirflowFailException(
                    f"scratch_bucket={self.scratch_bucket!r} overlaps {what} ({'/'.join(filter(None, other))}): "
                    f"{OVERLAPS[overlap]}. A drill never writes where checkpoints are kept: give it a "
                    "location of its own"
                )
        tested_text = "/".join(filter(None, tested))
        self._facts.update(scratch_pipeline_name=scratch, scratch_bucket=self.scratch_bucket, location=tested_text)
        uuid = self._pick(wanted, within, location, context, pick_checkpoint)
        sync = self._scratch_sync(source_sync, uuid, location)
        runtime_config = merge_sync_config(pipeline.get("runtime_config"), sync).runtime_config
        body: dict[str, Any] = {
            "name": scratch,
            "description": scratch_description(source, owner),
            "runtime_config": runtime_config,
            **{k: pipeline[k] for k in ("program_code", "udf_rust", "udf_toml", "program_config") if k in pipeline},
        }
        now = dt.datetime.now(dt.UTC)
        age = (now - uuid7_time(uuid)).total_seconds() if uuid != "latest" else None
        return {
            "pipeline_name": source,
            "scratch_pipeline_name": scratch,
            "scratch_bucket": self.scratch_bucket,
            "location": tested_text,
            "checkpoint_uuid": uuid,
            "checkpoint_age_seconds": None if age is None else round(max(age, 0.0), 3),
            # With the catalog read, the uuid is the catalog's: a checkpoint then missing means damage, not a typo.
            "from_catalog": bool(self.bucket_conn_id) and uuid != "latest",
            "end_time": end_time,
            "body": body,
        }

    def _claim(self, scratch: str) -> None:
        """Make the scratch pipeline and location this task instance's, or refuse having changed nothing.

        Both are checked before either is touched: a pipeline or objects an earlier try of this task instance left
        are removed; anything else (another drill's, anybody's) refuses the drill. Then the location's marker is
        written, before the scratch pipeline exists, so that whatever the pipeline writes there is provably ours."""
        with feldera_errors("preparing the drill", self.pipeline_name):
            leftover_pipeline = pipeline_claim(scratch, self._find(scratch), self._me)
        store = self._scratch_store()
        names: list[str] = []
        if store is not None:
            with store_errors("reading the scratch location", store):
                names = [obj.name for obj in store.list()]
                marker = self._marker_owner(store) if MARKER in names else None
            with feldera_errors("preparing the drill", self.pipeline_name):
                location_claim(self.scratch_bucket or "", names, marker, self._me)
        self._scratch = scratch  # from here on, every teardown path removes what this drill owns
        if leftover_pipeline:
            self.log.info("Removing scratch pipeline '%s' left by an earlier try of this task instance", scratch)
            self._teardown_pipeline(scratch)
        if store is not None:
            with store_errors("preparing the scratch location", store):
                earlier = [name for name in names if name != MARKER]
                if earlier:
                    store.delete(earlier)
                    self.log.info("Deleted %d object(s) an earlier try left under %s", len(earlier), store)
                body = marker_body(self._me, dt.datetime.now(dt.UTC))
                store.write(MARKER, io.BytesIO(body), len(body), None)

    def _read_source(self, source: str) -> dict[str, Any]:
        return read_enterprise_pipeline(self.hook, source, "restoring a synced checkpoint needs")

    def _pick(
        self, wanted: str, within: float | None, location: str, context: Context, pick: Callable[..., str]
    ) -> str:
        from airflow_checkpoint_sync.object_stores import read_catalog

        if not self.bucket_conn_id:
            return wanted  # Feldera resolves 'latest' itself; a uuid it cannot find fails the start
        try:
            found = read_catalog(self.bucket_store(self.bucket_conn_id, location))
            catalog = named_checkpoints(found[0] if found else None)
        except Exception as exc:
            raise AirflowException(f"reading the catalog of {location}: {exc}") from exc
        ti = context["ti"]
        seed = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
        try:
            return pick(wanted, within, catalog, dt.datetime.now(dt.UTC), seed)
        except FelderaConfigError as exc:
            raise AirflowFailException(f"location {location!r}: {exc}") from None

    def _scratch_sync(self, source_sync: Mapping[str, Any], uuid: str, location: str) -> Any:
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

    def _create(self, scratch: str, body: Mapping[str, Any], end_time: float) -> str | None:
        """Create the scratch pipeline and wait for it to compile; the ``id`` Feldera gave it."""
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        with feldera_errors("creating the scratch pipeline", scratch):
            created = self.hook.put_pipeline(scratch, body)
        compiled = PipelineStatusTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=scratch,
            targets=["Success"],
            end_time=end_time,
            poll_interval=float(self.poll_interval),
            field="program_status",
        )
        self._restore_outcome(self.wait_for(compiled, deferrable=False))
        return str(created["id"]) if created.get("id") else None

    def _restore_outcome(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """:func:`outcome` of a wait for the scratch pipeline to compile or run, with the drill's cause decided from
        the event: Feldera said it failed (the checkpoint did not restore), the deadline passed, or Feldera could
        not be read."""
        status = event.get("status")
        if status not in SUCCESS_STATUSES:
            self._cause = {"failure": "restore_failed", "timeout": "timeout"}.get(str(status), "error")
        return outcome(event)

    def _running_trigger(self, scratch: str, plan: Mapping[str, Any], created_id: str | None) -> Any:
        from airflow_checkpoint_sync.triggers.kill_cleanup import remove_scratch_pipeline
        from airflow_checkpoint_sync.triggers.pipeline import PipelineStatusTrigger

        return PipelineStatusTrigger(
            feldera_conn_id=self.feldera_conn_id,
            pipeline_name=scratch,
            targets=["Running"],
            end_time=plan["end_time"],
            poll_interval=float(self.poll_interval),
            echo={"plan": dict(plan)},
            # A user who kills the task while it is deferred (marks it failed or succeeded, clears it) runs no
            # worker teardown: the trigger's on_kill removes the scratch pipeline instead.
            on_kill_cleanup=remove_scratch_pipeline(scratch, self._me, created_id),
        )

    def _validate_and_finish(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        plan = dict(event["echo"]["plan"])
        scratch = plan["scratch_pipeline_name"]
        self.scratch_bucket = plan["scratch_bucket"]  # a resumed task renders its default afresh
        with self._torn_down_on_error(plan):
            if event.get("status") not in SUCCESS_STATUSES:
                self._say_why_not_restored(event, plan)
            self._restore_outcome(event)
            self._stage = "check"
            running_at = time.time()
            self.log.info("%s", event["message"])
            checks = [self._run_check(scratch, check) for check in self.checks]
            checks += self._run_validate(scratch)
            validated_at = time.time()
            if plan["checkpoint_uuid"] == "latest":
                plan["checkpoint_uuid"] = self._restored_uuid(scratch)
        self._teardown(scratch)
        failed = [check["message"] for check in checks if not check["passed"]]
        error = (
            f"restore drill of '{plan['pipeline_name']}' from {plan['checkpoint_uuid']} failed {len(failed)} of "
            f"{len(checks)} check(s): {'; '.join(failed)}"
            if failed
            else None
        )
        result = {
            **{k: plan[k] for k in ("pipeline_name", "scratch_pipeline_name", "scratch_bucket", "location")},
            "checkpoint_uuid": plan["checkpoint_uuid"],
            "checkpoint_age_seconds": plan["checkpoint_age_seconds"],
            "recovery_seconds": round(running_at - plan["started_at"], 3),
            "validated_seconds": round(validated_at - plan["started_at"], 3),
            "checks": checks,
            "passed": not failed,
            "cause": "checks_failed" if failed else None,
            "error": error,
        }
        self._record(context, result)
        if error:
            self._recorded = True
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowFailException(error)
        self.log.info(
            "Drill passed: checkpoint %s of %s restored in %.1fs, validated in %.1fs (%d check(s))",
            result["checkpoint_uuid"],
            result["location"],
            result["recovery_seconds"],
            result["validated_seconds"],
            len(checks),
        )
        return result

    def _say_why_not_restored(self, event: Mapping[str, Any], plan: Mapping[str, Any]) -> None:
        """A checkpoint the catalog names whose files Feldera could not find: say that the location is damaged
        (the uuid came from the catalog, so there is no uuid to check)."""
        if event.get("status") != "failure" or not plan.get("from_catalog"):
            return
        try:
            pipeline = self._find(plan["scratch_pipeline_name"])
        except Exception:  # the event's own message still says it failed
            return
        reason = deployment_error_message(pipeline or {}) or ""
        said = missing_files_cause(reason, plan["checkpoint_uuid"], plan["location"])
        if said:
            self._cause = "restore_failed"
            raise AirflowException(f"pipeline '{plan['scratch_pipeline_name']}' failed to start: {said}")

    def _run_check(self, scratch: str, check: SqlCheck) -> dict[str, Any]:
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
        return newest_listed(local) or "latest"

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the location under test and the source pipeline (its program) were read; nothing durable
        was written (the scratch pipeline and its location are removed)."""
        from airflow_checkpoint_sync import lineage

        tested = lineage.location(self._tested_location) if self._tested_location else None
        return lineage.operator_lineage([tested, lineage.pipeline(self.feldera_conn_id, self.pipeline_name)], [])

    def _record(self, context: Context, result: Mapping[str, Any]) -> None:
        self._tested_location = str(result.get("location") or "") or None
        metrics.drill_ended(dict(result))
        if not result["passed"]:
            return  # Airflow 3.3 sends a task's outlet asset events only when it succeeds
        checks = result["checks"]
        summary = {"checks_passed": sum(c["passed"] for c in checks), "checks": len(checks)}
        record_asset_events(context, self.outlets, {k: v for k, v in result.items() if k != "checks"} | summary)

    # -- teardown ------------------------------------------------------------------------------------------------
    def _find(self, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.get_pipeline(name)
        except FelderaApiError as exc:
            if is_not_found(exc):
                return None
            raise

    @contextmanager
    def _torn_down_on_error(self, plan: Mapping[str, Any]) -> Iterator[None]:
        """Any error in the block tears the scratch pipeline down, then ends the task saying which drill it was and
        why it failed."""
        try:
            yield
        except TaskDeferred:
            raise  # not an error: the wait goes on in the triggerer, and resume_after_running finishes the drill
        except BaseException as exc:
            removed = self._teardown_after(exc)
            said = _in_drill(exc, plan, removed, self._cause_of(exc))
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
        """Remove what this drill owns: the scratch pipeline (stopped, cleared, deleted) if its description names
        this task instance, and, with ``bucket_conn_id``, the scratch location's objects if its marker does."""
        self.hook.deadline = time.time() + TEARDOWN_S
        self._teardown_pipeline(scratch)
        self._empty_scratch_location()
        self._scratch = None

    def _teardown_pipeline(self, scratch: str) -> None:
        deadline = self.hook.deadline = time.time() + TEARDOWN_S
        current = self._find(scratch)
        if current is None:
            return
        refusal = removal_refusal(current, self._me)
        if refusal:
            # Another drill may have taken the name since: only ever remove our own.
            self.log.warning("Scratch pipeline '%s' left alone: %s", scratch, refusal)
            return
        # The trigger of a killed deferred try of this task instance (its on_kill) may be removing this very
        # pipeline now: a step under way is waited for, and a pipeline that vanishes under a step has been removed.
        poll, action = float(self.poll_interval), "removing the scratch pipeline"
        try:
            for _ in REMOVAL:
                step = removal_step(current)
                if step is None:
                    break
                if step.action == "stop":
                    self.stop_and_wait(
                        force=True, poll_interval=poll, end_time=deadline, pipeline_name=scratch, action=action
                    )
                else:
                    self.clear_and_wait(
                        poll_interval=poll,
                        end_time=deadline,
                        pipeline_name=scratch,
                        action=action,
                        under_way=not step.send,
                    )
                current = self._find(scratch) or {}
            with feldera_errors("deleting the scratch pipeline", scratch):
                self.hook.delete_pipeline(scratch)
        except AirflowException:
            if self._find(scratch) is not None:
                raise
            self.log.info("Scratch pipeline '%s' was removed meanwhile (by the trigger of a killed try)", scratch)
            return
        self.log.info("Scratch pipeline '%s' deleted", scratch)

    def _scratch_store(self) -> ObjectStore | None:
        """The scratch location's store, or None without ``bucket_conn_id`` (then the drill never lists, writes or
        empties it)."""
        if not self.bucket_conn_id or not self.scratch_bucket:
            return None
        with feldera_errors("preparing the drill", self.pipeline_name):
            return self.bucket_store(self.bucket_conn_id, self.scratch_bucket, "scratch_bucket")

    def _marker_owner(self, store: ObjectStore) -> DrillOwner | None:
        from airflow_checkpoint_sync.object_stores import read_object

        return marker_owner(read_object(store, MARKER))

    def _empty_scratch_location(self) -> None:
        """Delete the scratch location's objects, the marker last, if the marker still names this task instance;
        otherwise leave everything there (it is not provably ours) and say so."""
        store = self._scratch_store()
        if store is None:
            return
        with store_errors("emptying the scratch location", store):
            marker = self._marker_owner(store)
            names = [obj.name for obj in store.list()]
            if marker != self._owner:
                if names:
                    self.log.warning(
                        "Scratch location %s holds %d object(s) and its marker names %s, not this task instance: "
                        "left alone",
                        store,
                        len(names),
                        marker or "nobody",
                    )
                return
            others = [name for name in names if name != MARKER]
            if others:
                store.delete(others)
            store.delete([MARKER])
        self.log.info("Deleted %d object(s) this drill wrote under the scratch location %s", len(others), store)


def _in_drill(error: BaseException, plan: Mapping[str, Any], removed: bool, cause: str) -> BaseException:
    """A task error that says which drill it ended, why (its cause) and whether its scratch pipeline was removed;
    other errors as they are."""
    if type(error) not in (AirflowException, AirflowFailException):
        return error
    return type(error)(
        f"restore drill of '{plan['pipeline_name']}' from {plan['checkpoint_uuid']} of {plan['location']} failed "
        f"({CAUSES.get(cause, cause)}; scratch pipeline '{plan['scratch_pipeline_name']}' "
        f"{'removed' if removed else 'NOT removed, see the log'}): {error}"
    )
