"""Check the sandbox's responses against Feldera's published OpenAPI document (0.337.0).

Where real Feldera is known to differ from its OpenAPI document, the sandbox follows real Feldera; every such
difference is one row of ``DEVIATIONS`` below, with its source. Any other mismatch fails the contract tests.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from airflow_checkpoint_sync.testing import FelderaSandbox

SPEC_PATH = Path(__file__).parent / "data" / "feldera-openapi-0.337.0.json"


@dataclass(frozen=True)
class Deviation:
    """Real Feldera answers ``status`` (with ``error_code``) where the OpenAPI document says otherwise."""

    method: str  # "*" for every method
    path: str  # OpenAPI path template, or "*" for every path
    status: int
    error_code: str | None
    real_feldera: str
    openapi_says: str
    source: str
    schema: str | None = "ErrorResponse"  # what the body is validated against instead; None: not validated

    def applies(self, method: str, template: str, status: int, body: Any) -> bool:
        code = body.get("error_code") if isinstance(body, dict) else None
        return (
            self.method in ("*", method)
            and self.path in ("*", template)
            and self.status == status
            and (self.error_code is None or self.error_code == code)
        )


P = "/v0/pipelines/{pipeline_name}"
ENTERPRISE_ONLY = [
    ("POST", f"{P}/checkpoint"),
    ("POST", f"{P}/checkpoint/sync"),
    ("GET", f"{P}/checkpoint/sync_status"),
    ("GET", f"{P}/checkpoints/remote"),
    ("POST", f"{P}/activate"),
    ("POST", f"{P}/start"),
]

DEVIATIONS: list[Deviation] = [
    Deviation(
        "POST",
        f"{P}/checkpoint/sync",
        400,
        "400",
        '400 with error_code "400" when the pipeline has no local checkpoint (or sync is not configured)',
        "documents 404 for the no-checkpoint case and no 400 at all",
        "API.md 6.1 (crates/adapters/src/server.rs checkpoint_sync)",
    ),
    Deviation(
        "POST",
        f"{P}/checkpoint",
        400,
        "400",
        '400 with error_code "400" from the pipeline process when storage is not configured',
        "documents no 400",
        "API.md 1.3 (pipeline-process errors carry the literal status as error_code)",
    ),
    Deviation(
        "POST",
        f"{P}/activate",
        400,
        "InvalidActivateStatus",
        "400 InvalidActivateStatus for an initial other than running or paused",
        "documents no 400",
        "API.md 3 (pipeline_interaction.rs post_pipeline_activate)",
    ),
    Deviation(
        "POST",
        f"{P}/activate",
        400,
        "InvalidTransition",
        "400 InvalidTransition when the pipeline is not in Standby",
        "documents no 400",
        "API.md 3 (server.rs state_transition)",
    ),
    *[
        Deviation(
            method,
            path,
            501,
            "EnterpriseFeature",
            "501 EnterpriseFeature in the community edition",
            "documents 501 only for /stop",
            'API.md 1.3 and 10.4 (common_error.rs; #[cfg(feature = "feldera-enterprise")] gates)',
        )
        for method, path in ENTERPRISE_ONLY
    ],
    Deviation(
        "*",
        "*",
        401,
        "AuthenticationFailed",
        "401 with {message, error_code} and no 'details' for a wrong API key",
        "ErrorResponse requires 'details'",
        "crates/pipeline-manager/src/auth.rs create_authz_json_error",
        schema=None,
    ),
    Deviation(
        "*",
        "*",
        401,
        None,
        "401 with an empty body and a Bearer challenge when no Authorization header is sent",
        "documents no 401",
        "actix-web-httpauth bearer extractor used by crates/pipeline-manager/src/auth.rs",
        schema=None,
    ),
    Deviation(
        "GET",
        f"{P}/checkpoint/sync_status",
        200,
        None,
        "200 with a 'running' array of uuids (Feldera after 0.337, PR #6930); the sandbox omits it with "
        "sync_running_field=False",
        "CheckpointSyncStatus has no 'running' property (extra properties are allowed, so the body validates)",
        "API.md 6.2; docs.rs feldera-types 0.347.0 CheckpointSyncStatus",
        schema="CheckpointSyncStatus",
    ),
]

# Request-side differences (no response body to validate), listed so the table is complete.
REQUEST_DEVIATIONS = [
    (
        "POST",
        f"{P}/activate",
        "query 'initial' is parsed in lower case (running|paused), although the document "
        "types it as the capitalised RuntimeDesiredStatus enum",
        "API.md 3 (query_params.rs ActivateParams)",
    ),
]


@cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return document


@cache
def _components() -> dict[str, Any]:
    return {"schemas": {name: _to_json_schema(s) for name, s in spec()["components"]["schemas"].items()}}


def _to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null alternative; the rest carries over."""
    if isinstance(schema, list):
        return [_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _to_json_schema(v) for k, v in schema.items() if k not in ("nullable", "discriminator", "example")}
    if schema.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    root = {**copy.deepcopy(schema), "components": _components()}
    cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft7Validator)
    return cls(root, format_checker=jsonschema.FormatChecker())


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in spec()["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        out.append((re.compile(pattern), template))
    # Most literal segments first, so /checkpoint/sync wins over /{name}/{x}.
    out.sort(key=lambda item: (item[1].count("{"), -len(item[1])))
    return out


def template_for(path: str) -> str | None:
    return next((template for pattern, template in _templates() if pattern.match(path)), None)


def _named(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def check_response(method: str, path: str, status: int, content_type: str | None, raw: str | None) -> str | None:
    """Validate one recorded response; returns a problem description, or None when it conforms."""
    template = template_for(path)
    if template is None:
        return None if path == "/healthz" else f"{method} {path}: not in the OpenAPI document"
    body: Any = json.loads(raw) if raw and content_type and "json" in content_type else None
    operation = spec()["paths"][template].get(method.lower())
    if operation is None:
        return f"{method} {template}: method not in the OpenAPI document"
    deviation = next((d for d in DEVIATIONS if d.applies(method, template, status, body)), None)
    documented = operation.get("responses", {}).get(str(status))
    if deviation is not None:
        schema = _named(deviation.schema) if deviation.schema else None
    elif documented is None:
        return f"{method} {template}: status {status} is not documented and not a listed deviation (body {raw!r})"
    else:
        content = documented.get("content") or {}
        media = content.get("application/json")
        if media is None:
            if body is not None and content:
                return f"{method} {template} {status}: JSON body where the document has {sorted(content)}"
            return None
        schema = media.get("schema")
    if schema is None or (body is None and not raw):
        return None
    errors = sorted(_validator(_to_json_schema(schema)).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        return (
            f"{method} {template} {status}: {first.message} at {'/'.join(map(str, first.path)) or '<root>'} "
            f"(body {raw[:300] if raw else raw!r})"
        )
    return None


def problems_in(records: list[dict[str, Any]]) -> list[str]:
    """Every problem in a sandbox request log recorded with bodies (``FelderaSandbox(record_bodies=True)``)."""
    problems = []
    for record in records:
        if record["status"] == 0:  # a dropped connection: no response to validate
            continue
        problem = check_response(
            record["method"], record["path"], record["status"], record["content_type"], record["body"]
        )
        if problem:
            problems.append(problem)
    return problems


def undocumented(deviation: Deviation) -> bool:
    """True when the document really does not say what real Feldera does (keeps the table honest)."""
    if deviation.schema == "CheckpointSyncStatus":
        return "running" not in spec()["components"]["schemas"]["CheckpointSyncStatus"].get("properties", {})
    for path, item in spec()["paths"].items():
        if deviation.path not in ("*", path):
            continue
        for method, operation in item.items():
            if deviation.method not in ("*", method.upper()) or not isinstance(operation, dict):
                continue
            if str(deviation.status) in operation.get("responses", {}):
                return False
    return True


API_KEY = "apikey:" + "k" * 64


def checked_sandbox(**kwargs: Any) -> FelderaSandbox:
    """A sandbox that keeps every response body, for :func:`assert_conforms`."""
    return FelderaSandbox(record_bodies=True, **kwargs)


def assert_conforms(sandbox: FelderaSandbox) -> None:
    records = sandbox.control.requests()
    assert records, "the sandbox saw no request"
    problems = problems_in(records)
    assert not problems, "responses that do not match Feldera's OpenAPI document:\n" + "\n".join(problems)
