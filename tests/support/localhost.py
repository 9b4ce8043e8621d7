"""Run the project's local functions host (python -m devhost) as a real process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from cvcore.settings import LOCAL_PREDICTION_KEY, LOCAL_TRAINING_KEY
from tests.support.azurite import ROOT, _wait_for, free_port, stop_process


@contextmanager
def running_host(connection_string: str, poll_interval: float = 0.2, extra_env: dict | None = None):
    """Yield the base URL of a local functions host serving function_app on real storage."""
    port = free_port()
    env = {
        **os.environ,
        "AzureWebJobsStorage": connection_string,
        "CUSTOMVISION_TRAINING_KEY": LOCAL_TRAINING_KEY,
        "CUSTOMVISION_PREDICTION_KEY": LOCAL_PREDICTION_KEY,
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log = tempfile.NamedTemporaryFile(prefix="devhost-", suffix=".log", delete=False)
    cmd = [
        sys.executable,
        "-m",
        "devhost",
        "--app",
        "function_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--script-root",
        str(ROOT),
        "--poll-interval",
        str(poll_interval),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            _wait_for(port, proc, time.monotonic() + 60)
        except Exception:
            log.flush()
            raise RuntimeError("local host did not start:\n" + open(log.name).read()[-4000:]) from None
        proc.log_path = log.name
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()
        os.unlink(log.name)


@contextmanager
def running_trainer(connection_string: str, poll_interval: float = 0.3, env: dict | None = None):
    """The trainer worker (python -m gpu_trainer --worker) as a real process on the same storage; `env` adds
    settings (e.g. TRAINER_QUICK_CPU_SECONDS)."""
    env = {**os.environ, "AzureWebJobsStorage": connection_string, "PYTHONUNBUFFERED": "1", **(env or {})}
    log = tempfile.NamedTemporaryFile(prefix="trainer-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpu_trainer",
            "--worker",
            "--poll-interval",
            str(poll_interval),
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        proc.log_path = log.name
        yield proc
    finally:
        stop_process(proc, timeout=30)
        log.close()
        os.unlink(log.name)
