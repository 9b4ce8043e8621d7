"""`Host`: the threaded HTTP server (devhost.http_server), an event loop for async functions, and one polling
listener per blob / queue / timer trigger."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import config
from .bindings import BindingIO
from .blob_listener import BlobListener
from .catalog import BLOB_TRIGGER, HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, discover, load_app
from .http_app import HttpApp
from .http_server import ThreadedServer
from .invoker import Invoker, unbound_params
from .queue_listener import QueueListener
from .storage import Clients
from .timer import Schedule, TimerListener

log = logging.getLogger("devhost")


class Host:
    """Run a FunctionApp locally. `with Host(app, port=0) as h: requests.get(h.base_url + "/route")`.

    `app` is a FunctionApp or "module:attribute"; a string is imported from `script_root` after
    `local.settings.json` there has been loaded into the environment (without overriding it)."""

    def __init__(
        self,
        app,
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        script_root: str | None = None,
        poll_interval: float = 1.0,
        max_body: int | None = None,
        route_prefix: str | None = None,
        host_id: str | None = None,
        max_workers: int | None = None,
        graceful_timeout: float = 30,
    ):
        if isinstance(app, str):
            config.load_local_settings(script_root or ".")
            app = load_app(app, script_root)
        self.cfg = config.HostConfig.from_host_json(script_root, max_body=max_body, route_prefix=route_prefix)
        self.specs = discover(app)
        for spec in self.specs:
            if unbound_params(spec):
                raise TypeError(f"function {spec.name}: no binding for parameter(s) {unbound_params(spec)}")
            if spec.trigger_type == TIMER_TRIGGER:
                Schedule(
                    str(spec.trigger.get("schedule", ""))
                )  # an invalid schedule fails here, as in the host
        self.host, self.port, self.script_root = host, port, script_root
        self.poll_interval, self.graceful_timeout = poll_interval, graceful_timeout
        self.host_id = host_id or config.host_id()
        workers = (
            max_workers
            or int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or 0)
            or min(32, (os.cpu_count() or 1) + 4)
        )
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="devhost-func")
        self.clients = Clients()
        self.invoker = Invoker(BindingIO(self.clients), self.pool, workers, script_root)
        self._stop = threading.Event()
        self._listeners: list[threading.Thread] = []
        self._server: ThreadedServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30) -> Host:
        # proto IPPROTO_TCP, and TCP_NODELAY on every connection: else a reply written in two parts waits
        # 40 ms for a delayed ACK; Kestrel, behind the real host, sets it too
        sock = socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self.invoker.loop = self._loop
        self._thread = threading.Thread(target=self._loop.run_forever, name="devhost-loop", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._loop.is_running():
            if time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the host loop did not start")
            time.sleep(0.001)
        self._server = ThreadedServer(HttpApp(self.specs, self.invoker, self.cfg), sock, self.cfg.max_body)
        self._server.start()
        log.info("Functions:")
        for spec in self.specs:
            log.info("  %s", spec.describe(self.base_url, self.cfg.route_prefix))
            try:
                if spec.trigger_type in (BLOB_TRIGGER, QUEUE_TRIGGER):
                    config.connection_string(spec.trigger.get("connection"))
            except LookupError as exc:
                log.error("function %s is disabled: %s", spec.name, exc)
                continue
            if spec.trigger_type == BLOB_TRIGGER:
                self._listeners.append(
                    BlobListener(
                        spec,
                        self.invoker,
                        self.clients,
                        self.host_id,
                        self.poll_interval,
                        self._stop,
                        batch=self.cfg.batch_size,
                    )
                )
            elif spec.trigger_type == QUEUE_TRIGGER:
                self._listeners.append(
                    QueueListener(spec, self.invoker, self.clients, self.cfg, self.poll_interval, self._stop)
                )
            elif spec.trigger_type == TIMER_TRIGGER:
                self._listeners.append(TimerListener(spec, self.invoker, self._stop))
            elif spec.trigger_type != HTTP_TRIGGER:
                log.warning(
                    "function %s: %s triggers are not supported by devhost", spec.name, spec.trigger_type
                )
        for listener in self._listeners:
            listener.start()
        log.info("Host started: listening on %s (%d functions)", self.base_url, len(self.specs))
        return self

    def stop(self) -> None:
        """Stop polling, stop the server (running requests finish), stop the loop, drain the thread pool."""
        self._stop.set()
        for listener in self._listeners:
            listener.join()
        if self._server is not None:
            self._server.stop(self.graceful_timeout)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(self.graceful_timeout + 5)
        if self._loop is not None and not self._loop.is_running():
            self._loop.close()
        self.pool.shutdown(wait=True)
        self.clients.close()
        log.info("Host stopped")

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
