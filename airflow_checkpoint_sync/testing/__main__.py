"""``python -m airflow_checkpoint_sync.testing serve``: run the Feldera sandbox for a person or another process.

``... approve <dag_id>``: answer that DAG's human-in-the-loop requests (an ``ApprovalOperator``'s) through Airflow's
own handler, for ``airflow dags test`` runs sharing this process's metadata database.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .server import FelderaSandbox
from .settings import DEFAULT_PROFILE, PROFILES, Timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_checkpoint_sync.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Feldera sandbox on loopback until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("FELDERA_SANDBOX_API_KEY"),
        help="require 'Authorization: Bearer <key>' (default: $FELDERA_SANDBOX_API_KEY, else no auth)",
    )
    serve.add_argument("--edition", choices=("enterprise", "community"), default="enterprise")
    serve.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=None,
        help=f"the Feldera release line to answer as (default {DEFAULT_PROFILE}; 0.337 has no 'running' in the sync "
        "status and keeps a checkpoint's success and failure apart)",
    )
    serve.add_argument(
        "--no-sync-running-field",
        action="store_true",
        help="the same as --profile 0.337",
    )
    serve.add_argument("--sync-delay", type=float, default=0.0, help="seconds each checkpoint push takes")
    approve = sub.add_parser("approve", help="answer a DAG's human-in-the-loop requests, as a person would")
    approve.add_argument("dag_id")
    approve.add_argument("--option", default="Approve", help="the chosen option (default Approve)")
    approve.add_argument("--params", default="{}", help="the form's fields, as JSON (default {})")
    approve.add_argument("--user", default="oncall", help="the respondent's user name (default oncall)")
    approve.add_argument("--count", type=int, default=1, help="requests to answer before exiting (default 1)")
    approve.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for them (default 600)")
    args = parser.parse_args(argv)
    if args.command == "approve":
        from .approvals import answer_until

        fields = json.loads(args.params)
        done = answer_until(args.dag_id, args.option, fields, args.user, args.count, args.timeout)
        print(f"answered {done} of {args.count} request(s) of {args.dag_id} with {args.option!r}", flush=True)
        return 0 if done == args.count else 1

    sandbox = FelderaSandbox(
        api_key=args.api_key,
        edition=args.edition,
        profile=args.profile or ("0.337" if args.no_sync_running_field else None),
        timings=Timings(sync_delay_s=args.sync_delay),
        port=args.port,
        host=args.host,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sandbox.start()
    print(
        f"Feldera sandbox ({args.edition}, version {sandbox.engine.settings.version}, profile "
        f"{sandbox.engine.settings.profile}) serving on {sandbox.url}"
        f"{' with API key auth' if args.api_key else ''}; control API at {sandbox.url}/sandbox/; Ctrl-C stops it",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
