"""The provider's metrics reach a real StatsD listener (a UDP socket on 127.0.0.1 that the test owns) through
Airflow's own metrics, configured as users configure them (``[metrics] statsd_on``), with the documented names."""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

import pytest
from airflow_support import aws_connection, run_dag, task_states, xcoms

from airflow_checkpoint_sync import metrics

if TYPE_CHECKING:
    from collections.abc import Iterator

    from feldera_setup import Feldera

DOCS = "docs/metrics.rst"


class StatsdListener:
    """A UDP socket on a free loopback port; :meth:`received` drains it into ``{name: [(value, type), ...]}``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []

    def received(self) -> dict[str, list[tuple[float, str]]]:
        while True:
            try:
                packet = self.sock.recv(65535)
            except TimeoutError:
                break
            self.lines.extend(packet.decode().splitlines())
        seen: dict[str, list[tuple[float, str]]] = {}
        for line in self.lines:
            name, rest = line.split(":", 1)
            value, kind = rest.split("|")[:2]
            seen.setdefault(name, []).append((float(value), kind))
        return seen


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    """Airflow's StatsD metrics on, pointed at a listener this test owns; metrics off again afterwards."""
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    listener = StatsdListener()
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.port))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    # What Airflow's task runner and triggerer do at start-up; dag.test() runs tasks in this process.
    stats.initialize(factory=get_stats_factory(), export_legacy_names=False)
    try:
        yield listener
    finally:
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger

        stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
        listener.sock.close()


def names(listener: StatsdListener) -> dict[str, list[tuple[float, str]]]:
    return {name.removeprefix("airflow."): values for name, values in listener.received().items()}


@pytest.mark.parametrize("dag_id", ["sync_in_worker", "sync_deferred"])
def test_a_sync_sends_its_duration_and_the_recovery_points_age(
    feldera: Feldera, statsd: StatsdListener, dag_id: str
) -> None:
    feldera.running_pipeline("prod", records=4)
    run = run_dag(dag_id, pipeline="prod")
    assert task_states(run) == {"sync": "success"}
    seen = names(statsd)
    for name in (metrics.SYNC_DURATION, f"{metrics.SYNC_DURATION}.prod"):
        [(duration_ms, kind)] = seen[name]
        assert kind == "ms" and 0 <= duration_ms < 60_000
    for name in (metrics.CHECKPOINT_AGE, f"{metrics.CHECKPOINT_AGE}.prod"):
        [(age, kind)] = seen[name]
        assert kind == "g" and 0 <= age < 60
    assert seen[f"{metrics.SYNC_SUCCEEDED}.prod"] == [(1.0, "c")]


def test_the_freshness_sensor_sends_the_age_it_measured(feldera: Feldera, statsd: StatsdListener) -> None:
    feldera.running_pipeline("prod")
    feldera.sync_now(records=2)
    run = run_dag("freshness_poke", pipeline="prod")
    assert task_states(run) == {"rpo": "success"}
    [(age, kind)] = names(statsd)[f"{metrics.CHECKPOINT_AGE}.prod"]
    assert kind == "g" and 0 <= age < 60


def test_replication_and_a_drill_send_their_figures(
    feldera: Feldera, statsd: StatsdListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_S3_DR", aws_connection(feldera.s3))
    feldera.running_pipeline("prod")
    feldera.sync_now(records=12)
    source = f"{feldera.bucket}/prod"
    copy = run_dag("replicate", source=source, destination_conn="s3_dr", destination=f"{feldera.bucket}/replica")
    assert task_states(copy) == {"replicate": "success"}
    report = xcoms(copy)[("replicate", "return_value")]
    assert report["copied"] > 0 and report["bytes_copied"] > 0
    seen = names(statsd)
    tagless = f"{feldera.bucket}_prod"  # the location, made a metric-name segment
    assert seen[f"{metrics.REPLICATION_OBJECTS}.{tagless}"] == [(float(report["copied"]), "c")]
    assert seen[f"{metrics.REPLICATION_BYTES}.{tagless}"] == [(float(report["bytes_copied"]), "c")]
    assert seen[metrics.REPLICATION_BYTES] == [(float(report["bytes_copied"]), "c")]  # the tagged one
    [(lag, kind)] = seen[f"{metrics.REPLICATION_LAG}.{tagless}"]
    assert kind == "g" and 0 <= lag < 60

    passed = run_dag("drill_worker", scratch=f"{feldera.bucket}/drill", location="")
    assert task_states(passed) == {"drill": "success"}
    failed = run_dag("drill_failing", scratch=f"{feldera.bucket}/drill", location="")
    assert task_states(failed) == {"drill": "failed"}
    seen = names(statsd)
    assert seen[f"{metrics.DRILL_PASSED}.prod"] == [(1.0, "c")]
    assert seen[f"{metrics.DRILL_FAILED}.prod"] == [(1.0, "c")]
    assert [kind for _, kind in seen[f"{metrics.DRILL_RECOVERY}.prod"]] == ["ms", "ms"]


def test_a_restore_and_an_activation_send_their_durations(
    feldera: Feldera, statsd: StatsdListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_S3_DR", aws_connection(feldera.s3))
    feldera.running_pipeline("prod")
    feldera.sync_now(records=3)
    feldera.create("staging", sync=None)
    conf = {"bucket": f"{feldera.bucket}/staging", "read_bucket": f"{feldera.bucket}/prod", "bucket_conn": "s3_dr"}
    standby = run_dag("restore_standby", **conf)
    assert task_states(standby) == {"restore": "success"}
    feldera.http.post("/pipelines/prod/stop", params={"force": "true"})
    failover = run_dag("failover_deferred", pipeline="staging", primary="")
    assert task_states(failover) == {"activate": "success"}
    seen = names(statsd)
    for name in (metrics.RESTORE_DURATION, metrics.ACTIVATION_DURATION):
        for stat in (name, f"{name}.staging"):
            [(duration_ms, kind)] = seen[stat]
            assert kind == "ms" and 0 <= duration_ms < 60_000
    # A deferred activation measured across its deferral: from the activate request to Paused.
    activated = xcoms(failover)[("activate", "return_value")]
    assert activated["status"] == "Paused" and activated["activated_at"]


def test_a_uuid_without_a_trustworthy_time_sends_no_age_and_fails_nothing(statsd: StatsdListener) -> None:
    # A replica catalog's newest entry that is not a UUIDv7 (or not a uuid): the copy's figures still go out, the
    # lag (which would be made up) does not, and nothing raises into the task.
    for newest in ("01890a5d-ac96-4ed2-9b44-9f8a2b2c1d3e", "not-a-uuid"):
        metrics.replication_ended("b/p", {"bytes_copied": 10, "copied": 1, "newest_checkpoint_uuid": newest})
    metrics.sync_ended("prod", "not-a-uuid")
    seen = names(statsd)
    assert seen[f"{metrics.REPLICATION_BYTES}.b_p"] == [(10.0, "c"), (10.0, "c")]
    assert seen[f"{metrics.SYNC_SUCCEEDED}.prod"] == [(1.0, "c")]
    assert not [name for name in seen if name.startswith((metrics.REPLICATION_LAG, metrics.SYNC_DURATION))]
    assert not [name for name in seen if name.startswith(metrics.CHECKPOINT_AGE)]


def test_every_metric_is_in_the_docs_table_and_every_documented_name_exists() -> None:
    from pathlib import Path

    table = (Path(__file__).resolve().parents[2] / DOCS).read_text()
    documented = set(re.findall(r"``(feldera\.[a-z_.]+)``", table))
    defined = {value for key, value in vars(metrics).items() if key.isupper() and str(value).startswith("feldera.")}
    assert documented == defined
