"""Feldera's error body, and the errors the sandbox answers with."""

from __future__ import annotations

from typing import Any


class FelderaError(Exception):
    """An error answered as Feldera's ``ErrorResponse``: ``{message, error_code, details}``."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        details: Any = None,
        *,
        include_details: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details = details
        self.include_details = include_details

    def body(self) -> dict[str, Any]:
        """The JSON body Feldera sends for this error."""
        body: dict[str, Any] = {"message": self.message, "error_code": self.error_code}
        if self.include_details:
            body["details"] = self.details
        return body


def unknown_pipeline(name: str) -> FelderaError:
    return FelderaError(404, "UnknownPipelineName", f"Unknown pipeline name '{name}'", {"pipeline_name": name})


def enterprise_feature(feature: str) -> FelderaError:
    return FelderaError(
        501,
        "EnterpriseFeature",
        f"Cannot use enterprise-only feature ({feature}) in Feldera community edition.",
        {"feature": feature},
    )


def not_deployed(name: str, status: str, desired: str) -> FelderaError:
    return FelderaError(
        503,
        "PipelineInteractionNotDeployed",
        f"Unable to interact with pipeline because the deployment status ({status.lower()}) indicates it is not "
        f'(yet) fully provisioned pipeline-id=N/A pipeline-name="{name}"',
        {"pipeline_name": name, "status": status, "desired_status": desired},
    )


def pipeline_unavailable(name: str) -> FelderaError:
    """The runner cannot reach the pipeline (its runtime status is ``Unavailable``)."""
    return FelderaError(
        503,
        "PipelineUnavailable",
        f"Unable to interact with pipeline because its status is currently 'unavailable' pipeline-name=\"{name}\"",
        {"pipeline_name": name},
    )


def no_controller(runtime_status: str) -> FelderaError:
    """What the pipeline process answers while it has no controller (Standby, Initializing, AwaitingApproval)."""
    if runtime_status == "AwaitingApproval":
        return FelderaError(
            503, "AwaitingApproval", "The pipeline is waiting for approval of its program changes.", None
        )
    reason = "in standby mode" if runtime_status == "Standby" else "initializing"
    return FelderaError(503, "Initializing", f"The pipeline is {reason} and cannot serve this request yet.", None)


def invalid_transition(action: str, from_status: str) -> FelderaError:
    return FelderaError(
        400,
        "InvalidTransition",
        f"Cannot execute {action} transition starting from {from_status}",
        {"action": action, "from": from_status},
    )


def incarnation_mismatch(requested: str, expected: str) -> FelderaError:
    return FelderaError(
        400,
        "IncarnationUuidMismatch",
        f"The pipeline restarted: requested incarnation {requested} but the pipeline is incarnation {expected}",
        {"requested": requested, "expected": expected},
    )


def pipeline_400(message: str) -> FelderaError:
    """The pipeline process's own 400s carry the literal error code "400" (e.g. sync with no checkpoint)."""
    return FelderaError(400, "400", message, None)
