"""What every Feldera task shares: the lazily built hook, template fields, error -> Airflow exception,
event -> outcome, the sync configuration a task's parameters ask for, and the one worker-side poll loop.

Loaded when a DAG file using an operator is parsed, so it imports nothing heavy at module level: the hook (and
httpx) load on first use of :attr:`FelderaTaskMixin.hook`, the triggers when a task waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_sync.exceptions import (
    BucketCredentialsError,
    Failure,
    FelderaApiError,
    FelderaConfigError,
    FelderaConnectionError,
    FelderaTriggerEventError,
    SyncConfigError,
    classify,
)
from airflow_checkpoint_sync.rules.sync_config import SyncConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow.sdk import Context

    from airflow_checkpoint_sync.hooks.feldera import FelderaHook
    from airflow_checkpoint_sync.object_stores.base import ObjectStore
    from airflow_checkpoint_sync.triggers.polling import FelderaPollingTrigger

#: Event statuses that end a wait well.
SUCCESS_STATUSES = frozenset({"success", "fresh"})


# -- template fields -----------------------------------------------------------------------------------------------
#: The fields every task on a Feldera pipeline templates.
FELDERA_TEMPLATE_FIELDS = ("pipeline_name", "feldera_conn_id")


def feldera_template_fields(*fields: str) -> tuple[str, ...]:
    """A Feldera task's template fields: ``pipeline_name`` and ``feldera_conn_id``, then ``fields`` (declared once,
    as the Amazon provider's ``aws_template_fields``)."""
    return tuple(dict.fromkeys((*FELDERA_TEMPLATE_FIELDS, *fields)))


# -- errors --------------------------------------------------------------------------------------------------------
def task_error(error: BaseException, action: str, pipeline_name: str, *, idempotent: bool = True) -> BaseException:
    """The Airflow exception for ``error`` while doing ``action`` on ``pipeline_name``.

    Final (``AirflowFailException``, no task retry) exactly when :func:`~airflow_checkpoint_sync.exceptions.classify`
    says FINAL; anything else is a plain ``AirflowException``, so the task's own retries apply. Exceptions that are
    not Feldera's go through unchanged.
    """
    if isinstance(error, FelderaConfigError):
        return AirflowFailException(str(error))
    if not isinstance(error, FelderaApiError):
        return error
    final = classify(error, idempotent=idempotent) is Failure.FINAL
    return (AirflowFailException if final else AirflowException)(
        f"Feldera: {action} on pipeline '{pipeline_name}' failed: {_explain(error, pipeline_name)}"
    )


def _explain(error: FelderaApiError, pipeline_name: str) -> str:
    if isinstance(error, FelderaConnectionError) and error.tls:
        return f"{error.message}. Set the connection's 'verify' extra to the CA bundle of the server."
    if error.status == 401:
        return f"the API key was rejected (HTTP 401: {error.message}). Check the connection's password."
    if error.status == 403:
        role = "it has Feldera's Read role" if error.error_code == "InsufficientPermissions" else "it is not allowed"
        return (
            f"the API key may not do this (HTTP 403 {error.error_code or ''}: {error.message}): {role}, and this "
            "needs the Write role. Give the task a connection whose API key has the Write role; sensors and "
            "checks that only read work with a Read key."
        )
    if error.error_code == "UnknownPipelineName":
        return f"there is no pipeline named '{pipeline_name}'."
    if error.status == 501 or error.error_code == "EnterpriseFeature":
        return (
            "this is Feldera's community edition; checkpoint sync, standby and activation need Feldera Enterprise "
            f"({error.message})"
        )
    return str(error)


@contextmanager
def feldera_errors(action: str, pipeline_name: str, *, idempotent: bool = True) -> Iterator[None]:
    """Turn a failed Feldera call inside the block into the right Airflow exception (:func:`task_error`)."""
    try:
        yield
    except Exception as exc:
        raise task_error(exc, action, pipeline_name, idempotent=idempotent) from exc


@contextmanager
def store_errors(doing: str, store: ObjectStore | None = None) -> Iterator[None]:
    """A store's own error (botocore's, Azure's, Google's) inside the block as a task error that says which store and
    which step: AirflowFailException, not retried, when :func:`~.object_stores.final_store_error` says a retry cannot
    help (the message then says why); AirflowException, retried, otherwise. A bad parameter fails for good."""
    from airflow_checkpoint_sync.object_stores import final_store_error

    try:
        yield
    except (AirflowException, FileNotFoundError):
        raise
    except FelderaConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:
        failed = f"{doing}{f' ({store})' if store else ''} failed: {type(exc).__name__}: {exc}"
        cause = final_store_error(exc)
        if cause is not None and store is not None:
            raise AirflowFailException(
                f"{failed} -- {cause}, which a retry does not change: check the connection '{store.conn_id}' and "
                "the location"
            ) from exc
        raise AirflowException(failed) from exc


# -- events --------------------------------------------------------------------------------------------------------
def read_enterprise_pipeline(
    hook: FelderaHook, pipeline_name: str, needs: str = "checkpoint sync, standby and activation need"
) -> dict[str, Any]:
    """The pipeline (``selector=all``), after checking that its Feldera is the Enterprise edition ``needs``."""
    with feldera_errors("reading the pipeline", pipeline_name):
        config = hook.get_config()
        pipeline = hook.get_pipeline(pipeline_name, selector="all")
    if str(config.get("edition", "")).lower() != "enterprise":
        raise AirflowFailException(
            f"Feldera at {hook.settings.base_url} is the {config.get('edition')} edition: {needs} Feldera Enterprise"
        )
    return pipeline


def record_asset_events(context: Context, outlets: Iterable[Any], extra: Mapping[str, Any]) -> None:
    """Put ``extra`` into the asset event of each Asset among the task's ``outlets`` (no outlets: nothing)."""
    outlet_events = context.get("outlet_events")  # type: ignore[call-overload]
    if outlet_events is None:
        return
    for outlet in outlets:
        if type(outlet).__name__ == "Asset":
            outlet_events[outlet].extra.update(extra)


def validate_event(event: Any, trigger: type[FelderaPollingTrigger]) -> dict[str, Any]:
    """``event`` from ``trigger``, checked; the first call of every ``execute_complete``."""
    if (
        not isinstance(event, Mapping)
        or event.get("status") not in trigger.event_statuses
        or not event.get("pipeline_name")
        or not isinstance(event.get("message"), str)
        or not isinstance(event.get("echo"), Mapping)
    ):
        raise FelderaTriggerEventError(f"unexpected event from {trigger.__name__}: {event!r}")
    return dict(event)


def outcome(
    event: Mapping[str, Any], *, on_timeout: type[AirflowException] = AirflowException, rereads: bool = False
) -> Mapping[str, Any]:
    """``event`` if it ended its wait well; otherwise the exception it stands for.

    A timeout raises ``on_timeout`` (sensors pass ``AirflowSensorTimeout``, so ``soft_fail`` applies). An ``error``
    (Feldera could not be read) is final exactly when its classification says so. Any other end (Feldera reported
    a failure, a restart) is final when its rule said so, or when the task's retry would only read the same answer
    again (``rereads``: a sensor's does; an operator's retry makes a fresh attempt, a new checkpoint or a new start).
    """
    status = event["status"]
    if status in SUCCESS_STATUSES:
        return event
    if status == "timeout":
        raise on_timeout(event["message"])
    final = bool(event.get("final")) or (rereads and status != "error")
    raise (AirflowFailException if final else AirflowException)(event["message"])


# -- sync configuration --------------------------------------------------------------------------------------------
def build_sync_config(
    *, bucket: Any, bucket_conn_id: str | None, options: Mapping[str, Any] | None, **fields: Any
) -> SyncConfig:
    """A validated SyncConfig from operator parameters and a bucket connection; a final failure names the problem."""
    from airflow_checkpoint_sync.hooks.bucket_credentials import bucket_credentials

    if options is not None and not isinstance(options, Mapping):
        raise AirflowFailException(
            f"sync_options={options!r} is not valid: a dict of Feldera sync settings, e.g. {{'transfers': 8}}"
        )
    extra = dict(options or {})
    clash = sorted(set(extra) & ({"bucket", *fields}))
    if clash:
        raise AirflowFailException(f"sync_options sets {clash}, which are parameters of their own: pass them directly")
    try:
        credentials = bucket_credentials(bucket_conn_id).sync_fields()
        # Explicit sync_options win over what the connection implies (an endpoint override, say).
        values = {**credentials, **extra, **{k: v for k, v in fields.items() if v is not None}}
        return SyncConfig.from_dict({"bucket": bucket, **values})
    except SyncConfigError as exc:
        # A key of sync_options is not a parameter of the task: say where the bad value came in.
        where = "sync_options: " if exc.field in extra else ""
        raise AirflowFailException(f"{where}{exc}") from exc
    except BucketCredentialsError as exc:
        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:  # the connection id itself does not resolve
        raise AirflowFailException(f"bucket_conn_id '{bucket_conn_id}': {exc}") from exc


# -- waiting -------------------------------------------------------------------------------------------------------
def poll(
    look: Callable[[], dict[str, Any] | None],
    *,
    poll_interval: float,
    end_time: float,
    defer: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The one worker-side wait: ``look`` until it returns an event (its rule ends every wait by ``end_time``).

    With ``defer`` (which raises ``TaskDeferred``) the task hands the wait to the triggerer after the first look.
    """
    while True:
        event = look()
        if event is not None:
            return event
        if defer is not None:
            defer()
        time.sleep(max(0.0, min(poll_interval, end_time - time.time())))


class FelderaTaskMixin:
    """Gives a task a ``hook`` for its ``feldera_conn_id`` (built on first use) and a way to wait on a trigger."""

    feldera_conn_id: str
    pipeline_name: str
    _hook: FelderaHook | None = None

    def __init__(self, **kwargs: Any) -> None:
        # Airflow wraps a task class's __init__ unless it is the very one of the next class in its MRO, and each
        # wrapper deep-copies the DAG's params once more for every task of every parse. Without this forwarding
        # __init__, a class listing the mixin first would count as defining one and get a wrapper of its own.
        super().__init__(**kwargs)

    @property
    def hook(self) -> FelderaHook:
        """The task's FelderaHook, built on first use."""
        if self._hook is None:
            from airflow_checkpoint_sync.hooks.feldera import FelderaHook

            self._hook = FelderaHook(self.feldera_conn_id)
        return self._hook

    def close_hook(self) -> None:
        """Close the hook's HTTP connections (a task that is killed or done)."""
        if self._hook is not None:
            self._hook.close()
            self._hook = None

    def on_kill(self) -> None:
        self.close_hook()

    def check_connection(self) -> None:
        """Fail for good, before any request, when the ``feldera`` connection is filled in wrongly."""
        try:
            self.hook.settings  # noqa: B018 - reading it checks it
        except Exception as exc:
            raise AirflowFailException(str(exc)) from exc

    def wait_for(
        self, trigger: FelderaPollingTrigger, *, deferrable: bool, method_name: str = "execute_complete"
    ) -> dict[str, Any]:
        """Wait on ``trigger``'s condition: in the worker, or (``deferrable``) in the triggerer after one look.

        Returns the event when the wait ends in the worker; when it defers, ``method_name`` gets the event later.
        """

        def defer() -> None:
            # The trigger enforces the deadline itself and reports it as an event.
            self.defer(trigger=trigger, method_name=method_name, timeout=None)  # type: ignore[attr-defined]

        return poll(
            lambda: trigger.look(self.hook),
            poll_interval=trigger.poll_interval,
            end_time=trigger.end_time,
            defer=defer if deferrable else None,
        )
