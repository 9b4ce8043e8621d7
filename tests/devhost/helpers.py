"""Helpers shared by the local functions host's tests (import as tests.devhost.helpers)."""

from __future__ import annotations

import time
from pathlib import Path

TOYAPP = Path(__file__).resolve().parent / "toyapp"
TOY_ENV = {"DH_JSON_QUEUE": "dh-q-json"}


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; return that, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
