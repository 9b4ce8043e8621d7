"""`make run`: Azurite on its default ports, the local functions host on 127.0.0.1:7071 and, once it
exists, the trainer worker. Prints the endpoint and keys; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AZURITE_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
HOST, PORT = "127.0.0.1", 7071


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_for(port: int, proc: subprocess.Popen, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not listening(port):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not listen on port {port} within {seconds:.0f} s")
        time.sleep(0.2)


def local_settings() -> dict:
    target = ROOT / "local.settings.json"
    if not target.exists():
        shutil.copy(ROOT / "local.settings.example.json", target)
        print(f"created {target.name} from local.settings.example.json")
    return json.loads(target.read_text())["Values"]


def start_azurite(children: list) -> None:
    busy = [p for p in AZURITE_PORTS.values() if listening(p)]
    if len(busy) == len(AZURITE_PORTS):
        print("storage: an emulator is already listening on 10000-10002; using it")
        return
    if busy:
        raise SystemExit(f"ports {busy} are taken by something else; free 10000-10002 for Azurite")
    data = ROOT / ".azurite"
    data.mkdir(exist_ok=True)
    cmd = [
        str(ROOT / "node_modules" / ".bin" / "azurite"),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--location",
        str(data),
        "--blobHost",
        "127.0.0.1",
        "--queueHost",
        "127.0.0.1",
        "--tableHost",
        "127.0.0.1",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)  # Ctrl-C reaches only the launcher
    children.append(("azurite", proc))
    for port in AZURITE_PORTS.values():
        wait_for(port, proc, "azurite")
    print(f"storage: Azurite on 127.0.0.1:10000-10002, data in {data}")


def start(children: list, name: str, args: list[str], env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, start_new_session=True)
    children.append((name, proc))
    return proc


def stop(children: list) -> None:
    for name, proc in reversed(children):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if name != "azurite" else signal.SIGTERM)
    for _name, proc in reversed(children):
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    values = local_settings()
    env = {**values, **os.environ}
    children: list = []
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if listening(PORT):
            raise SystemExit(f"port {PORT} is already in use; stop whatever runs there first")
        start_azurite(children)
        host = start(
            children,
            "functions host",
            [
                "-m",
                "devhost",
                "--app",
                "function_app:app",
                "--host",
                HOST,
                "--port",
                str(PORT),
                "--script-root",
                str(ROOT),
            ],
            env,
        )
        wait_for(PORT, host, "the functions host")
        if (ROOT / "gpu_trainer" / "__main__.py").exists():
            start(children, "trainer worker", ["-m", "gpu_trainer", "--worker"], env)
        print(
            f"""
Custom Vision is running locally.
  endpoint        http://{HOST}:{PORT}
  portal          http://{HOST}:{PORT}/portal/  (sign in with the training key)
  training key    {env.get("CUSTOMVISION_TRAINING_KEY")}
  prediction key  {env.get("CUSTOMVISION_PREDICTION_KEY")}
  drop images at  uploads/{{projectId}}/{{tagName}}/{{file}} in the local storage account
Python SDK:
  from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
  from msrest.authentication import ApiKeyCredentials
  trainer = CustomVisionTrainingClient("http://{HOST}:{PORT}",
                                       ApiKeyCredentials(in_headers={{"Training-key": "{env.get("CUSTOMVISION_TRAINING_KEY")}"}}))
Press Ctrl-C to stop.""",
            flush=True,
        )
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        stop(children)


if __name__ == "__main__":
    sys.exit(main())
