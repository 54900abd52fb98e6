"""The sandbox's HTTP surface: Feldera's ``/v0`` API, and the ``/sandbox`` control API that tests drive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .adhoc import as_json_lines
from .engine import RequestRecord, SandboxEngine
from .errors import FelderaError
from .faults import FaultInjector, FaultRule
from .objectstore import SyncError

Handler = Callable[[], Any]


def create_app(engine: SandboxEngine, faults: FaultInjector | None = None) -> ASGIApp:
    """Build the ASGI app serving ``engine``; ``faults`` lets an in-process owner share the injector."""
    faults = faults or FaultInjector()
    api = FastAPI(title="Feldera sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.engine = engine
    api.state.faults = faults

    @api.exception_handler(FelderaError)
    async def feldera_error(_request: Request, exc: FelderaError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    def call(handler: Handler, status: int = 200) -> JSONResponse:
        with engine.lock:
            result = handler()
        return JSONResponse(result, status_code=status)

    # -- manager -------------------------------------------------------------------------------------------------
    @api.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "healthy"})

    @api.get("/v0/cluster_healthz")
    def cluster_healthz() -> JSONResponse:
        return JSONResponse(
            {
                "all_healthy": True,
                "api": {"healthy": True, "message": None, "unchanged_since": None, "checked_at": None},
                "compiler": {"healthy": True, "message": None, "unchanged_since": None, "checked_at": None},
                "runner": {"healthy": True, "message": None, "unchanged_since": None, "checked_at": None},
            }
        )

    @api.get("/v0/config")
    def config() -> JSONResponse:
        settings = engine.settings
        return JSONResponse(
            {
                "edition": "Enterprise" if settings.edition == "enterprise" else "Open source",
                "version": settings.version,
                "revision": "sandbox",
                "runtime_revision": "sandbox",
                "changelog_url": "",
                "build_source": "source",
                "build_info": {
                    "build_cpu": "",
                    "build_os": "",
                    "build_timestamp": "",
                    "cargo_debug": "false",
                    "cargo_dependencies": "",
                    "cargo_features": "",
                    "cargo_opt_level": "",
                    "cargo_target_triple": "",
                    "rustc_version": "",
                },
                "posthog": "",
                "conceptualhq": "",
                "product_fruits": "",
                "license_validity": None,
                "update_info": None,
                "unstable_features": None,
            }
        )

    @api.get("/v0/pipelines")
    def list_pipelines(request: Request) -> JSONResponse:
        selector = _selector(request)
        return call(lambda: [p.render(selector) for p in engine.pipelines.values()])

    @api.post("/v0/pipelines")
    async def create_pipeline(request: Request) -> JSONResponse:
        body = await _json_object(request)
        return call(lambda: engine.create(body).render("all"), 201)

    @api.get("/v0/pipelines/{name}")
    def get_pipeline(name: str, request: Request) -> JSONResponse:
        selector = _selector(request)
        return call(lambda: engine.get(name).render(selector))

    @api.put("/v0/pipelines/{name}")
    async def put_pipeline(name: str, request: Request) -> JSONResponse:
        body = await _json_object(request)
        with engine.lock:
            pipeline, created = engine.put(name, body)
            rendered = pipeline.render("all")
        return JSONResponse(rendered, status_code=201 if created else 200)

    @api.patch("/v0/pipelines/{name}")
    async def patch_pipeline(name: str, request: Request) -> JSONResponse:
        body = await _json_object(request)
        return call(lambda: engine.patch(name, body).render("all"))

    @api.delete("/v0/pipelines/{name}")
    def delete_pipeline(name: str) -> Response:
        with engine.lock:
            engine.delete(name)
        return Response(status_code=200)

    # -- lifecycle -----------------------------------------------------------------------------------------------
    @api.post("/v0/pipelines/{name}/start")
    def start(name: str, request: Request) -> JSONResponse:
        q = request.query_params
        initial = q.get("initial", "running")
        policy = q.get("bootstrap_policy", "await_approval")
        if policy not in ("allow", "reject", "await_approval"):
            raise FelderaError(400, "InvalidQueryParameter", f"invalid bootstrap_policy '{policy}'")
        dismiss = _bool(request, "dismiss_error", True)
        return call(lambda: engine.get(name).start(initial, policy, dismiss), 202)

    @api.post("/v0/pipelines/{name}/stop")
    def stop(name: str, request: Request) -> JSONResponse:
        force = _bool(request, "force", False)
        return call(lambda: engine.get(name).stop(force), 202)

    @api.post("/v0/pipelines/{name}/pause")
    def pause(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).pause(), 202)

    @api.post("/v0/pipelines/{name}/resume")
    def resume(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).resume(), 202)

    @api.post("/v0/pipelines/{name}/activate")
    def activate(name: str, request: Request) -> JSONResponse:
        initial = request.query_params.get("initial", "running")
        return call(lambda: engine.get(name).activate(initial), 202)

    @api.post("/v0/pipelines/{name}/approve")
    def approve(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).approve())

    @api.post("/v0/pipelines/{name}/dismiss_error")
    def dismiss_error(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).dismiss_error())

    @api.post("/v0/pipelines/{name}/clear")
    def clear(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).clear(), 202)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    @api.post("/v0/pipelines/{name}/checkpoint")
    def checkpoint(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).checkpoint())

    @api.get("/v0/pipelines/{name}/checkpoint_status")
    def checkpoint_status(name: str, request: Request) -> JSONResponse:
        incarnation = request.query_params.get("incarnation_uuid")
        return call(lambda: engine.get(name).checkpoint_status(incarnation))

    @api.get("/v0/pipelines/{name}/checkpoints")
    def checkpoints(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).checkpoints())

    @api.post("/v0/pipelines/{name}/checkpoint/sync")
    def sync(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).sync(), 202)

    @api.get("/v0/pipelines/{name}/checkpoint/sync_status")
    def sync_status(name: str, request: Request) -> JSONResponse:
        incarnation = request.query_params.get("incarnation_uuid")
        return call(lambda: engine.get(name).sync_status(incarnation))

    @api.get("/v0/pipelines/{name}/checkpoints/remote")
    def remote(name: str) -> JSONResponse:
        # Reading the bucket is I/O: resolve where to read under the lock, list outside it.
        with engine.lock:
            store, path = engine.get(name).remote_source()
        try:
            uuids = store.list_remote(path)
        except SyncError as exc:
            raise FelderaError(500, "CheckpointSyncError", f"listing remote checkpoints failed: {exc}") from exc
        return JSONResponse([{"uuid": u} for u in uuids])

    # -- data ----------------------------------------------------------------------------------------------------
    @api.post("/v0/pipelines/{name}/ingress/{table}")
    async def ingress(name: str, table: str, request: Request) -> JSONResponse:
        q = request.query_params
        if q.get("format", "json") != "json":
            raise FelderaError(400, "UnsupportedFormat", "the Feldera sandbox accepts only format=json")
        update_format = q.get("update_format", "raw")
        if update_format not in ("raw", "insert_delete"):
            raise FelderaError(
                400,
                "UnsupportedFormat",
                f"the Feldera sandbox accepts update_format raw or insert_delete, not '{update_format}'",
            )
        array = _bool(request, "array", False)
        body = await request.body()
        return call(lambda: engine.get(name).ingest(table, body, update_format, array))

    @api.get("/v0/pipelines/{name}/query")
    def query(name: str, request: Request) -> Response:
        q = request.query_params
        if "sql" not in q or "format" not in q:
            missing = "sql" if "sql" not in q else "format"
            raise FelderaError(400, "InvalidQueryParameters", f"Query deserialize error: missing field `{missing}`")
        if q["format"] != "json":
            raise FelderaError(
                400, "UnsupportedFormat", "the Feldera sandbox answers ad-hoc queries in format=json only"
            )
        with engine.lock:
            rows = engine.get(name).query(q["sql"])
        return Response(as_json_lines(rows), media_type="application/json")

    @api.get("/v0/pipelines/{name}/completion_status")
    def completion_status(name: str, request: Request) -> JSONResponse:
        token = request.query_params.get("token", "")
        return call(lambda: engine.get(name).completion_status(token))

    @api.get("/v0/pipelines/{name}/stats")
    def stats(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).stats())

    # -- control API ---------------------------------------------------------------------------------------------
    @api.get("/sandbox/state")
    def state() -> JSONResponse:
        with engine.lock:
            pipelines = {
                name: {"deployment_status": p.deployment_status(), "storage_status": p.storage_status}
                for name, p in engine.pipelines.items()
            }
        return JSONResponse({**engine.describe(), "pipelines": pipelines})

    @api.put("/sandbox/timings")
    async def set_timings(request: Request) -> JSONResponse:
        body = await _json_object(request)
        try:
            engine.timings.update(body)
        except ValueError as exc:
            raise FelderaError(400, "InvalidSandboxRequest", str(exc)) from exc
        return JSONResponse(engine.describe()["timings"])

    @api.post("/sandbox/clock")
    async def advance_clock(request: Request) -> JSONResponse:
        body = await _json_object(request)
        engine.clock.advance(float(body.get("advance_s", 0)))
        return JSONResponse({"offset_s": engine.clock.offset_s})

    @api.post("/sandbox/faults")
    async def add_fault(request: Request) -> JSONResponse:
        body = await _json_object(request)
        try:
            rule = faults.add(FaultRule(**body))
        except (TypeError, ValueError, Exception) as exc:  # bad regex, unknown field, bad kind
            raise FelderaError(400, "InvalidSandboxRequest", f"invalid fault rule: {exc}") from exc
        return JSONResponse(rule.public(), status_code=201)

    @api.get("/sandbox/faults")
    def list_faults() -> JSONResponse:
        return JSONResponse(faults.list())

    @api.delete("/sandbox/faults")
    def clear_faults() -> JSONResponse:
        faults.clear()
        return JSONResponse([])

    @api.get("/sandbox/requests")
    def list_requests() -> JSONResponse:
        with engine.lock:
            return JSONResponse([{**r.__dict__, "mutating": r.mutating} for r in engine.requests])

    @api.delete("/sandbox/requests")
    def clear_requests() -> JSONResponse:
        with engine.lock:
            engine.requests.clear()
        return JSONResponse([])

    @api.post("/sandbox/pipelines/{name}/restart")
    def restart(name: str) -> JSONResponse:
        return call(lambda: {"incarnation_uuid": engine.get(name).restart_process()})

    @api.post("/sandbox/pipelines/{name}/unavailable")
    async def unavailable(name: str, request: Request) -> JSONResponse:
        body = await _json_object(request)
        return call(lambda: engine.get(name).make_unavailable(float(body.get("seconds") or 1.0)))

    @api.post("/sandbox/pipelines/{name}/fail_next_sync")
    async def fail_next_sync(name: str, request: Request) -> JSONResponse:
        body = await _json_object(request)
        error = str(body.get("error") or "injected sync failure")
        return call(lambda: engine.get(name).fail_next("sync", error))

    @api.post("/sandbox/pipelines/{name}/fail_next_checkpoint")
    async def fail_next_checkpoint(name: str, request: Request) -> JSONResponse:
        body = await _json_object(request)
        error = str(body.get("error") or "injected checkpoint failure")
        return call(lambda: engine.get(name).fail_next("checkpoint", error))

    @api.get("/sandbox/pipelines/{name}/log")
    def pipeline_log(name: str) -> JSONResponse:
        return call(lambda: list(engine.get(name).log))

    @api.get("/sandbox/pipelines/{name}/tables")
    def pipeline_tables(name: str) -> JSONResponse:
        return call(lambda: engine.get(name).table_contents())

    @api.get("/sandbox/pipelines/{name}/storage")
    def pipeline_storage(name: str) -> JSONResponse:
        def read() -> dict[str, Any]:
            p = engine.get(name)
            return {
                "activated": p.storage.activated,
                "checkpoints": [c.metadata() for c in p.storage.checkpoints],
                "standby_pulls": p.process.standby_pulls if p.process else 0,
            }

        return call(read)

    return _Gate(api, engine, faults)


class _Gate:
    """ASGI middleware in front of the API: request log, authentication, injected faults."""

    def __init__(self, app: ASGIApp, engine: SandboxEngine, faults: FaultInjector) -> None:
        self.app = app
        self.engine = engine
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/sandbox/"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode()
        client = scope.get("client")
        record = RequestRecord(
            method=method, path=path, query=query, status=0, client=f"{client[0]}:{client[1]}" if client else None
        )
        with self.engine.lock:
            self.engine.requests.append(record)

        chunks: list[bytes] = []

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = dict(message.get("headers") or [])
                record.content_type = headers.get(b"content-type", b"").decode() or None
            elif message["type"] == "http.response.body" and self.engine.record_bodies:
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    record.body = b"".join(chunks).decode(errors="replace")
            await send(message)

        rule = self.faults.take(method, path)
        if rule is not None:
            record.fault = rule.kind
            if rule.kind == "delay":
                await asyncio.sleep(rule.delay_s)
            elif rule.kind == "status":
                await _error_response(rule, logging_send)
                return
            elif rule.kind == "drop_before":
                _drop(send)
                return
            elif rule.kind == "restart":
                self._restart_pipeline_in(path)
        denied = self._auth_failure(scope, path)
        if denied is not None:
            await denied(scope, receive, logging_send)
            return
        if rule is not None and rule.kind == "drop_after":
            await self.app(scope, receive, _discard)
            _drop(send)
            return
        await self.app(scope, receive, logging_send)

    def _restart_pipeline_in(self, path: str) -> None:
        parts = path.split("/")
        if len(parts) > 3 and parts[1] == "v0" and parts[2] == "pipelines":
            with self.engine.lock:
                pipeline = self.engine.pipelines.get(parts[3])
                if pipeline is not None and pipeline.process is not None:
                    pipeline.restart_process()

    def _auth_failure(self, scope: Scope, path: str) -> Callable[[Scope, Receive, Send], Awaitable[None]] | None:
        settings = self.engine.settings
        if (settings.api_key is None and not settings.read_api_keys) or not path.startswith("/v0/"):
            return None
        headers = dict(scope.get("headers") or [])
        value = headers.get(b"authorization", b"").decode()
        if not value.startswith("Bearer "):
            # actix-web-httpauth's answer to a missing bearer: 401, a challenge and no body.
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        key = value[len("Bearer ") :]
        if key == settings.api_key:
            return None
        if key not in settings.read_api_keys:
            # actix's ErrorUnauthorized: Feldera's JSON error, sent as text/plain.
            body: dict[str, Any] = {
                "message": "Unauthorized API key",
                "error_code": "AuthenticationFailed",
                "details": None,
            }
            return Response(json.dumps(body), 401, media_type="text/plain; charset=utf-8")
        if _needs_write(str(scope.get("method", "GET")), path):
            body = {
                "message": "Insufficient permissions: this operation requires the 'write' role, the API key has 'read'",
                "error_code": "InsufficientPermissions",
                "details": {"required": "write", "actual": "read"},
            }
            return JSONResponse(body, 403)
        return None


def _needs_write(method: str, path: str) -> bool:
    """Feldera's RBAC table (api/rbac.rs) for the routes the sandbox serves: every change needs Write, and so do
    the ad-hoc query (a GET) and listing API keys; every other GET needs Read."""
    if method.upper() != "GET":
        return True
    parts = path.rstrip("/").split("/")
    return (len(parts) == 5 and parts[2] == "pipelines" and parts[4] == "query") or path.startswith("/v0/api_keys")


async def _error_response(rule: FaultRule, send: Send) -> None:
    headers = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = (
            str(int(rule.retry_after)) if rule.retry_after == int(rule.retry_after) else str(rule.retry_after)
        )
    if rule.error_code is not None:
        body = {
            "message": rule.message or f"injected {rule.status}",
            "error_code": rule.error_code,
            "details": None,
        }
        response: Response = JSONResponse(body, status_code=rule.status, headers=headers)
    else:
        # What a proxy in front of Feldera answers: not Feldera's error body.
        response = Response(rule.message or f"{rule.status} injected by the sandbox", rule.status, headers)
        response.headers["content-type"] = "text/html"

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response({"type": "http"}, no_body, send)


async def _discard(_message: Message) -> None:
    return None


def _drop(send: Send) -> None:
    """Close the client's connection at once, as a network failure would (uvicorn's cycle owns the transport)."""
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None:
        raise RuntimeError("dropping connections needs the sandbox to be served by uvicorn")
    transport.abort()
    # Tell uvicorn the exchange is over so it does not try to answer on the dead connection.
    cycle.response_started = True
    cycle.response_complete = True


def _selector(request: Request) -> str:
    selector = request.query_params.get("selector", "all")
    if selector not in ("all", "status", "status_with_connectors"):
        raise FelderaError(
            400,
            "InvalidQueryParameter",
            f"unknown selector '{selector}' (all, status, status_with_connectors)",
        )
    return "all" if selector == "all" else "status"


def _bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise FelderaError(400, "InvalidQueryParameter", f"query parameter {name}: expected true or false, got '{raw}'")
    return raw == "true"


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise FelderaError(400, "InvalidJson", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise FelderaError(400, "InvalidJson", "request body must be a JSON object")
    return body
