"""python -m gpu_trainer [--worker | --once]: train iterations from the `training-jobs` queue.

--worker  poll forever (local development; `make run` starts it)
--once    handle at most one message and exit (the Container Apps job mode: one execution per message)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from cvcore import settings
from cvcore.storage import StorageClients

from .store import TrainerStore
from .worker import poll


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpu_trainer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--worker", action="store_true", help="poll the queue until stopped (default)")
    mode.add_argument("--once", action="store_true", help="handle at most one message, then exit")
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between polls of an empty queue"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s trainer: %(message)s")
    storage = settings.load_storage()
    clients = StorageClients(storage)
    clients.ensure_resources()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    handled = poll(
        TrainerStore(clients), once=args.once, interval=args.poll_interval, device=args.device, stop=stop
    )
    logging.info("trainer stopped after %d message(s)", handled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
