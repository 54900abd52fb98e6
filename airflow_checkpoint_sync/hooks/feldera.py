"""FelderaHook: the Feldera REST API through an Airflow ``feldera`` connection, for workers and triggers alike.

The connection is read in :mod:`~airflow_checkpoint_sync.hooks.connection`, bytes move in
:mod:`~airflow_checkpoint_sync.hooks.transport`, requests are built and answers read in
:mod:`~airflow_checkpoint_sync.hooks.feldera_api`; here are the endpoints, the retries, the connection test, and
the waits that ``@task`` code can call.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_checkpoint_sync.exceptions import (
    FelderaApiError,
    FelderaConnectionError,
    FelderaParameterError,
    FelderaWaitError,
)
from airflow_checkpoint_sync.hooks import feldera_api as api
from airflow_checkpoint_sync.hooks import transport
from airflow_checkpoint_sync.hooks.connection import settings_of
from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy, FelderaRequest, Flow
from airflow_checkpoint_sync.rules import params
from airflow_checkpoint_sync.rules.status import is_uuid, listed_uuids
from airflow_checkpoint_sync.rules.waits import pipeline_wait, sync_wait

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterator, Callable, Sequence

    import httpx

    from airflow_checkpoint_sync.hooks.connection import FelderaConnectionSettings
    from airflow_checkpoint_sync.rules.status import SyncResult

T = TypeVar("T")

#: The pipeline fields :meth:`FelderaHook.wait_for_pipeline_status` can watch.
PIPELINE_STATUS_FIELDS = ("deployment_status", "program_status", "storage_status")


class _Attempts:
    """Book-keeping for one call's retries and time limits, shared by the sync and async transports."""

    def __init__(self, hook: FelderaHook, settings: FelderaConnectionSettings, request: FelderaRequest) -> None:
        self._policy = hook.retry_policy
        self._request = request
        self._settings = settings
        self._hook = hook
        self._started = time.monotonic()
        self._attempt = 1

    def timeout(self) -> float:
        """Seconds the next attempt may take in all (connect, send, the whole answer): the connection's timeout,
        cut to what is left before the task's deadline, if it set one, but never under a second."""
        remaining = math.inf if self._hook.deadline is None else self._hook.deadline - time.time()
        return max(1.0, min(self._settings.timeout, remaining))

    def backoff(self, error: FelderaApiError) -> float:
        """Seconds to wait before trying again; re-raises ``error`` when the policy, or the deadline, says give up."""
        self._settings.scrub(error)
        delay = self._policy.delay(self._attempt, error, self._request, time.monotonic() - self._started)
        if delay is None or (self._hook.deadline is not None and time.time() + delay >= self._hook.deadline):
            raise error
        self._hook.log.warning(
            "Feldera %s failed (%s); retrying in %.1fs (attempt %d of %d)",
            self._request.describe(),
            error,
            delay,
            self._attempt + 1,
            self._policy.max_attempts,
        )
        self._attempt += 1
        return delay


def _may_write(client: httpx.Client, timeout: float) -> bool | None:
    """Whether the connection's key may change pipelines, asked with :func:`~airflow_checkpoint_sync.hooks.
    feldera_api.write_probe` (which changes nothing); None when the answer says neither."""
    import secrets

    try:
        transport.send_once(client, api.write_probe(secrets.token_hex(8)), timeout)
    except FelderaApiError as exc:
        if exc.status == 403:
            return False
        return True if exc.status == 404 else None
    return None  # a pipeline of that name exists after all: the answer tells nothing


class FelderaAsyncSession:
    """Async access to Feldera over the event loop's shared client for the connection (see
    :mod:`~airflow_checkpoint_sync.hooks.transport`: every wait in a triggerer on one Feldera shares a pool of
    at most 20 connections)."""

    def __init__(self, shared: transport.SharedClient, hook: FelderaHook, settings: FelderaConnectionSettings) -> None:
        self._shared = shared
        self._hook = hook
        self._settings = settings

    async def send(self, request: FelderaRequest) -> Any:
        """Send one request with retries; the parsed body, or a FelderaApiError.

        A caller cancelled mid-request stops waiting at once, but the request it started still completes in the
        background (so no cancellation reaches the shared pool) and its answer is dropped: a mutating request that
        was cancelled may still have taken effect.
        """
        attempts = _Attempts(self._hook, self._settings, request)
        while True:
            try:
                return await transport.asend_once(self._shared, request, attempts.timeout())
            except FelderaApiError as error:
                await asyncio.sleep(attempts.backoff(error))

    async def run(self, flow: Flow[T]) -> T:
        """Run a multi-step read (see :mod:`~airflow_checkpoint_sync.hooks.feldera_api`) over this session."""
        return await api.arun_flow(flow, self.send)


class FelderaHook(BaseHook):
    """Talk to Feldera's pipeline manager through an Airflow connection of type ``feldera``.

    The connection's host is the API URL (``https://feldera.example.com``, with a port if needed), its password the
    API key, and its extras ``verify`` (true/false or a CA bundle path), ``timeout`` (seconds), ``tenant`` and
    ``console_url``. See :ref:`the connection guide <howto/connection:feldera>`.

    Every call retries what :func:`~airflow_checkpoint_sync.exceptions.classify` calls retryable (connection
    errors, 408, 429 with ``Retry-After``, 5xx but 501) with bounded exponential backoff, except that a request
    which is not idempotent (taking a checkpoint, starting a sync) is re-sent only when the failure proves it
    never took effect.

    :param feldera_conn_id: the Airflow connection to use.
    :param retry_policy: the backoff for retryable failures; see
        :class:`~airflow_checkpoint_sync.hooks.feldera_api.BackoffPolicy`.
    """

    conn_name_attr = "feldera_conn_id"
    default_conn_name = "feldera_default"
    conn_type = "feldera"
    hook_name = "Feldera"

    def __init__(self, feldera_conn_id: str = default_conn_name, retry_policy: BackoffPolicy | None = None) -> None:
        super().__init__()
        self.feldera_conn_id = feldera_conn_id
        self.retry_policy = retry_policy or BackoffPolicy()
        #: When set (seconds since the epoch), no call runs past it: attempts are cut short and not retried beyond.
        self.deadline: float | None = None
        self._settings: FelderaConnectionSettings | None = None
        self._client: httpx.Client | None = None

    # -- connection ----------------------------------------------------------------------------------------------
    @property
    def settings(self) -> FelderaConnectionSettings:
        """The checked connection settings (fetched once per hook)."""
        if self._settings is None:
            self._settings = settings_of(self.feldera_conn_id, self.get_connection(self.feldera_conn_id))
            if self._settings.api_key:
                from airflow.sdk.log import mask_secret

                # Airflow masks the password as stored; the key as sent (stripped) must be masked too.
                mask_secret(self._settings.api_key)
        return self._settings

    async def async_settings(self) -> FelderaConnectionSettings:
        """The settings, fetched without blocking the triggerer's event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

            conn = await get_async_connection(self.feldera_conn_id, hook=self)
            self._settings = settings_of(self.feldera_conn_id, conn, await get_async_extra_dejson(conn))
        return self._settings

    def pipeline_url(self, pipeline_name: str) -> str:
        """The pipeline's page in the Feldera web console."""
        return self.settings.pipeline_url(pipeline_name)

    # -- transport -----------------------------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        if self._client is None:
            settings = self.settings
            if settings.verify is False:
                self.log.warning("TLS verification is off for Feldera connection '%s'", self.feldera_conn_id)
            self._client = transport.http_client(settings)
        return self._client

    def close(self) -> None:
        """Close the HTTP connections this hook opened."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> FelderaHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, request: FelderaRequest) -> Any:
        """Send one request with retries; the parsed body, or a FelderaApiError (naming the server, never the key)."""
        attempts = _Attempts(self, self.settings, request)
        while True:
            try:
                return transport.send_once(self._http(), request, attempts.timeout())
            except FelderaApiError as error:
                time.sleep(attempts.backoff(error))

    def run(self, flow: Flow[T]) -> T:
        """Run a multi-step read (see :mod:`~airflow_checkpoint_sync.hooks.feldera_api`) with :meth:`send`."""
        return api.run_flow(flow, self.send)

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[FelderaAsyncSession]:
        """An async session over the loop's shared client for this connection, given back when the block ends."""
        settings = await self.async_settings()
        async with transport.shared_client(settings) as shared:
            yield FelderaAsyncSession(shared, self, settings)

    # -- endpoints -----------------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """``GET /v0/config``: edition and version of the Feldera instance."""
        result: dict[str, Any] = self.send(api.get_config())
        return result

    def get_pipeline(self, pipeline_name: str, selector: str = "status") -> dict[str, Any]:
        """``GET /v0/pipelines/{name}``; ``selector="all"`` includes the runtime config."""
        result: dict[str, Any] = self.send(api.get_pipeline(pipeline_name, selector))
        return result

    def get_stats(self, pipeline_name: str) -> dict[str, Any]:
        """``GET /stats``: the running pipeline's metrics, including its ``incarnation_uuid``."""
        result: dict[str, Any] = self.send(api.get_stats(pipeline_name))
        return result

    def list_checkpoints(self, pipeline_name: str) -> list[dict[str, Any]]:
        """``GET /checkpoints``: the pipeline's local checkpoints, oldest first."""
        result: list[dict[str, Any]] = self.send(api.list_checkpoints(pipeline_name))
        return result

    def take_checkpoint(self, pipeline_name: str) -> dict[str, Any]:
        """``POST /checkpoint``: ``{checkpoint_sequence_number, incarnation_uuid}``; the checkpoint completes later."""
        result: dict[str, Any] = self.send(api.take_checkpoint(pipeline_name))
        return result

    def checkpoint_status(self, pipeline_name: str, incarnation_uuid: str | None = None) -> dict[str, Any]:
        """``GET /checkpoint_status``: ``{success, failure}`` of the current process."""
        result: dict[str, Any] = self.send(api.checkpoint_status(pipeline_name, incarnation_uuid))
        return result

    def sync_checkpoint(self, pipeline_name: str) -> dict[str, Any]:
        """``POST /checkpoint/sync``: pushes the newest local checkpoint; ``{checkpoint_uuid, incarnation_uuid}``."""
        result: dict[str, Any] = self.send(api.sync_checkpoint(pipeline_name))
        return result

    def sync_status(self, pipeline_name: str, incarnation_uuid: str | None = None) -> dict[str, Any]:
        """``GET /checkpoint/sync_status``: ``{success, failure, periodic[, running]}``."""
        result: dict[str, Any] = self.send(api.sync_status(pipeline_name, incarnation_uuid))
        return result

    def remote_checkpoints(self, pipeline_name: str) -> list[str]:
        """``GET /checkpoints/remote``: the uuids in the pipeline's bucket."""
        return listed_uuids(self.send(api.remote_checkpoints(pipeline_name)))

    def sync_progress(self, pipeline_name: str, checkpoint_uuid: str, incarnation_uuid: str | None) -> SyncResult:
        """Where the sync of ``checkpoint_uuid`` stands (an UNKNOWN status is settled from the bucket's listing).

        Raises FelderaApiError with ``error_code == "IncarnationUuidMismatch"`` if the pipeline restarted.
        """
        return self.run(api.read_sync_progress(pipeline_name, checkpoint_uuid, incarnation_uuid))

    def newest_synced_checkpoint(self, pipeline_name: str) -> str | None:
        """The newest checkpoint synced to the pipeline's bucket (by UUIDv7 time), or None if nothing is synced."""
        return self.run(api.read_newest_synced(pipeline_name))

    # -- endpoints that change something -------------------------------------------------------------------------
    def patch_runtime_config(self, pipeline_name: str, runtime_config: Mapping[str, Any]) -> None:
        """``PATCH /pipelines/{name}`` with the whole ``runtime_config`` (Feldera replaces it, it does not merge)."""
        self.send(api.patch_runtime_config(pipeline_name, runtime_config))

    def start_pipeline(self, pipeline_name: str, initial: str) -> None:
        """``POST /start?initial=running|paused|standby``; the pipeline gets there later."""
        self.send(api.start_pipeline(pipeline_name, initial))

    def stop_pipeline(self, pipeline_name: str, *, force: bool) -> None:
        """``POST /stop``: gracefully (a final checkpoint first) unless ``force``."""
        self.send(api.stop_pipeline(pipeline_name, force))

    def activate_pipeline(self, pipeline_name: str, initial: str) -> None:
        """``POST /activate?initial=running|paused``: a standby pulls the newest checkpoint once more, then runs."""
        self.send(api.activate_pipeline(pipeline_name, initial))

    def clear_storage(self, pipeline_name: str) -> None:
        """``POST /clear``: delete a stopped pipeline's local storage."""
        self.send(api.clear_storage(pipeline_name))

    def put_pipeline(self, pipeline_name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /pipelines/{name}``: create the pipeline, or replace a stopped one, with ``body``'s program and
        configuration; Feldera compiles it afterwards (``program_status``)."""
        result: dict[str, Any] = self.send(api.put_pipeline(pipeline_name, body))
        return result

    def delete_pipeline(self, pipeline_name: str) -> None:
        """``DELETE /pipelines/{name}``: Feldera refuses unless the pipeline is stopped and its storage cleared."""
        self.send(api.delete_pipeline(pipeline_name))

    def query(self, pipeline_name: str, sql: str) -> list[dict[str, Any]]:
        """``GET /query?format=json``: an ad-hoc SQL query on a running or paused pipeline, its rows as dicts."""
        request = api.adhoc_query(pipeline_name, sql)
        return api.query_rows(self.send(request), request)

    # -- waits, for @task code ----------------------------------------------------------------------------------
    def wait_for_pipeline_status(
        self,
        pipeline_name: str,
        targets: str | Sequence[str],
        *,
        timeout: float | dt.timedelta = 1800.0,
        poll_interval: float | dt.timedelta = 2.0,
        field: str = "deployment_status",
    ) -> dict[str, Any]:
        """Read the pipeline every ``poll_interval`` until its ``field`` is one of ``targets``.

        Decided by :func:`~airflow_checkpoint_sync.rules.waits.pipeline_wait`, as for the operators and
        :class:`~airflow_checkpoint_sync.triggers.pipeline.PipelineStatusTrigger`: a deployment error,
        AwaitingApproval (unless a target), a standby start that skipped Standby, a pipeline stopped meanwhile, or a
        failed compilation (``field="program_status"``) ends the wait at once.

        :param pipeline_name: the pipeline.
        :param targets: the value, or values, that end the wait well: ``"Running"``, ``["Running", "Paused"]``.
        :param timeout: how long to wait, in seconds or a timedelta.
        :param poll_interval: how long between reads, in seconds or a timedelta.
        :param field: the field to watch: ``deployment_status``, ``program_status`` or ``storage_status``.
        :return: the pipeline as last read (``selector=all`` when watching ``program_status``, else ``status``).
        :raises ~airflow_checkpoint_sync.exceptions.FelderaWaitError: the wait failed or timed out (``outcome``).
        :raises ~airflow_checkpoint_sync.exceptions.FelderaApiError: the pipeline could not be read after the
            hook's retries (an unknown pipeline, a rejected key, Feldera unreachable).
        :raises ValueError: an argument is not valid; nothing was sent.
        """
        params.pipeline_name(pipeline_name)
        wanted = [targets] if isinstance(targets, str) else targets
        if isinstance(wanted, Mapping) or not wanted or not all(isinstance(t, str) and t for t in wanted):
            raise FelderaParameterError("targets", targets, "a status, or a list of them, e.g. 'Running'")
        if field not in PIPELINE_STATUS_FIELDS:
            raise FelderaParameterError("field", field, f"one of {', '.join(PIPELINE_STATUS_FIELDS)}")
        end_time = time.time() + params.positive_seconds(timeout, "timeout")
        wait_s = params.positive_seconds(poll_interval, "poll_interval")
        selector = "all" if field == "program_status" else "status"  # only the full view has program_error

        def decide(pipeline: Any, error: BaseException | None, now: float) -> dict[str, Any] | None:
            return pipeline_wait(
                pipeline_name=pipeline_name,
                pipeline=pipeline,
                error=error,
                targets=list(wanted),
                end_time=end_time,
                now=now,
                field=field,
            )

        pipeline: dict[str, Any] = self._wait(
            lambda: api.read_pipeline(pipeline_name, selector), decide, end_time=end_time, poll_interval=wait_s
        )
        return pipeline

    def wait_for_checkpoint_sync(
        self,
        pipeline_name: str,
        checkpoint_uuid: str,
        *,
        incarnation_uuid: str | None = None,
        timeout: float | dt.timedelta = 3600.0,
        poll_interval: float | dt.timedelta = 5.0,
        unknown_grace: float | dt.timedelta | None = 60.0,
    ) -> SyncResult:
        """Read the sync of ``checkpoint_uuid`` every ``poll_interval`` until it succeeds, fails or times out.

        Decided by :func:`~airflow_checkpoint_sync.rules.waits.sync_wait`, as for
        :class:`~airflow_checkpoint_sync.operators.checkpoint.SyncCheckpointOperator` and
        :class:`~airflow_checkpoint_sync.sensors.checkpoint.CheckpointStatusSensor`: a uuid in the sync status's
        ``success`` or ``periodic``, or listed in the bucket, is synced.

        :param pipeline_name: the pipeline that syncs.
        :param checkpoint_uuid: the checkpoint, e.g. the ``checkpoint_uuid`` :meth:`sync_checkpoint` answered.
        :param incarnation_uuid: the pipeline process that started the sync (``sync_checkpoint`` answers it too):
            a restart since then ends the wait (outcome ``restarted``) instead of leaving it on a status that is
            gone. None reads the status of the current process.
        :param timeout: how long to wait, in seconds or a timedelta.
        :param poll_interval: how long between reads, in seconds or a timedelta.
        :param unknown_grace: how long a uuid that Feldera neither syncs nor lists in the bucket may stay so before
            the wait fails for good (a uuid of another pipeline, a typo), in seconds or a timedelta; None waits for
            it until ``timeout``.
        :return: the sync's last reading, its ``state`` ``success`` and its ``evidence`` how that was established.
        :raises ~airflow_checkpoint_sync.exceptions.FelderaWaitError: the sync failed (Feldera's error in the
            message and ``event["error"]``), the pipeline restarted, or the wait timed out (``outcome``).
        :raises ~airflow_checkpoint_sync.exceptions.FelderaApiError: the status could not be read after the hook's
            retries.
        :raises ValueError: an argument is not valid; nothing was sent.
        """
        params.pipeline_name(pipeline_name)
        if not is_uuid(checkpoint_uuid):
            raise FelderaParameterError("checkpoint_uuid", checkpoint_uuid, "a uuid in lower case")
        if incarnation_uuid is not None and not is_uuid(incarnation_uuid):
            raise FelderaParameterError("incarnation_uuid", incarnation_uuid, "None or a uuid")
        started = time.time()
        end_time = started + params.positive_seconds(timeout, "timeout")
        wait_s = params.positive_seconds(poll_interval, "poll_interval")
        grace_until = (
            None if unknown_grace is None else started + params.positive_seconds(unknown_grace, "unknown_grace")
        )

        def decide(result: Any, error: BaseException | None, now: float) -> dict[str, Any] | None:
            return sync_wait(
                pipeline_name=pipeline_name,
                checkpoint_uuid=checkpoint_uuid,
                incarnation_uuid=incarnation_uuid,
                result=result,
                error=error,
                end_time=end_time,
                now=now,
                unknown_grace_until=grace_until,
            )

        progress: SyncResult = self._wait(
            lambda: api.read_sync_progress(pipeline_name, checkpoint_uuid, incarnation_uuid),
            decide,
            end_time=end_time,
            poll_interval=wait_s,
        )
        return progress

    def _wait(
        self,
        reads: Callable[[], Flow[Any]],
        decide: Callable[[Any, BaseException | None, float], dict[str, Any] | None],
        *,
        end_time: float,
        poll_interval: float,
    ) -> Any:
        """Run ``reads`` until ``decide`` (a rule of :mod:`~airflow_checkpoint_sync.rules.waits`) ends the wait; the
        last reading when it ended well, else the read's own error or a FelderaWaitError."""
        settings = self.settings  # a connection filled in wrongly fails here, before any request
        outer = self.deadline
        # No read, retries included, outlives the wait's deadline by more than a second.
        self.deadline = end_time if outer is None else min(outer, end_time)
        try:
            while True:
                result, error = None, None
                try:
                    result = self.run(reads())
                except Exception as exc:  # the rule decides what a failed read means
                    error = exc
                event = decide(result, error, time.time())
                if event is not None:
                    break
                time.sleep(max(0.0, min(poll_interval, end_time - time.time())))
        finally:
            self.deadline = outer
        if event["status"] == "success":
            return result
        if event["status"] == "error" and error is not None:
            raise error  # what the hook's own call would have raised: Feldera's status and error code
        raise FelderaWaitError(
            event["message"],
            outcome=str(event["status"]),
            final=bool(event.get("final")),
            event=event,
            server=settings.base_url,
        ) from error

    # -- connection test -----------------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check the connection in a few seconds: reachable, TLS, API key, edition. Never raises."""
        try:
            settings = self.settings
        except Exception as exc:
            return False, str(exc)
        try:
            # One attempt with a short timeout: a connection test answers in seconds, it does not wait out outages.
            with transport.http_client(settings) as client:
                config = transport.send_once(client, api.get_config(), min(settings.timeout, 10.0))
                can_write = _may_write(client, min(settings.timeout, 10.0))
        except FelderaConnectionError as exc:
            settings.scrub(exc)
            if exc.tls:
                return False, f"TLS verification failed for {settings.base_url}: {exc.message}"
            return False, f"Cannot reach Feldera at {settings.base_url}: {exc.message}"
        except FelderaApiError as exc:
            settings.scrub(exc)
            if exc.status == 401:
                return False, f"Feldera at {settings.base_url} rejected the API key (HTTP 401 {exc.error_code or ''})"
            return False, f"Feldera at {settings.base_url} answered {exc}"
        edition = str((config or {}).get("edition", ""))
        version = str((config or {}).get("version", "?"))
        if edition.lower() != "enterprise":
            return False, (
                f"Connected to Feldera {edition or 'of an unknown edition'} {version} at {settings.base_url}, "
                "but checkpoint sync needs Feldera Enterprise"
            )
        connected = f"Connected to Feldera Enterprise {version} at {settings.base_url}"
        if can_write is False:
            return True, (
                f"{connected}; the API key is read-only (Feldera's Read role): sensors, freshness checks, "
                "verification and failover readiness work with it, but tasks that change pipelines (sync, restore, "
                "activate, drill) need a key with the Write role"
            )
        if can_write is None:
            return True, f"{connected}; whether the API key may change pipelines could not be told"
        return True, f"{connected}; the API key may change pipelines (Write role)"
