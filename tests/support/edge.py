"""An exported edge container's program as a process: its own requirements in a fresh venv (no Docker daemon
here), then `app/server.py` on a free port."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tests.support.azurite import ROOT, stop_process

VENVS = ROOT / "build" / "edge-venvs"


def edge_python(requirements: bytes) -> Path:
    """A venv with exactly the export's requirements.txt installed (cached per its content under build/)."""
    folder = VENVS / hashlib.sha256(requirements).hexdigest()[:12]
    python = folder / "bin" / "python"
    if not (folder / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        (folder / "requirements.txt").write_bytes(requirements)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(folder / "requirements.txt"),
            ],
            check=True,
            timeout=600,
        )
        (folder / ".installed").write_text("ok\n")
    return python


@contextmanager
def edge_server(unpacked: Path, python: Path, env: dict | None = None):
    """Start the unpacked export's server; yield its base URL."""
    log = open(unpacked / "server.log", "w")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(
        [str(python), str(unpacked / "app" / "server.py"), "--host", "127.0.0.1", "--port", "0"],
        cwd=unpacked,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        line = proc.stdout.readline()
        while "listening on" not in line:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    f"edge server did not start: {line}{(unpacked / 'server.log').read_text()[-3000:]}"
                )
            line = proc.stdout.readline()
        yield line.split("listening on", 1)[1].strip()
    finally:
        stop_process(proc)
        log.close()
