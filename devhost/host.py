"""`Host`: uvicorn on a background event loop plus one polling listener per blob / queue trigger."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import uvicorn

from . import config
from .bindings import BindingIO
from .blob_listener import BlobListener
from .catalog import BLOB_TRIGGER, HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, discover, load_app
from .http_app import HttpApp
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
        self.invoker = Invoker(BindingIO(self.clients), self.pool, script_root)
        self._stop = threading.Event()
        self._listeners: list[threading.Thread] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30) -> Host:
        # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so (else every reply written in
        # two parts waits 40 ms for a delayed ACK); Kestrel, behind the real host, sets it too
        sock = socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        app = HttpApp(self.specs, self.invoker, self.cfg)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                lifespan="on",
                log_config=None,
                log_level="warning",
                access_log=False,
                http="httptools",
                loop="asyncio",
                timeout_graceful_shutdown=self.graceful_timeout,  # type: ignore[arg-type]  # uvicorn waits a float fine
            )
        )

        async def serve():
            self.invoker.loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[sock])

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), name="devhost-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
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
        """Stop polling, let running invocations finish, shut uvicorn down, drain the thread pool."""
        self._stop.set()
        for listener in self._listeners:
            listener.join()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.graceful_timeout + 5)
        self.pool.shutdown(wait=True)
        self.clients.close()
        log.info("Host stopped")

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
