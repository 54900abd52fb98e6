"""The bad-input battery: every case is refused with a message naming the parameter and what is accepted, and no
Feldera server the case could reach sees a mutating request (tests/dags/bad_input_dags.py holds the table)."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest
from airflow_support import aws_connection, feldera_connection, run_dag, task_states
from dags.bad_input_dags import CASES, Case
from feldera_setup import Feldera
from tls_support import make_tls_files

from airflow_checkpoint_sync.testing import FelderaSandbox, HostileFeldera, MotoS3Server
from airflow_checkpoint_sync.testing.server import LOOPBACK, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

API_KEY = "apikey:battery-good-key"


HOSTILE = ("html", "invalid_json", "wrong_shape", "redirect", "echo_headers")


class Servers:
    def __init__(
        self, main: Feldera, community: FelderaSandbox, tls: FelderaSandbox, wrong: list[HostileFeldera]
    ) -> None:
        self.main = main
        self.all = [main.sandbox, community, tls]
        self.wrong = wrong

    def clear(self) -> None:
        for sandbox in self.all:
            sandbox.control.clear_requests()
        for server in self.wrong:
            server.requests.clear()

    def mutating(self) -> list[str]:
        sandboxes = [f"{r['method']} {r['path']}" for s in self.all for r in s.control.mutating_requests()]
        return sandboxes + [request for server in self.wrong for request in server.mutating_requests()]


@pytest.fixture(scope="module")
def servers(airflow_db: str, moto_s3: MotoS3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    _ca, cert, key = make_tls_files(tmp_path_factory.mktemp("tls"))
    bucket = moto_s3.create_bucket("battery")
    with (
        FelderaSandbox(api_key=API_KEY) as main,
        FelderaSandbox(edition="community") as community,
        FelderaSandbox(ssl_certfile=str(cert), ssl_keyfile=str(key)) as tls,
        ExitStack() as hostile,
        pytest.MonkeyPatch.context() as env,
    ):
        wrong = {mode: hostile.enter_context(HostileFeldera(mode)) for mode in HOSTILE}
        port = main.url.rsplit(":", 1)[1]
        connections = {
            "feldera_default": feldera_connection(main.url, API_KEY),
            "feldera_wrong_key": feldera_connection(main.url, "apikey:not-the-key"),
            "feldera_community": feldera_connection(community.url),
            "feldera_tls": feldera_connection(tls.url),
            "feldera_unreachable": feldera_connection(f"http://{LOOPBACK}:{free_port()}"),
            "feldera_no_host": json.dumps({"conn_type": "feldera"}),
            "feldera_bad_timeout": feldera_connection(main.url, API_KEY, timeout="soon"),
            "feldera_bad_verify": feldera_connection(main.url, API_KEY, verify="maybe"),
            "feldera_key_inner_space": feldera_connection(main.url, "apikey:battery good-key"),
            "feldera_query_host": feldera_connection(f"{main.url}/?tenant=x", API_KEY),
            "feldera_userinfo_host": feldera_connection(f"http://admin:{API_KEY}@{LOOPBACK}:{port}", API_KEY),
            "feldera_bad_port": feldera_connection(f"http://{LOOPBACK}:70000", API_KEY),
            "feldera_https_to_http": feldera_connection(f"https://{LOOPBACK}:{port}", API_KEY),
            **{f"feldera_{mode}": feldera_connection(server.url, API_KEY, timeout=2) for mode, server in wrong.items()},
            "feldera_echo": feldera_connection(wrong["echo_headers"].url, f"  {API_KEY}\n"),
            "s3_dr": aws_connection(moto_s3),
            "s3_no_secret": aws_connection(moto_s3, password=None),
            "azure_dr": json.dumps({"conn_type": "wasb", "login": "account", "password": "key"}),
        }
        for conn_id, value in connections.items():
            env.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        feldera = Feldera(main, moto_s3, bucket, api_key=API_KEY)
        feldera.running_pipeline("prod")
        feldera.running_pipeline("nosync", sync=None)
        feldera.create("staging", sync=None)
        feldera.create("multi", sync=None, hosts=2)
        Feldera(community, moto_s3, bucket).running_pipeline("prod", sync=None)
        yield Servers(feldera, community, tls, list(wrong.values()))


def error_of(log: str) -> str:
    """The task's error as Airflow logged it: the exception line of its traceback."""
    errors = re.findall(r"^\s*[\w.]*(?:Exception|Error): .*$", log, re.MULTILINE)
    assert errors, log[-3000:]
    return str(errors[-1]).strip()


def test_the_battery_is_broad() -> None:
    assert len(CASES) >= 80
    classes = {
        "sync",
        "sensor",
        "freshness",
        "configure",
        "restore",
        "activate",
        "readiness",
        "replicate",
        "verify",
        "drill",
    }
    assert {c.operator for c in CASES} == classes
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(
    servers: Servers, case: Case, capfd: pytest.CaptureFixture[str]
) -> None:
    servers.clear()
    if case.stage == "parse":
        from dags.bad_input_dags import CLASSES

        with pytest.raises(Exception) as refused:  # noqa: PT011 - the message is what is checked
            CLASSES[case.operator](task_id="task", **case.kwargs)
        message = str(refused.value)
        out = message
    else:
        capfd.readouterr()
        run = run_dag(f"bad_input_{case.id}")
        assert task_states(run) == {"task": "failed"}
        out = capfd.readouterr().out
        message = error_of(out)
    assert re.search(case.expect, message), message
    assert servers.mutating() == []
    assert API_KEY not in out and "battery good-key" not in out  # no key, however mangled, in any output
