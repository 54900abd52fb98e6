"""Run one seeded fault plan through a DR flow under dag.test() and judge the outcome against the invariants.

Everything is real except two Airflow-side faults, which ``dag.test()`` cannot produce because it runs the task and
its trigger inside the test process; they are emulated as closely as that allows:

- a *triggerer restart* cancels the first trigger after a seeded time, as a triggerer shutting down cancels its
  triggers, then rebuilds it from ``serialize()`` (through Airflow's serde, as the trigger table stores it) and
  runs the rebuilt trigger to its event;
- a *worker death* interrupts the task at a seeded moment with an exception no operator code catches (raised from
  a SIGALRM handler while the provider's code is on the stack), so nothing after that point runs and Airflow
  retries the task. A real SIGKILL and the scheduler's zombie detection are not exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_support import run_dag, task_states, xcoms
from dags.reliability.reliability_dags import TASK_TIMEOUT
from support import sync_config, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

    from feldera_setup import Feldera
    from plan import Plan

BUCKET_CONN = "s3_dr"
RECORDS = 17
TASKS = {"scheduled_dr": 1, "migration": 2, "failover": 1}
#: Slack per task try on top of its timeout: backoff after the last poll and one lost-answer look-up.
TRY_SLACK = 40


@dataclass(frozen=True)
class Outcome:
    """How one run ended: ``verdict`` is success, correct_failure, wrong or hang; ``problems`` say why it is wrong."""

    plan: Plan
    verdict: str
    fault_hit: bool
    seconds: float
    problems: tuple[str, ...] = ()


def deadline(flow: str) -> float:
    """The longest a flow may take: every task, both tries, each within its timeout plus slack."""
    return TASKS[flow] * 2 * (TASK_TIMEOUT + TRY_SLACK)


# -- Airflow-side faults ------------------------------------------------------------------------------------------
class WorkerDied(BaseException):
    """The emulated death of a worker process: a BaseException, so no ``except Exception`` in the provider sees it."""


@contextlib.contextmanager
def triggerer_restart(life: float, fired: list[str]) -> Iterator[None]:
    """The first trigger of the run is cancelled after ``life`` seconds and rebuilt from its serialized form."""
    import airflow.sdk.definitions.dag as dag_module
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    original = dag_module._run_inline_trigger

    async def live_for(trigger: Any) -> Any:
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), timeout=life)
        except TimeoutError:
            return None
        finally:
            await events.aclose()

    def run_trigger(trigger: Any, ti: Any) -> Any:
        if fired:
            return original(trigger, ti)
        event = asyncio.run(live_for(trigger))
        if event is not None:
            fired.append("fired before the restart")
            return event
        classpath, kwargs = trigger.serialize()
        rebuilt = import_string(classpath)(**deserialize(serialize(kwargs)))
        fired.append("restarted")
        return original(rebuilt, ti)

    dag_module._run_inline_trigger = run_trigger
    try:
        yield
    finally:
        dag_module._run_inline_trigger = original


def _inside_provider_code(frame: FrameType | None) -> bool:
    """Whether a task's own provider code is running: called by Airflow's task runner (not DAG parsing), not in
    the runner's plumbing below it, and not in a trigger (dag.test() runs triggers in this process, in an event
    loop; in a deployment they live in the triggerer)."""
    seen_provider = False
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("asyncio."):
            return False
        if module.startswith("airflow_checkpoint_sync."):
            seen_provider = True
        elif module == "airflow.sdk.execution_time.task_runner" and seen_provider:
            return True
        elif module.startswith(("airflow.sdk.execution_time", "airflow.models", "sqlalchemy")) and not seen_provider:
            return False
        frame = frame.f_back
    return False


@contextlib.contextmanager
def worker_death(after: float, fired: list[str]) -> Iterator[None]:
    """Interrupt the task ``after`` seconds in (or at the next moment the provider's code runs), once.

    SIGUSR1 from a timer thread, because pytest-timeout owns SIGALRM; Python runs the handler in the main thread,
    where dag.test() runs the task.
    """
    main = threading.main_thread().ident
    assert main is not None
    done = threading.Event()

    def knock(delay: float) -> None:
        timer = threading.Timer(delay, lambda: done.is_set() or signal.pthread_kill(main, signal.SIGUSR1))
        timer.daemon = True
        timer.start()

    def die(signum: int, frame: FrameType | None) -> None:
        if fired or done.is_set():
            return
        if not _inside_provider_code(frame):
            knock(0.01)
            return
        fired.append("worker died")
        raise WorkerDied(f"worker killed {after}s into the run")

    signal.signal(signal.SIGUSR1, die)
    knock(after)
    try:
        yield
    finally:
        done.set()
        # Ignored rather than reset: a knock already on its way must not kill the test process.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


@contextlib.contextmanager
def store_outage(feldera: Feldera, start: float, length: float, fired: list[str]) -> Iterator[None]:
    """moto stops answering ``start`` seconds from now, for ``length`` seconds."""

    def pause() -> None:
        feldera.s3.pause()
        fired.append("store down")

    timers = [threading.Timer(start, pause), threading.Timer(start + length, feldera.s3.resume)]
    for timer in timers:
        timer.start()
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        feldera.s3.resume()


# -- setting up a flow ----------------------------------------------------------------------------------------------
@dataclass
class Names:
    primary: str
    standby: str


def prepare(feldera: Feldera, plan: Plan) -> Names:
    names = Names(primary=f"prod{plan.seed}", standby=f"standby{plan.seed}")
    feldera.sandbox.control.set_timings(sync_delay_s=0.0)
    feldera.running_pipeline(names.primary, records=RECORDS)
    if plan.flow == "migration":
        feldera.create(names.standby, sync=None, workers=3, from_a_newer_feldera={"keep": "me"})
    elif plan.flow == "failover":
        uuid = _synced(feldera, names.primary)
        sync = sync_config(
            feldera.s3,
            feldera.bucket,
            names.standby,
            read_bucket=f"{feldera.bucket}/{names.primary}",
            start_from_checkpoint="latest",
            pull_interval=1,
        )
        feldera.create(names.standby, sync, workers=2)
        feldera.start(names.standby, "standby")
        wait_until(
            lambda: feldera.sandbox.control.log(names.standby),
            lambda lines: any(f"pulled successfully: {uuid}" in line for line in lines),
        )
        assert feldera.http.post(f"/pipelines/{names.primary}/stop", params={"force": "true"}).status_code == 202
        wait_until(lambda: feldera.pipeline(names.primary), lambda p: p["deployment_status"] == "Stopped")
    feldera.sandbox.control.set_timings(sync_delay_s=plan.sync_delay_s)
    return names


def _synced(feldera: Feldera, name: str) -> str:
    feldera.http.post(f"/pipelines/{name}/checkpoint")
    wait_until(lambda: feldera.sandbox.control.storage(name)["checkpoints"], bool)
    uuid = str(feldera.http.post(f"/pipelines/{name}/checkpoint/sync").json()["checkpoint_uuid"])
    wait_until(lambda: feldera.catalog(name), lambda c: uuid in c)
    return uuid


def install_faults(feldera: Feldera, plan: Plan, names: Names) -> None:
    control = feldera.sandbox.control
    for rule in plan.rules:
        control.add_fault(**{**rule, "path": rule["path"].format(primary=names.primary, standby=names.standby)})
    if plan.fail_next_sync:
        control.fail_next_sync(names.primary)


# -- running and judging ----------------------------------------------------------------------------------------------
def run(feldera: Feldera, plan: Plan, read_output: Callable[[], str]) -> Outcome:
    names = prepare(feldera, plan)
    control = feldera.sandbox.control
    configs = {
        name: _runtime_config(feldera, name) for name in (names.primary, names.standby) if _exists(feldera, name)
    }
    log_start = len(control.log(names.primary))
    requests_start = len(control.requests())
    install_faults(feldera, plan, names)
    read_output()  # drop what setting up printed
    fired: list[str] = []
    dag_id = f"reliability_{plan.flow}{'_deferred' if plan.deferrable else ''}"
    conf = {
        "primary": names.primary,
        "standby": names.standby,
        "bucket": f"{feldera.bucket}/{names.standby}",
        "read_bucket": f"{feldera.bucket}/{names.primary}",
        "bucket_conn": BUCKET_CONN,
    }
    with contextlib.ExitStack() as faults:
        if plan.store_outage:
            faults.enter_context(store_outage(feldera, *plan.store_outage, fired))
        if plan.triggerer_restart_after is not None:
            faults.enter_context(triggerer_restart(plan.triggerer_restart_after, fired))
        if plan.worker_death_after is not None:
            faults.enter_context(worker_death(plan.worker_death_after, fired))
        started = time.monotonic()
        dag_run = run_dag(dag_id, **conf)
        seconds = time.monotonic() - started
    control.clear_faults()
    control.set_timings(sync_delay_s=0.0)
    output = read_output()
    faulted = any(r.get("fault") for r in control.requests()[requests_start:])
    fault_hit = (
        faulted or "restarted" in fired or "worker died" in fired or "store down" in fired or plan.fail_next_sync
    )

    problems = _check(feldera, plan, names, dag_run, configs, control.log(names.primary)[log_start:], output)
    if seconds > deadline(plan.flow):
        verdict = "hang"
        problems.append(f"took {seconds:.1f}s, over the {deadline(plan.flow)}s deadline")
    elif problems:
        verdict = "wrong"
    else:
        verdict = "success" if dag_run.state == "success" else "correct_failure"
    _tidy(feldera, names)
    return Outcome(plan, verdict, fault_hit, seconds, tuple(problems))


def _check(
    feldera: Feldera,
    plan: Plan,
    names: Names,
    dag_run: Any,
    configs: dict[str, dict[str, Any]],
    primary_log: list[str],
    output: str,
) -> list[str]:
    problems: list[str] = []
    states = task_states(dag_run)
    values = xcoms(dag_run)
    reported = values.get(("sync", "return_value"))
    problems += sync_discipline(primary_log, reported if dag_run.state == "success" else None)
    problems += _configs_kept(feldera, plan, names, configs)
    if dag_run.state == "success":
        problems += _really_done(feldera, plan, names, values)
    else:
        if plan.expect == "success":
            problems.append(f"failed ({states}) although the provider is meant to survive this fault")
        if not re.search(plan.cause, output):
            problems.append(f"failed ({states}) but the log does not name the cause /{plan.cause}/")
    return problems


def _really_done(feldera: Feldera, plan: Plan, names: Names, values: dict[tuple[str, str], Any]) -> list[str]:
    problems = []
    expected = RECORDS
    if plan.flow in ("scheduled_dr", "migration"):
        uuid = values.get(("sync", "return_value"))
        if uuid not in feldera.catalog(names.primary):
            return [f"reported checkpoint {uuid} is not in the bucket's catalog"]
        # A restart before the checkpoint loses the unsaved rows, so the checkpoint itself says what to expect.
        expected = feldera.catalog_entry(names.primary, str(uuid))["processed_records"]
    if plan.flow in ("migration", "failover"):
        status = feldera.pipeline(names.standby)["deployment_status"]
        processed = feldera.processed(names.standby)
        if status != "Running" or processed != expected:
            problems.append(f"{names.standby} is {status} with {processed} records, expected Running with {expected}")
    return problems


_STARTED = re.compile(r"checkpoint sync of (\S+) started")
_ENDED = re.compile(r"checkpoint sync of (\S+) (succeeded|failed)")
_REQUESTED = re.compile(r"checkpoint (\d+) requested")
_FINISHED = re.compile(r"checkpoint (\d+) (completed|failed)")


def sync_discipline(log: list[str], reported: str | None) -> list[str]:
    """No sync or checkpoint was started while another one of the same process was still under way, then ignored."""
    problems = []
    open_syncs: set[str] = set()
    open_checkpoints: set[str] = set()
    last_started = None
    for line in log:
        if "process restarted" in line:
            open_syncs.clear()  # the restart killed them; starting anew is right
            open_checkpoints.clear()
        elif match := _STARTED.search(line):
            if open_syncs:
                problems.append(f"sync of {match[1]} started while {sorted(open_syncs)} was still running")
            open_syncs.add(match[1])
            last_started = match[1]
        elif match := _ENDED.search(line):
            open_syncs.discard(match[1])
        elif match := _REQUESTED.search(line):
            if open_checkpoints:
                problems.append(f"checkpoint {match[1]} requested while {sorted(open_checkpoints)} was pending")
            open_checkpoints.add(match[1])
        elif match := _FINISHED.search(line):
            open_checkpoints.discard(match[1])
    if reported is not None and last_started is not None and reported != last_started:
        problems.append(f"reported {reported}, but the last sync started was {last_started}")
    return problems


def _configs_kept(feldera: Feldera, plan: Plan, names: Names, before: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, config in before.items():
        after = _runtime_config(feldera, name)
        if plan.flow == "migration" and name == names.standby:
            # Restore writes the sync block, and only that.
            after["storage"]["backend"]["config"].pop("sync", None)
            config = {**config, "storage": {**config["storage"]}}
            config["storage"]["backend"] = {**config["storage"]["backend"]}
            config["storage"]["backend"]["config"] = {
                k: v for k, v in config["storage"]["backend"]["config"].items() if k != "sync"
            }
        if after != config:
            problems.append(f"runtime_config of {name} changed beyond what the flow meant: {config} -> {after}")
    return problems


def _exists(feldera: Feldera, name: str) -> bool:
    return bool(feldera.http.get(f"/pipelines/{name}").status_code == 200)


def _runtime_config(feldera: Feldera, name: str) -> dict[str, Any]:
    config: dict[str, Any] = feldera.pipeline(name, "all")["runtime_config"]
    return config


def _tidy(feldera: Feldera, names: Names) -> None:
    """Stop the run's pipelines so later runs share the sandbox with as little as possible."""
    for name in (names.primary, names.standby):
        if _exists(feldera, name):
            feldera.http.post(f"/pipelines/{name}/stop", params={"force": "true"})
