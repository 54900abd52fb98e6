"""``python -m airflow_checkpoint_sync.testing serve``: run the Feldera sandbox for a person or another process."""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

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
