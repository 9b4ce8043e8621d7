"""`python -m devhost --app function_app:app --host 127.0.0.1 --port 7071 [--script-root .]
[--poll-interval 1.0]`: runs until SIGINT / SIGTERM, then stops cleanly."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .config import DEFAULT_MAX_BODY


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devhost", description="Run an Azure Functions app locally.")
    p.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7071)
    p.add_argument("--script-root", default=".", help="folder of host.json, local.settings.json and the app")
    p.add_argument("--poll-interval", type=float, default=1.0, help="seconds between blob / queue polls")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="request body limit in bytes")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    root = os.path.abspath(args.script_root)
    os.chdir(root)  # `func start` runs the worker in the script root
    from .host import Host

    stopping = threading.Event()

    def on_signal(*_):
        if stopping.is_set():  # a second Ctrl-C: do not wait for running functions
            os._exit(130)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    host = Host(
        args.app,
        host=args.host,
        port=args.port,
        script_root=root,
        poll_interval=args.poll_interval,
        max_body=args.max_body,
    )
    host.start()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
