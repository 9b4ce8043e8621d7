"""`python -m devhost` as a real process: local.settings.json, start-up lines, invocation logs, clean stop."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import requests

from tests.devhost.helpers import TOY_ENV, TOYAPP, wait_for
from tests.support.azurite import ROOT, free_port

pytestmark = pytest.mark.integration


def start(script_root, port, env):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "--app",
            "toy_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--script-root",
            str(script_root),
            "--poll-interval",
            "0.2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return proc, lines


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_the_app_and_stops_cleanly(azurite, tmp_path, sig):
    root = tmp_path / "app"
    shutil.copytree(TOYAPP, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                    "TOY_FROM_FILE": "file",
                    "TOY_BOTH": "file",
                    **TOY_ENV,
                },
            }
        )
    )
    env = {**os.environ, "AzureWebJobsStorage": azurite, "TOY_BOTH": "env", "PYTHONUNBUFFERED": "1"}
    env.pop("TOY_FROM_FILE", None)
    port = free_port()
    proc, lines = start(root, port, env)
    try:
        wait_for(
            lambda: any("Host started" in line for line in lines) or proc.poll() is not None,
            timeout=30,
            what="the ready line",
        )
        assert proc.poll() is None, "".join(lines)
        text = "".join(lines)
        assert f"item_by_id: [GET] http://127.0.0.1:{port}/items/{{id:int}}" in text
        assert "blob_copy: blobTrigger dh-in/{name}" in text and "queue_fail: queueTrigger dh-q-fail" in text
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/setting/TOY_FROM_FILE", timeout=10).text == "file"
        assert requests.get(f"{base}/setting/TOY_BOTH", timeout=10).text == "env"  # the environment wins
        assert requests.get(f"{base}/items/5", timeout=10).json()["fn"] == "item_by_id"
        wait_for(
            lambda: any(
                "Executed 'Functions.item_by_id' (Succeeded" in line and "Duration=" in line for line in lines
            ),
            what="the invocation log line",
        )
        slow = []  # a request in flight when the signal comes is answered before the host exits
        caller = threading.Thread(target=lambda: slow.append(requests.get(f"{base}/slow?s=0.8", timeout=10)))
        caller.start()
        wait_for(lambda: any("slow started" in line for line in lines), what="the slow request to start")
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0, "".join(lines)
        caller.join()
        assert slow and slow[0].status_code == 200 and slow[0].text == "done"
        wait_for(lambda: any("Host stopped" in line for line in lines), timeout=5, what="the stop line")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
