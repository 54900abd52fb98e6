"""The provider's errors, and the one rule that says what a failure means for whoever meets it.

Pure: no I/O, no Airflow. The hook's retries, the task's error mapping, the recovery of a lost answer and every
wait rule ask :func:`classify`, so a worker that meets an error and a trigger that meets the same error decide alike.

Every exception the provider raises of its own is in this one tree::

    FelderaError                        anything the provider raises of its own
    ├── FelderaConfigError (ValueError)    a bad parameter or connection: FINAL, nothing was changed
    │   ├── FelderaParameterError            one parameter: names it, the value (unless secret), what is accepted
    │   │   └── SyncConfigError                a sync setting Feldera would reject or that cannot work
    │   ├── FelderaConnectionConfigError     the ``feldera`` connection is filled in wrongly
    │   └── BucketCredentialsError           a bucket connection cannot become sync credentials
    ├── FelderaApiError                    a failed call to Feldera (status, error_code, message, details)
    │   ├── FelderaConnectionError           no response arrived
    │   └── FelderaWaitError                 a wait on the hook ended without success (its rule decided)
    ├── FelderaWatchError                  a watch that cannot work as set up (its trigger fails)
    └── FelderaTriggerEventError           a trigger event this task cannot read

Only the task layer's two translators (``task_support.feldera_errors`` and ``store_errors``) turn these into Airflow
exceptions, by :func:`classify`: a final failure fails the task without retries, anything else lets them run.
"""

from __future__ import annotations

import enum
from typing import Any

#: Feldera's error code when a status read names an ``incarnation_uuid`` the pipeline no longer runs as (a restart).
INCARNATION_MISMATCH = "IncarnationUuidMismatch"
#: Statuses whose answer says the server did not act: a request timeout and a rate limit.
NOT_ACTED_STATUSES = frozenset({408, 429})
#: The error code of an answer that is not the shape Feldera gives (an HTML page, invalid JSON, a wrong type).
UNEXPECTED_RESPONSE = "UnexpectedResponse"
#: 503s that prove the request never reached a pipeline that could act on it.
NOT_APPLIED_503 = frozenset({"PipelineInteractionNotDeployed", "Initializing", "AwaitingApproval"})
#: The sync settings that are secrets: never shown, in a message or anywhere else.
SECRET_SYNC_FIELDS = ("access_key", "secret_key")


class FelderaError(Exception):
    """Base of every exception the provider raises of its own (the tree is in this module's docstring)."""


class FelderaConfigError(FelderaError, ValueError):
    """A parameter or a connection is filled in wrongly: the same call would fail the same way, and nothing was
    changed (every check runs before the first request that changes anything). Raised as a ``ValueError`` when a DAG
    is parsed, so its author sees it as an import error; a task fails with it for good (no retry)."""


class FelderaParameterError(FelderaConfigError):
    """One parameter has a value that is not accepted.

    :param parameter: the parameter's name, as the DAG author wrote it.
    :param value: the value given (shown as ``***`` when ``secret``).
    :param accepted: what would be accepted, in words.
    :param secret: the value is a secret and must not appear in the message.
    """

    def __init__(self, parameter: str, value: Any, accepted: str, *, secret: bool = False) -> None:
        shown = "***" if secret else repr(value)
        super().__init__(f"{parameter}={shown} is not valid: {accepted}")
        self.parameter = parameter


class SyncConfigError(FelderaParameterError):
    """A sync setting Feldera would reject, or that cannot work; the message names the field and what is accepted
    (never the value of a secret field)."""

    def __init__(self, name: str, value: Any, accepted: str) -> None:
        super().__init__(name, value, accepted, secret=name in SECRET_SYNC_FIELDS)
        self.field = name


class FelderaConnectionConfigError(FelderaConfigError):
    """The ``feldera`` connection is filled in wrongly; the message names the field and what it accepts."""


class BucketCredentialsError(FelderaConfigError):
    """The bucket connection cannot be turned into Feldera sync credentials; the message says what to change."""


class FelderaApiError(FelderaError):
    """Any failed call to Feldera: HTTP status, Feldera's ``error_code``, message and details.

    ``status`` is None when no response arrived (see :class:`FelderaConnectionError`). The text never contains
    request headers, so the API key cannot leak through it.

    :param message: what went wrong, in Feldera's words where it gave any.
    :param status: the HTTP status, or None when no response arrived.
    :param error_code: Feldera's ``error_code`` (``UnknownPipelineName``, ...).
    :param details: Feldera's ``details`` object.
    :param retry_after: seconds the server asked the client to wait (``Retry-After``).
    :param request: the request, as ``METHOD /path``.
    :param server: the base URL of the server that answered (or did not).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        details: Any = None,
        retry_after: float | None = None,
        request: str | None = None,
        server: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.details = details
        self.retry_after = retry_after
        self.request = request
        self.server = server

    def __str__(self) -> str:
        at = f" at {self.server}" if self.server else ""
        where = f"{self.request}{at}: " if self.request else (f"{self.server}: " if self.server else "")
        code = f" {self.error_code}" if self.error_code else ""
        status = f"HTTP {self.status}{code}" if self.status is not None else "no response"
        return f"{where}{status}: {self.message}"


class FelderaConnectionError(FelderaApiError):
    """No response: the connection failed, timed out or broke.

    :param message: what happened.
    :param sent: False only when the request certainly never left (connection refused, TLS handshake failed): then
        even a request that changes something may be sent again.
    :param tls: the TLS handshake failed (a certificate problem, which waiting does not fix).
    :param request: the request, as ``METHOD /path``.
    """

    def __init__(self, message: str, *, sent: bool, tls: bool = False, request: str | None = None) -> None:
        super().__init__(message, request=request, error_code="TLSError" if tls else "ConnectionError")
        self.sent = sent
        self.tls = tls


class FelderaWaitError(FelderaApiError):
    """A wait on the hook (``FelderaHook.wait_for_pipeline_status``, ``FelderaHook.wait_for_checkpoint_sync``) that
    ended without success: Feldera reported a failure, the pipeline restarted, or the deadline passed.

    The wait's rule in :mod:`airflow_checkpoint_sync.rules.waits` decided it, as it decides for the operators, the
    sensors and the triggers; ``event`` is what the rule said. No request failed, so ``status`` (an HTTP status) is
    None. :func:`classify` calls it final exactly when the rule did.

    :param message: the rule's words.
    :param outcome: how the wait ended: ``failure``, ``restarted`` or ``timeout``.
    :param final: whether the rule called it final (trying again would meet the same answer).
    :param event: the rule's whole event (plain values: status, pipeline_name, message, final and the wait's
        fields).
    :param server: the base URL of the server waited on.
    """

    def __init__(
        self,
        message: str,
        *,
        outcome: str,
        final: bool,
        event: dict[str, Any] | None = None,
        server: str | None = None,
    ) -> None:
        super().__init__(message, server=server)
        self.outcome = outcome
        self.final = final
        self.event = dict(event or {})

    def __str__(self) -> str:
        return self.message


class FelderaWatchError(FelderaError):
    """A watch that cannot work as it is set up (an unknown pipeline, a rejected key): the same request would fail
    the same way, so its trigger fails, visibly, instead of polling quietly."""


class FelderaTriggerEventError(FelderaError):
    """A trigger event that is missing, malformed or of another version of the provider.

    Events cross the metadata database between the triggerer and the worker, and the two may run different
    versions: an event that does not look like one this task can read fails the task loudly instead of being
    guessed at.
    """


class Failure(enum.StrEnum):
    """What a failed request means for the one who sent it."""

    #: The same request would fail the same way: a wrong key, an unknown pipeline, a rejected request.
    FINAL = "final"
    #: Trying again may work, and cannot do anything twice.
    RETRYABLE = "retryable"
    #: A request that changes something got no clear answer: it may have taken effect. Look, do not re-send.
    MAYBE_APPLIED = "maybe_applied"
    #: The pipeline process restarted since the request's ``incarnation_uuid``: what it was asked about is gone.
    RESTARTED = "restarted"


def is_not_found(error: BaseException) -> bool:
    """Whether ``error`` says what the request named does not exist (HTTP 404: no such pipeline, or a 404 on a
    path of it): the one reading of "gone" for whoever deletes, finds or cleans up."""
    return isinstance(error, FelderaApiError) and error.status == 404


def classify(error: BaseException, *, idempotent: bool = True) -> Failure:
    """What ``error`` means for a request that is (or is not) ``idempotent``.

    Any other exception than the provider's own (a bug, say) counts as RETRYABLE, as Airflow treats it.
    """
    if isinstance(error, FelderaConfigError):
        return Failure.FINAL
    if not isinstance(error, FelderaApiError):
        return Failure.RETRYABLE
    if error.error_code == INCARNATION_MISMATCH:
        return Failure.RESTARTED
    if isinstance(error, FelderaWaitError):
        # The wait's rule already said what its end means.
        if error.outcome == "restarted":
            return Failure.RESTARTED
        return Failure.FINAL if error.final else Failure.RETRYABLE
    if isinstance(error, FelderaConnectionError):
        if error.tls:
            return Failure.FINAL
        return Failure.RETRYABLE if idempotent or not error.sent else Failure.MAYBE_APPLIED
    status = error.status or 0
    if error.error_code == UNEXPECTED_RESPONSE:
        # Something answered that is not Feldera's API as the provider knows it (a proxy page, a broken body): a
        # read may be tried again; a request that changes something may have been applied.
        return Failure.RETRYABLE if idempotent else Failure.MAYBE_APPLIED
    if status == 501 or error.error_code == "EnterpriseFeature":
        return Failure.FINAL
    if status in NOT_ACTED_STATUSES or (status == 503 and error.error_code in NOT_APPLIED_503):
        return Failure.RETRYABLE
    if status >= 500:
        # A 5xx from a proxy or the manager may hide a request that reached the pipeline.
        return Failure.RETRYABLE if idempotent else Failure.MAYBE_APPLIED
    return Failure.FINAL
