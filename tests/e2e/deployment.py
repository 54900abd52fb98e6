"""A real Airflow 3.3 deployment on loopback: api-server, scheduler, dag-processor and triggerer as separate processes.

LocalExecutor, or CeleryExecutor with a Redis broker and two Celery workers, on sqlite in a private AIRFLOW_HOME.
Every process is started in its own session and stopped by its PID's process group (its executor workers with it);
nothing listens beyond 127.0.0.1 (serve-logs, which binds every interface, is skipped: the api-server reads the
local log files, which every component writes on this one machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from airflow_checkpoint_sync.testing.server import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
CELERY_WORKERS = {
    f"celery-worker-{n}": ["celery", "worker", "--celery-hostname", f"worker{n}@127.0.0.1", "--concurrency", "4",
                           "--skip-serve-logs", "--without-gossip", "--without-mingle"]
    for n in (1, 2)
}  # fmt: skip
TERMINAL = {"success", "failed"}
#: Times a REST call refused by sqlite's lock timeout is sent again.
LOCK_TIMEOUT_RESENDS = 3
#: Seconds a request waits before the test answers it, as a person reading it would.
HUMAN_READING_S = 5.0

#: A cluster policy, as a platform team sets one in ``airflow_local_settings.py``: retries come 10 s after a failed
#: try instead of the examples' minute, so the kill scenarios fit CI's time; nothing else is changed.
LOCAL_SETTINGS = """\
import datetime as dt


def task_policy(task):
    if task.retries:
        task.retry_delay = dt.timedelta(seconds=10)
"""


class RedisServer:
    """Debian's ``redis-server`` on a free loopback port, nothing persisted; stopped by its PID."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        executable = shutil.which("redis-server")
        if executable is None:
            raise DeploymentError("redis-server is not installed (make install installs Debian's redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [executable, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise DeploymentError(f"redis-server did not answer on port {self.port}")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class DeploymentError(AssertionError):
    """The deployment did not come up, or a run did not end in time."""


class AirflowDeployment:
    """Airflow's four services for ``dags_folder``, with ``env`` (connections, say) given to every process.

    Use as a context manager; :meth:`trigger` and :meth:`wait_run` drive DAG runs through ``/api/v2``.
    """

    def __init__(
        self, home: Path, dags_folder: Path, env: dict[str, str], executor: str = "LocalExecutor", broker: str = ""
    ) -> None:
        self.home = home
        self.executor = executor
        self.components = dict(COMPONENTS)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            # A killed triggerer's triggers move to a live one once its heartbeat is this old (default 30 s).
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            # A task whose worker died (SIGKILL of a Celery worker takes its task's supervisor with it) is failed,
            # and retried, after this long without a heartbeat; the default is five minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_GCE_CHECK": "True",
        }
        if executor == "CeleryExecutor":
            self.components.update(CELERY_WORKERS)
            self.env["AIRFLOW__CELERY__BROKER_URL"] = f"{broker}/0"
            self.env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"{broker}/1"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(base_url=self.url, timeout=30)
        #: REST calls sent again because sqlite's lock timeout refused them (see :meth:`api`).
        self.lock_timeouts = 0

    # -- processes -----------------------------------------------------------------------------------------------
    def __enter__(self) -> AirflowDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config").mkdir(exist_ok=True)  # on sys.path of every Airflow process
        (self.home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
        self._airflow("db", "migrate")
        try:
            for name in self.components:
                self.start(name)
            self._wait_ready()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()
        self.stop_all()

    def start(self, name: str) -> None:
        """Start component ``name`` (again), its output to ``<home>/<name>.log``."""
        log = (self.home / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *self.components[name]],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill(self, name: str) -> None:
        """``kill -9`` component ``name`` and the processes it started (its process group)."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def kill_task_process(self, ti_id: str) -> None:
        """``kill -9`` the task runner of task instance ``ti_id``."""
        os.kill(self.task_process(ti_id)[0], signal.SIGKILL)

    def task_process(self, ti_id: str, timeout: float = 30) -> tuple[int, str]:
        """The task runner of task instance ``ti_id`` (it titles itself ``airflow worker -- <id>``) and the component
        that started it: ``(pid, component)``. Only our own components' processes are ever found."""
        title = f"airflow worker -- {ti_id}".encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    pid = int(proc.name)
                    if (proc / "cmdline").read_bytes().startswith(title) and (owner := self._component_of(pid)):
                        return pid, owner
            time.sleep(0.2)
        raise DeploymentError(f"no task process for task instance {ti_id}")

    def _component_of(self, pid: int) -> str | None:
        """The component ``pid`` is, or was started by, if it is one of ours."""
        ours = {p.pid: name for name, p in self.processes.items()}
        while pid > 1:
            if pid in ours:
                return ours[pid]
            stat = (Path("/proc") / str(pid) / "stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return None

    def stop_all(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Children that outlived their parent (a LocalExecutor worker) are still in its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def _airflow(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise DeploymentError(f"airflow {' '.join(args)} failed: {result.stderr[-3000:]}")
        return result.stdout

    def _wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise DeploymentError(f"{name} exited with {process.returncode}: {self.log(name)[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                health = self.http.get("/api/v2/monitor/health").json()
                if all(
                    (health.get(part) or {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ) and all(f"{name.replace('celery-worker-', 'worker')}@127.0.0.1 ready" in self.log(name)
                          for name in self.components if name.startswith("celery-worker")):  # fmt: skip
                    self.http.headers["Authorization"] = f"Bearer {self._token()}"
                    return
            time.sleep(1)
        raise DeploymentError(f"the deployment was not healthy within {timeout:.0f}s")

    def password(self, user: str) -> str:
        """The password the simple auth manager generated for ``user`` (it writes them to AIRFLOW_HOME)."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return str(passwords[user])

    def _token(self) -> str:
        response = self.http.post("/auth/token", json={"username": "admin", "password": self.password("admin")})
        response.raise_for_status()
        return str(response.json()["access_token"])

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    # -- REST ----------------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, conflict_is_done: bool = False, **kwargs: Any) -> Any:
        """A ``/api/v2`` call. A request that sqlite's lock timeout refused (Airflow answers HTTP 500 "Database
        error" after rolling it back) is sent again, and counted in :attr:`lock_timeouts`: several processes on one
        sqlite file, not the provider. With ``conflict_is_done``, a 409 to a resent request means its first sending
        did land."""
        for attempt in range(LOCK_TIMEOUT_RESENDS + 1):
            response = self.http.request(method, f"/api/v2{path}", **kwargs)
            if response.status_code == 500 and "Database error" in response.text and attempt < LOCK_TIMEOUT_RESENDS:
                self.lock_timeouts += 1
                time.sleep(2)
                continue
            if response.status_code == 409 and conflict_is_done and attempt:
                return None
            if response.status_code >= 400:
                raise DeploymentError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
            return response.json() if response.content else None
        raise AssertionError("unreachable")

    def wait_parsed(self, dag_ids: set[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            known = {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 100})["dags"]}
            if dag_ids <= known:
                return
            time.sleep(1)
        raise DeploymentError(f"DAGs {sorted(dag_ids - known)} were not parsed within {timeout:.0f}s")

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Unpause ``dag_id`` and trigger a run with ``conf``; returns its run id."""
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        # Its own run id, so that sending it again cannot make a second run.
        run_id = f"e2e__{time.time_ns()}"
        body = {"dag_run_id": run_id, "conf": conf, "logical_date": None}
        self.api("POST", f"/dags/{dag_id}/dagRuns", conflict_is_done=True, json=body)
        return run_id

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300, answer: str | None = None) -> str:
        """Wait for the run's end; with ``answer``, answer each of its human-in-the-loop requests with that option
        through ``/api/v2`` as the admin does in the Required Actions UI."""
        deadline = time.monotonic() + timeout
        waiting_since: dict[tuple[str, int, int], float] = {}
        answered: set[tuple[str, int, int]] = set()
        while time.monotonic() < deadline:
            state = str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
            if state in TERMINAL:
                return state
            if answer is not None:
                for ti in self.task_instances(dag_id, run_id):
                    key = (ti["task_id"], int(ti["map_index"]), int(ti.get("try_number") or 1))
                    if ti["state"] != "awaiting_input" or key in answered:
                        continue
                    # Answered like a person, who reads first: an answer within a second of the request resumes
                    # the task before the scheduler has processed the exit of its first half, and Airflow 3.3.2
                    # then fails it (the deferral race of apache/airflow 67287, which the HITL pause shares).
                    if time.monotonic() - waiting_since.setdefault(key, time.monotonic()) < HUMAN_READING_S:
                        continue
                    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/{ti['map_index']}"
                    self.api("PATCH", f"{path}/hitlDetails", conflict_is_done=True, json={"chosen_options": [answer]})
                    answered.add(key)
            time.sleep(1)
        raise DeploymentError(f"run {run_id} of {dag_id} did not end within {timeout:.0f}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def wait_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
            if states.get(task_id) == state:
                return
            time.sleep(0.5)
        raise DeploymentError(f"{dag_id}.{task_id} of {run_id} never was {state} within {timeout:.0f}s")

    def task_logs(self, dag_id: str, run_id: str) -> str:
        """Every try's log of every task of the run, as text.

        A try Airflow keeps no record of is named in the text instead: Airflow 3.3 can move a task instance to its
        next try without archiving the last one (a task reset by the scheduler, a state mismatch), and the log API
        then answers 404 for it.
        """
        parts = []
        for ti in self.task_instances(dag_id, run_id):
            for attempt in range(1, int(ti.get("try_number") or 1) + 1):
                path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{attempt}"
                params = {"full_content": "true", "map_index": str(ti.get("map_index", -1))}
                response = self.http.get(path, params=params)
                if response.status_code == 404:
                    parts.append(f"[{ti['task_id']} try {attempt}: Airflow has no record of it ({response.text})]")
                    continue
                if response.status_code >= 400:
                    raise DeploymentError(f"GET {path}: HTTP {response.status_code} {response.text[:500]}")
                parts.append(json.dumps(response.json()))
        return "\n".join(parts)

    def deferral_races(self, dag_id: str, run_id: str) -> int:
        """How many times the run met the Airflow 3.3 race that fails a deferred task whose trigger fired
        (apache/airflow 67287, 71580): the executor reported the task's exit after ``defer()`` as a success while
        the task was already queued, scheduled, or even running its resumed half again, and the scheduler failed it.
        A killed task process is a state mismatch too ("finished with state success, but ... is running" on the
        LocalExecutor): a "running" mismatch counts only for a try that deferred."""

        def entries(event: str) -> list[dict[str, Any]]:
            params = {"dag_id": dag_id, "run_id": run_id, "event": event, "limit": 100}
            return list(self.api("GET", "/eventLogs", params=params)["event_logs"])

        race = re.compile(r"finished with state success, but the task instance.s state attribute is (\w+)")
        deferred = {(e.get("task_id"), e.get("try_number")) for e in entries("deferred")}
        count = 0
        for entry in entries("state mismatch"):
            found = race.search(str(entry.get("extra")))
            if found and (
                found[1] in ("queued", "scheduled")
                or (found[1] == "running" and (entry.get("task_id"), entry.get("try_number")) in deferred)
            ):
                count += 1
        return count

    def run(self, dag_id: str, conf: dict[str, Any], timeout: float = 300) -> tuple[str, str]:
        """Trigger ``dag_id`` and wait for its end: ``(state, its task logs)``."""
        run_id = self.trigger(dag_id, conf)
        state = self.wait_run(dag_id, run_id, timeout)
        return state, self.task_logs(dag_id, run_id)


@contextlib.contextmanager
def deployment(
    home: Path, dags_folder: Path, env: dict[str, str], executor: str = "LocalExecutor"
) -> Iterator[AirflowDeployment]:
    """The deployment with ``executor``; for CeleryExecutor, with its own Redis broker, stopped after it."""
    if executor != "CeleryExecutor":
        with AirflowDeployment(home, dags_folder, env, executor) as running:
            yield running
        return
    with (
        RedisServer(home / "redis") as redis,
        AirflowDeployment(home, dags_folder, env, executor, redis.url) as running,
    ):
        yield running
