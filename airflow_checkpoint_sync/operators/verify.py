"""VerifyCheckpointsOperator: prove a sync location or a replica holds every checkpoint its catalog names."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.bucket_layout import CATALOG
from airflow_checkpoint_sync.rules.replication import written_md5
from airflow_checkpoint_sync.rules.status import freshness, newest_uuid
from airflow_checkpoint_sync.rules.sync_config import EFFECTIVE_DEFAULTS, current_sync, effective_sync
from airflow_checkpoint_sync.rules.verification import (
    Retention,
    deleted_by_next_push,
    manifest_files,
    manifest_name,
    named_checkpoints,
    read_content_problem,
    verify_location,
)
from airflow_checkpoint_sync.task_support import (
    FelderaTaskMixin,
    feldera_errors,
    feldera_template_fields,
    store_errors,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_checkpoint_sync.object_stores.base import ObjectStore
    from airflow_checkpoint_sync.rules.replication import StoredObject
    from airflow_checkpoint_sync.rules.verification import Verification

#: Problems quoted in the task's error; the report in XCom has them all.
QUOTED_PROBLEMS = 10


class VerifyCheckpointsOperator(FelderaTaskMixin, BaseOperator):
    """Check that a checkpoint sync location, or a replica of one, can give back every checkpoint it names.

    It reads, and never writes, repairs or deletes anything. It checks:

    * the catalog ``checkpoints.feldera`` exists and is Feldera's list of checkpoints, each a UUIDv7;
    * every checkpoint the catalog names has its manifest (``dependencies/<uuid>.json``) and every file that manifest
      names, not empty, and at its recorded size where the manifest records one;
    * every object a replication copied still holds the content it wrote: the store's MD5 of it is the one its copy
      mark recorded (a copy changed after it was made, whether its metadata survived or not); in a replica, an
      object without a copy mark is named as not written by a replication. Copies the store keeps no MD5 of (an S3
      multipart upload) are judged by presence and size only, and counted as such in the report
      (``judged_by_size_only``). With ``verify_content`` every named file's content is read and checked against
      the store's MD5, or where the store has none, against the MD5 its copy mark recorded;
    * with ``max_checkpoint_age``, the newest checkpoint is recent enough.

    What it cannot judge it reports in ``cannot_judge`` and logs, never as damage: a location with no manifest under
    ``dependencies/`` (Feldera documents that layout for multihost pipelines; a single-host one is not public) has
    only its catalog checked, and a manifest in an unknown format is named.

    Each problem says its remedy: a copy whose content changed is copied anew by running the replication again; an
    object without a copy mark, by running it again with ``repair=True``. A store error that a retry cannot change
    (a bucket or container that does not exist, refused credentials, denied access) fails the task without retries;
    others (timeouts, server errors, dropped connections) are retried.

    It fails listing every problem found; the report is its XCom either way (``return_value``)::

        {"location": "s3://bucket/prod", "checkpoints": 3, "newest_checkpoint_uuid": "0199...",
         "newest_checkpoint_age_seconds": 42.0, "objects": 11, "bytes": 52811, "files_checked": 6,
         "judged_by_size_only": 0, "problems": [], "uncatalogued": [], "cannot_judge": [], "retention": {...},
         "retention_deletes_next": ["0198..."], "ok": true}

    ``retention_deletes_next`` are the checkpoints Feldera's retention deletes at the pipeline's next push, from
    ``retention_min_count`` and ``retention_min_age``: given here, or read from ``pipeline_name``'s sync
    configuration, or Feldera's defaults (10 checkpoints, 30 days). Feldera's bucket format is not public; what this
    can and cannot check of it is in :mod:`airflow_checkpoint_sync.rules.verification` and the docs.

    .. seealso::
        :ref:`howto/operator:VerifyCheckpointsOperator`

    :param store_conn_id: connection of the store: ``aws`` (S3 or S3-compatible, through its ``endpoint_url``),
        ``google_cloud_platform`` or ``wasb``. (templated)
    :param location: ``bucket[/prefix]`` (``container[/prefix]`` for Azure): the pipeline's sync ``bucket`` or a
        replica of it. (templated)
    :param pipeline_name: the pipeline whose retention settings apply (read from its sync configuration), when
        ``retention_min_count`` and ``retention_min_age`` are not both given. (templated)
    :param feldera_conn_id: the ``feldera`` Airflow connection, used only with ``pipeline_name``. (templated)
    :param retention_min_count: Feldera's ``retention_min_count`` for the forecast.
    :param retention_min_age: Feldera's ``retention_min_age``, in days, for the forecast.
    :param max_checkpoint_age: fail when the newest checkpoint is older than this, in seconds or as a timedelta.
    :param verify_content: also read every named file and check it against the store's MD5, or the MD5 its copy
        mark recorded where the store has none (slower: it reads the whole location).
    :param max_concurrency: files read at the same time by ``verify_content``, 1 to 32.
    """

    template_fields: Sequence[str] = feldera_template_fields("store_conn_id", "location")
    ui_color = "#c7e3ff"

    def __init__(
        self,
        *,
        store_conn_id: str,
        location: str,
        pipeline_name: str | None = None,
        feldera_conn_id: str = "feldera_default",
        retention_min_count: int | None = None,
        retention_min_age: int | None = None,
        max_checkpoint_age: float | dt.timedelta | None = None,
        verify_content: bool = False,
        max_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        params.optional_count(retention_min_count, "retention_min_count")
        params.optional_count(retention_min_age, "retention_min_age")
        max_checkpoint_age = params.optional_positive_seconds(max_checkpoint_age, "max_checkpoint_age")
        self.store_conn_id = store_conn_id
        self.location = location
        self.pipeline_name = pipeline_name  # type: ignore[assignment]
        self.feldera_conn_id = feldera_conn_id
        self.retention_min_count = retention_min_count
        self.retention_min_age = retention_min_age
        self.max_checkpoint_age = max_checkpoint_age
        self.verify_content = params.flag(verify_content, "verify_content")
        self.max_concurrency = params.max_concurrency(max_concurrency)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_checkpoint_sync.object_stores import STORE_TYPES, store_for

        with store_errors("connecting to the location"):
            store = store_for(self.store_conn_id, self.location, "store_conn_id", STORE_TYPES, "location")
        retention = self._retention()
        report = self.report(store, retention)
        if report["problems"]:
            context["ti"].xcom_push(key="return_value", value=report)
            problems = report["problems"]
            quoted = "; ".join(problems[:QUOTED_PROBLEMS])
            hidden = len(problems) - QUOTED_PROBLEMS
            more = f"; and {hidden} more (all in the report)" if hidden > 0 else ""
            raise AirflowFailException(f"{store} failed verification, {len(problems)} problem(s): {quoted}{more}")
        self.log.info(
            "%s verified: %d checkpoint(s), newest %s (%s s old); %d files checked; %d objects, %d bytes (%d copies "
            "judged by presence and size only: the store has no MD5 of them); retention (%s) deletes %s at the next "
            "push",
            store,
            report["checkpoints"],
            report["newest_checkpoint_uuid"],
            report["newest_checkpoint_age_seconds"],
            report["files_checked"],
            report["objects"],
            report["bytes"],
            report["judged_by_size_only"],
            report["retention"]["source"],
            ", ".join(report["retention_deletes_next"]) or "nothing",
        )
        for what in report["cannot_judge"]:
            self.log.warning("%s: could not judge: %s", store, what)
        return report

    def _retention(self) -> Retention:
        """The retention settings to forecast with: given, else the pipeline's, else Feldera's defaults."""
        count, age, source = self.retention_min_count, self.retention_min_age, "given"
        if (count is None or age is None) and self.pipeline_name:
            with feldera_errors("reading the pipeline's sync configuration", self.pipeline_name):
                name = params.pipeline_name(self.pipeline_name)
                pipeline = self.hook.get_pipeline(name, selector="all")
            sync = effective_sync(current_sync(pipeline.get("runtime_config")))
            if sync is None:
                raise AirflowFailException(f"pipeline '{name}' has no checkpoint sync configured: no retention to read")
            count = sync["retention_min_count"] if count is None else count
            age = sync["retention_min_age"] if age is None else age
            source = f"pipeline '{name}'"
        elif count is None or age is None:
            source = "Feldera's defaults" if count is None and age is None else "given, and Feldera's defaults"
        return Retention(
            int(EFFECTIVE_DEFAULTS["retention_min_count"] if count is None else count),
            int(EFFECTIVE_DEFAULTS["retention_min_age"] if age is None else age),
            source,
        )

    def report(self, store: ObjectStore, retention: Retention) -> dict[str, Any]:
        """Read ``store`` and judge it: the report the task returns."""

        with store_errors("listing the location", store):
            listing = store.with_copy_marks(store.list())
        names = {obj.name for obj in listing}
        catalog = self._read(store, CATALOG) if CATALOG in names else None
        manifests = {
            uuid: self._read(store, manifest_name(uuid)) if manifest_name(uuid) in names else None
            for uuid in named_checkpoints(catalog)
        }
        verdict = verify_location(catalog, listing, manifests)
        if self.verify_content:
            named = {f.name for body in manifests.values() if body for f in manifest_files(body) or ()}
            read = [o for o in listing if o.name in named]
            verdict.problems += self._content_problems(store, read)
            # A read judged the content of every copy whose mark records an MD5, even where the store has none.
            judged = {o.name for o in read if written_md5(o)}
            verdict.judged_by_size_only = tuple(n for n in verdict.judged_by_size_only if n not in judged)
        now = dt.datetime.now(dt.UTC)
        newest = newest_uuid(verdict.checkpoints)
        age = freshness(str(store), newest, self.max_checkpoint_age or float("inf"), now)
        if newest and age.problem:
            verdict.problems.append(f"newest checkpoint {newest}: {age.problem}")
        elif newest and age.state == "stale":
            verdict.problems.append(
                f"newest checkpoint {newest} is {age.age_seconds:.0f}s old: older than max_checkpoint_age "
                f"{self.max_checkpoint_age:g}s"
            )
        return self._as_report(store, listing, verdict, retention, newest, age.age_seconds, now)

    def _as_report(
        self,
        store: ObjectStore,
        listing: list[StoredObject],
        verdict: Verification,
        retention: Retention,
        newest: str | None,
        age: float | None,
        now: dt.datetime,
    ) -> dict[str, Any]:
        return {
            "location": str(store),
            "checkpoints": len(verdict.checkpoints),
            "checkpoint_uuids": list(verdict.checkpoints),
            "newest_checkpoint_uuid": newest,
            "newest_checkpoint_age_seconds": age,
            "objects": len(listing),
            "bytes": sum(obj.size for obj in listing),
            "files_checked": verdict.files_checked,
            "judged_by_size_only": len(verdict.judged_by_size_only),
            "problems": list(verdict.problems),
            "uncatalogued": list(verdict.uncatalogued),
            "cannot_judge": list(verdict.cannot_judge),
            "retention": {
                "min_count": retention.min_count,
                "min_age_days": retention.min_age_days,
                "source": retention.source,
            },
            "retention_deletes_next": list(deleted_by_next_push(verdict.checkpoints, retention, now)),
            "ok": not verdict.problems,
        }

    @staticmethod
    def _read(store: ObjectStore, name: str) -> bytes | None:
        from airflow_checkpoint_sync.object_stores import read_object

        # None when deleted between the listing and the read: reported as missing.
        with store_errors(f"reading {name}", store):
            return read_object(store, name)

    def _content_problems(self, store: ObjectStore, objects: list[StoredObject]) -> list[str]:
        from airflow_checkpoint_sync.object_stores.base import VerifyingReader

        def check(obj: StoredObject) -> str | None:
            reader = VerifyingReader(store.chunks(obj.name))
            with store_errors(f"reading {obj.name}", store):
                while reader.read(1024 * 1024):
                    pass
            return read_content_problem(obj, reader.size, reader.md5_hex)

        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="verify") as pool:
            return [problem for problem in pool.map(check, objects) if problem]
