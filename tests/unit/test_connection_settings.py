"""Reading a `feldera` connection, the backoff and response parsing: pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionConfigError
from airflow_checkpoint_sync.hooks.connection import settings_from_connection
from airflow_checkpoint_sync.hooks.feldera_api import BackoffPolicy, FelderaRequest, parse_response


def settings(host: str | None = "https://feldera.example.com", **kw: Any) -> Any:
    extra = kw.pop("extra", {})
    return settings_from_connection(
        "c", host=host, port=kw.pop("port", None), schema=kw.pop("schema", None), password="apikey:k", extra=extra
    )


@pytest.mark.parametrize(
    ("host", "port", "schema", "base"),
    [
        ("https://feldera.example.com", None, None, "https://feldera.example.com"),
        ("https://feldera.example.com/", None, None, "https://feldera.example.com"),
        ("https://feldera.example.com/v0", None, None, "https://feldera.example.com"),
        ("feldera.example.com", None, None, "https://feldera.example.com"),
        ("127.0.0.1", 8080, "http", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080", 9999, None, "http://127.0.0.1:8080"),
        ("https://gw.example.com/feldera/", None, None, "https://gw.example.com/feldera"),
    ],
)
def test_base_url(host: str, port: int | None, schema: str | None, base: str) -> None:
    assert settings(host, port=port, schema=schema).base_url == base


def test_extras_and_defaults() -> None:
    s = settings(extra={"verify": "false", "timeout": "12.5", "tenant": "acme", "console_url": "https://ui.example"})
    assert (s.verify, s.timeout, s.tenant, s.console_url) == (False, 12.5, "acme", "https://ui.example")
    assert s.pipeline_url("prod") == "https://ui.example/pipelines/prod/"
    d = settings()
    assert (d.verify, d.timeout, d.tenant, d.console_url) == (True, 30.0, None, "https://feldera.example.com")
    assert settings(extra={"extra__feldera__verify": "/etc/ca.pem"}).verify == "/etc/ca.pem"
    headers = settings(extra={"tenant": "acme"}).headers()
    assert headers["Authorization"] == "Bearer apikey:k"
    assert headers["Feldera-Tenant"] == "acme"
    assert "apikey:k" not in repr(d)


@pytest.mark.parametrize(
    ("host", "extra", "fragment"),
    [
        (None, {}, "host is empty"),
        ("ftp://x", {}, "host 'ftp://x'"),
        ("https://x", {"timeout": 0}, "extra 'timeout' 0"),
        ("https://x", {"timeout": "soon"}, "extra 'timeout' 'soon'"),
        ("https://x", {"verify": 3}, "extra 'verify' 3"),
        ("https://x", {"console_url": "ui.example"}, "extra 'console_url'"),
    ],
)
def test_bad_connections_name_the_field(host: str | None, extra: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FelderaConnectionConfigError, match="Airflow connection 'c'") as bad:
        settings(host, extra=extra)
    assert fragment in str(bad.value)


GET = FelderaRequest("GET", "/v0/config")
POST = FelderaRequest("POST", "/v0/pipelines/p/checkpoint", idempotent=False)


def api_error(status: int, code: str | None = None, retry_after: float | None = None) -> FelderaApiError:
    return FelderaApiError("m", status=status, error_code=code, retry_after=retry_after)


def test_backoff_is_bounded_and_honours_retry_after() -> None:
    policy = BackoffPolicy(max_attempts=4, base_delay=1, max_delay=5, deadline=10)
    assert [policy.delay(n, api_error(503), GET, 0) for n in (1, 2, 3)] == [1, 2, 4]
    assert policy.delay(4, api_error(503), GET, 0) is None  # attempts used up
    assert policy.delay(1, api_error(429, retry_after=3), GET, 0) == 3
    assert policy.delay(1, api_error(429, retry_after=600), GET, 0) == 5  # capped
    assert policy.delay(2, api_error(503), GET, 9) is None  # the deadline would pass
    with pytest.raises(ValueError, match="max_attempts"):
        BackoffPolicy(max_attempts=0)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("headers", "body", "request_", "words"),
    [
        ({"content-type": "text/html"}, b"<html><body>Sign in to the proxy</body></html>", GET, "not JSON"),
        ({}, b"", GET, "not JSON (no content type, 0 bytes"),
        (JSON, b"", GET, "not JSON"),
        (JSON, b'{"edition": ', GET, "invalid JSON"),
        (JSON, b"\xff\xfe", GET, "invalid JSON"),
        (JSON, b"[1, 2]", GET, "a JSON list where a JSON object was expected"),
        (JSON, b"{}", FelderaRequest("GET", "/v0/pipelines/p/checkpoints", expect=list), "JSON list was expected"),
        (JSON, b'{"checkpoint_uuid": null}', POST, "without checkpoint_sequence_number"),
    ],
)
def test_answers_that_are_not_feldera_s_say_so(
    headers: dict[str, str], body: bytes, request_: FelderaRequest, words: str
) -> None:
    request_ = FelderaRequest(request_.method, request_.path, expect=request_.expect, require=request_.require)
    if request_.path.endswith("/checkpoint"):
        request_ = FelderaRequest("POST", request_.path, idempotent=False, require=("checkpoint_sequence_number",))
    with pytest.raises(FelderaApiError) as failed:
        parse_response(200, headers, body, request_)
    assert failed.value.error_code == "UnexpectedResponse"
    assert words in failed.value.message and request_.describe() in str(failed.value)


def test_a_redirect_is_named_for_what_it_is() -> None:
    with pytest.raises(FelderaApiError, match=r"redirected to https://feldera\.example\.com/v0/config"):
        parse_response(301, {"location": "https://feldera.example.com/v0/config"}, b"", GET)


def test_parse_response() -> None:
    assert parse_response(200, {"content-type": "application/json"}, b'{"a": 1}', GET) == {"a": 1}
    start = FelderaRequest("POST", "/v0/pipelines/p/start", expect=None)
    assert parse_response(202, {"content-type": "application/json"}, b'"Pipeline is starting"', start) is None
    with pytest.raises(FelderaApiError) as feldera:
        parse_response(
            503,
            {"content-type": "application/json", "retry-after": "7"},
            b'{"message": "busy", "error_code": "PipelineInteractionUnreachable", "details": {"a": 1}}',
            GET,
        )
    assert (feldera.value.status, feldera.value.error_code, feldera.value.retry_after) == (
        503,
        "PipelineInteractionUnreachable",
        7.0,
    )
    with pytest.raises(FelderaApiError) as proxy:
        parse_response(502, {"content-type": "text/html"}, b"<html>Bad Gateway</html>", GET)
    assert proxy.value.error_code is None and "Bad Gateway" in proxy.value.message
