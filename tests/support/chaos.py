"""Faults on purpose, for tests/chaos: pause the storage emulator (SIGSTOP / SIGCONT), kill a process outright
(SIGKILL), and read what storage really holds (blob names, table rows) to compare with what the replies said.

Everything here acts on processes the test started itself (a Popen it holds), never on anything found by
name, and every pause is undone in a `finally`, so a failing test cannot leave Azurite frozen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from contextlib import contextmanager

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient


def kill_hard(proc: subprocess.Popen) -> float:
    """SIGKILL the process (no handler runs, nothing is flushed) and reap it; returns the monotonic time of
    the kill."""
    at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return at


@contextmanager
def paused(proc: subprocess.Popen, seconds: float, after: float = 0.0):
    """Freeze `proc` (SIGSTOP) for `seconds`, starting `after` seconds into the block, in a background
    thread, so the block's clients run into the pause. Yields a dict that gets "stopped_at" and
    "resumed_at" (monotonic). On leaving, the process is resumed whatever happened."""
    marks: dict[str, float] = {}
    done = threading.Event()

    def freeze() -> None:
        if done.wait(after):
            return
        os.kill(proc.pid, signal.SIGSTOP)
        marks["stopped_at"] = time.monotonic()
        try:
            done.wait(seconds)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            marks["resumed_at"] = time.monotonic()

    thread = threading.Thread(target=freeze, name="chaos-pause", daemon=True)
    thread.start()
    try:
        yield marks
        thread.join(timeout=after + seconds + 5)  # let a short block still see the whole pause
    finally:
        done.set()
        thread.join(timeout=5)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)


def blob_names(conn: str, container: str, prefix: str) -> list[str]:
    """Every blob name under `prefix` in `container`, listed directly (not through the API)."""
    client = BlobServiceClient.from_connection_string(conn).get_container_client(container)
    if not client.exists():
        return []
    return sorted(b.name for b in client.list_blobs(name_starts_with=prefix))


def table_rows(conn: str, table: str, partition: str) -> list[dict]:
    """Every row of one partition, read directly from the table."""
    client = TableServiceClient.from_connection_string(conn).get_table_client(table)
    return list(client.query_entities("PartitionKey eq @p", parameters={"p": partition}))


def queue_depth(conn: str, queue: str) -> int:
    """Messages in the queue, visible or not (a message hidden by a live lease still counts)."""
    client = QueueServiceClient.from_connection_string(conn).get_queue_client(queue)
    return client.get_queue_properties().approximate_message_count or 0


def wait_until(check, timeout: float, every: float = 0.25, what: str = "condition"):
    """Poll `check()` until it returns something truthy; that value, or an AssertionError naming `what`
    after `timeout` seconds (every chaos wait is bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout:.0f} s"
        time.sleep(every)


class Tally:
    """Replies seen by status code, thread-safe, with the count of transport errors (no reply at all)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.by_status: Counter = Counter()
        self.slowest = 0.0

    def add(self, status: int | str, seconds: float) -> None:
        with self._lock:
            self.by_status[status] += 1
            self.slowest = max(self.slowest, seconds)

    def __str__(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items(), key=str))
        return f"{{{parts}}} slowest {self.slowest:.1f} s"
