"""What a ``feldera`` Airflow connection says, checked: the only reader of such a connection.

The hook, the triggerer's shared pool and OpenLineage's namespaces all take the base URL, the key and the TLS setting
from here, so that two readers can never disagree about which server a connection names. Pure but for
:func:`ssl_context`, which reads a CA bundle when a client is built.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow_checkpoint_sync.exceptions import FelderaApiError, FelderaConnectionConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Connection

__all__ = ["DEFAULT_TIMEOUT_S", "FelderaConnectionSettings", "settings_from_connection", "settings_of", "ssl_context"]

#: Seconds for each HTTP request when the connection's ``timeout`` extra does not say.
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FelderaConnectionSettings:
    """What a ``feldera`` connection says, checked.

    :param base_url: the API's base URL, e.g. ``https://feldera.example.com`` (no ``/v0``).
    :param api_key: the API key (``apikey:...``) or a JWT; sent as ``Authorization: Bearer <key>``.
    :param verify: TLS verification: True, False, or the path of a CA bundle.
    :param timeout: seconds for each HTTP request.
    :param tenant: sent as ``Feldera-Tenant`` when set.
    :param console_url: where the Feldera web console is, for links; defaults to ``base_url``.
    :param conn_id: the Airflow connection these settings came from, for error messages.
    """

    base_url: str
    api_key: str | None
    verify: bool | str
    timeout: float
    tenant: str | None
    console_url: str
    conn_id: str = ""

    def __repr__(self) -> str:
        # Never print the key, not even by accident in a debugger or a log line.
        return (
            f"FelderaConnectionSettings(base_url={self.base_url!r}, api_key={'***' if self.api_key else None}, "
            f"verify={self.verify!r}, timeout={self.timeout!r}, tenant={self.tenant!r})"
        )

    def pipeline_url(self, pipeline_name: str) -> str:
        """The pipeline's page in the Feldera web console."""
        return f"{self.console_url.rstrip('/')}/pipelines/{quote(pipeline_name, safe='')}/"

    def scrub(self, error: FelderaApiError) -> FelderaApiError:
        """``error`` naming this server, with the API key cut out of everything it quotes (a server or proxy may
        echo request headers in its answer, and a header library its refusal)."""
        error.server = self.base_url
        if self.api_key:
            error.message = error.message.replace(self.api_key, "***")
            if error.details is not None and self.api_key in json.dumps(error.details, default=str):
                error.details = json.loads(json.dumps(error.details, default=str).replace(self.api_key, "***"))
        return error

    def headers(self) -> dict[str, str]:
        """The headers every request carries, whichever client sends it."""
        headers = {"Accept": "application/json", "User-Agent": "airflow-checkpoint-sync"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.tenant:
            headers["Feldera-Tenant"] = self.tenant
        return headers

    def tls(self) -> ssl.SSLContext | bool:
        """The TLS context for this connection (False when verification is off), shared through :func:`ssl_context`."""
        try:
            return ssl_context(self.verify)
        except (OSError, ssl.SSLError) as exc:
            # The CA path is read only here, on the worker that connects: that is where it has to exist.
            raise FelderaConnectionConfigError(
                f"Airflow connection '{self.conn_id}': extra 'verify' {self.verify!r} is not valid; expected true, "
                f"false or the path of a CA bundle readable on this worker ({exc.strerror or exc})"
            ) from None


@functools.lru_cache(maxsize=16)
def ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """One TLS context per ``verify`` setting, shared by every client of the process.

    Building a context loads a whole CA bundle (hundreds of KB); a triggerer running a thousand waits would
    otherwise hold a thousand copies.
    """
    if verify is False:
        return False
    if verify is True:
        import httpx  # its CA bundle (certifi), for both clients; loaded only when a client is built

        return httpx.create_ssl_context()
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def settings_of(conn_id: str, conn: Connection, extra: Mapping[str, Any] | None = None) -> FelderaConnectionSettings:
    """The checked settings of Airflow connection ``conn`` (fetched as ``conn_id``).

    :param extra: its extras, when they were read apart (the triggerer reads them without blocking its loop);
        ``conn.extra_dejson`` otherwise.
    """
    return settings_from_connection(
        conn_id,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        password=conn.password,
        extra=conn.extra_dejson if extra is None else extra,
        conn_type=conn.conn_type,
    )


def settings_from_connection(
    conn_id: str,
    *,
    host: str | None,
    port: int | None,
    schema: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    conn_type: str | None = "feldera",
) -> FelderaConnectionSettings:
    """Check and normalise a ``feldera`` connection's fields (pure; the caller fetches them)."""
    if conn_type and conn_type != "feldera":
        # Another provider's connection (an aws one, say) would otherwise fail later with a misleading message.
        raise _bad(conn_id, "conn_type", conn_type, "'feldera': create the connection with the Feldera connection type")
    base_url = _base_url(conn_id, host, port, schema)

    verify: bool | str = _field(extra, "verify", True)
    if isinstance(verify, str) and verify.strip().lower() in ("true", "false"):
        verify = verify.strip().lower() == "true"
    if not isinstance(verify, bool) and not (isinstance(verify, str) and verify.strip()):
        raise _bad(conn_id, "extra 'verify'", verify, "true, false or the path of a CA bundle")

    timeout_raw = _field(extra, "timeout", DEFAULT_TIMEOUT_S)
    try:
        timeout = float(timeout_raw)
    except (TypeError, ValueError):
        raise _bad(conn_id, "extra 'timeout'", timeout_raw, "a number of seconds greater than 0") from None
    if not timeout > 0:
        raise _bad(conn_id, "extra 'timeout'", timeout_raw, "a number of seconds greater than 0")

    tenant = _field(extra, "tenant", None) or None
    console_url = str(_field(extra, "console_url", None) or base_url)
    if not console_url.startswith(("http://", "https://")):
        raise _bad(conn_id, "extra 'console_url'", console_url, "an http:// or https:// URL")
    return FelderaConnectionSettings(
        base_url=base_url,
        api_key=_api_key(conn_id, password),
        verify=verify,
        timeout=timeout,
        tenant=str(tenant) if tenant else None,
        console_url=console_url,
        conn_id=conn_id,
    )


def _base_url(conn_id: str, host: str | None, port: int | None, schema: str | None) -> str:
    """The API's base URL from host, port and schema: a host without a scheme takes the schema's, else https."""
    if not host:
        raise FelderaConnectionConfigError(
            f"Airflow connection '{conn_id}': host is empty; set it to the Feldera API URL, "
            "e.g. https://feldera.example.com or http://127.0.0.1:8080"
        )
    raw = host.strip()
    if "://" not in raw:
        scheme = (schema or "").lower() if (schema or "").lower() in ("http", "https") else "https"
        raw = f"{scheme}://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(conn_id, "host", host, "an http:// or https:// URL of the Feldera API")
    if parts.username is not None or parts.password is not None:
        # Never echo it: the part before '@' is a credential.
        raise FelderaConnectionConfigError(
            f"Airflow connection '{conn_id}': host carries a user or password before '@'; put the API key in the "
            "connection's password and leave the host as scheme://name[:port]"
        )
    if parts.query or parts.fragment:
        raise _bad(
            conn_id,
            "host",
            host,
            "a URL without '?query' or '#fragment': the API's base URL, e.g. https://feldera.example.com",
        )
    try:
        url_port = parts.port
    except ValueError:
        url_port = -1
    if url_port == -1 or (port is not None and not 0 < port < 65536):
        raise _bad(conn_id, "port", port if url_port != -1 else host, "a port from 1 to 65535")
    netloc = parts.netloc
    if port and url_port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/v0"):
        path = path[: -len("/v0")]
    return f"{parts.scheme}://{netloc}{path}"


def _bad(conn_id: str, field: str, value: object, accepted: str) -> FelderaConnectionConfigError:
    return FelderaConnectionConfigError(
        f"Airflow connection '{conn_id}': {field} {value!r} is not valid; expected {accepted}"
    )


def _api_key(conn_id: str, password: str | None) -> str | None:
    """The API key without the white space a secret file or a paste leaves around it; anything else in it that an
    HTTP header cannot carry is refused, without showing the key."""
    key = (password or "").strip()
    if not key:
        return None
    if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
        raise FelderaConnectionConfigError(
            f"Airflow connection '{conn_id}': the password (the API key) has spaces, line breaks or other characters "
            "an HTTP header cannot carry inside it; set it to the key alone (apikey:... or a JWT)"
        )
    return key


def _field(extra: Mapping[str, Any], name: str, default: Any) -> Any:
    # Older connection forms store custom fields as extra__<conn_type>__<name>.
    for key in (name, f"extra__feldera__{name}"):
        if key in extra and extra[key] not in (None, ""):
            return extra[key]
    return default
