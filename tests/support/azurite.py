"""Start a real Azurite (the npm package pinned in package.json) on free loopback ports for tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from cvcore.settings import dev_connection_string

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"azurite did not listen on {port}")


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Ask a child to stop, then insist."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_azurite():
    """Yield an Azurite connection string; the emulator and its data folder vanish afterwards."""
    with running_azurite_process() as (conn, _proc):
        yield conn


@contextmanager
def running_azurite_process():
    """As running_azurite, yielding (connection string, the emulator's Popen): for tests that pause
    (SIGSTOP) or kill the storage itself (tests/chaos). Never the shared session emulator."""
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise RuntimeError("azurite is not installed: run `npm ci` (make test does)")
    ports = {svc: free_port() for svc in ("blob", "queue", "table")}
    workdir = tempfile.mkdtemp(prefix="azurite-")
    cmd = [
        str(binary),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--location",
        workdir,
        "--blobHost",
        "127.0.0.1",
        "--queueHost",
        "127.0.0.1",
        "--tableHost",
        "127.0.0.1",
        "--blobPort",
        str(ports["blob"]),
        "--queuePort",
        str(ports["queue"]),
        "--tablePort",
        str(ports["table"]),
    ]
    log = open(os.path.join(workdir, "azurite.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + 30
        for port in ports.values():
            _wait_for(port, proc, deadline)
        yield dev_connection_string(blob=ports["blob"], queue=ports["queue"], table=ports["table"]), proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a test that stopped it must not leave it unkillable by TERM
        stop_process(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
