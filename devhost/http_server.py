"""The host's HTTP/1.1 server: one thread per connection reads a request (httptools parses it, as it did
under uvicorn), runs the HTTP-triggered function on that same thread and writes the answer.

Why not an event loop: the Python worker runs a sync function on a pool thread, so an asyncio server hands
every request to a pool thread and its answer back to the loop. Next to an 8 ms model those two wake-ups
cost more than HTTP itself (benchmarks/prediction.py: uvicorn + pool added 1.1-1.4 ms to a warm
prediction, a connection thread 0.3-0.4 ms). A connection's own thread pays neither; the number of
functions running at once is still the worker's (Invoker's slots), and async functions still run on the
host's loop.

Keep-alive (idle connections close after KEEP_ALIVE_S, as uvicorn's default), chunked bodies, pipelined
requests, `Expect: 100-continue`, HEAD and a body limit: an oversized body is read and dropped up to
DRAIN_LIMIT past the limit so the client gets its 413 rather than a reset connection; beyond that the
413 goes at once and the connection closes.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

import httptools

log = logging.getLogger("devhost")

KEEP_ALIVE_S = 5.0  # an idle keep-alive connection is closed after this long
READ_TIMEOUT_S = 60.0  # a request that stops arriving half-way is given up after this long
DRAIN_LIMIT = 64 * 1024 * 1024  # an oversized body up to this much more is read and dropped before the 413
MAX_CONNECTIONS = 256  # served at once; more wait for one of them to close
_RECV = 256 * 1024
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass
class Request:
    method: str
    path: bytes  # as sent, percent-encoded, without the query
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes | None  # None: over the server's body limit (read and dropped)
    server: tuple[str, int]


Response = tuple[int, list[tuple[str, str]], bytes]
App = Callable[[Request], Response]


def respond(status: int, payload, headers: list | None = None) -> Response:
    """A JSON answer (None: an empty body) with any extra headers: the host's own replies."""
    body = json.dumps(payload).encode() if payload is not None else b""
    head = [("Content-Type", "application/json; charset=utf-8")] if payload is not None else []
    return status, head + list(headers or []), body


class _Messages:
    """httptools callbacks: complete requests in arrival order (pipelining), the body limit applied."""

    def __init__(self, conn: socket.socket, max_body: int, server: tuple[str, int]):
        self.conn, self.max_body, self.server = conn, max_body, server
        self.done: list[tuple[Request, bool]] = []  # (request, keep alive)
        self.too_large_now = False  # over the drain limit: answer 413 and close
        self.parser: httptools.HttpRequestParser | None = None
        self._start()

    def _start(self) -> None:
        self.url, self.headers = b"", list[tuple[bytes, bytes]]()
        self.chunks: list[bytes] | None = []
        self.size = 0
        self.in_message = False

    def on_message_begin(self) -> None:
        self._start()
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        length = next((v for k, v in self.headers if k == b"content-length"), None)
        if length is not None and length.strip().isdigit() and int(length) > self.max_body + DRAIN_LIMIT:
            self.too_large_now = True
            return
        expect = next((v for k, v in self.headers if k == b"expect"), b"")
        if expect.lower() == b"100-continue" and not self.done:
            self.conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            self.chunks = None
            if self.size > self.max_body + DRAIN_LIMIT:
                self.too_large_now = True
        elif self.chunks is not None:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        url = httptools.parse_url(self.url)
        body = None if self.chunks is None else b"".join(self.chunks)
        request = Request(
            self.parser.get_method().decode("latin-1"),
            url.path or b"/",
            url.query or b"",
            self.headers,
            body,
            self.server,
        )
        self.done.append((request, self.parser.should_keep_alive()))
        self.in_message = False


@dataclass(eq=False)  # one per socket, kept in a set
class _Connection:
    sock: socket.socket
    busy: bool = False
    closing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ThreadedServer:
    def __init__(self, app: App, sock: socket.socket, max_body: int):
        self.app, self.sock, self.max_body = app, sock, max_body
        self.server = sock.getsockname()[:2]
        self._stopping = threading.Event()
        self._connections: set[_Connection] = set()
        # a connection's thread serves the next connection once it closes (an idle one is reused before a
        # new one starts): each thread that ran a model keeps onnxruntime's and malloc's per-thread buffers,
        # so a thread per connection grew the host by ~300 MB over a benchmark's few hundred connections
        self._pool = ThreadPoolExecutor(MAX_CONNECTIONS, thread_name_prefix="devhost-conn")
        self._lock = threading.Lock()
        self._accepting: threading.Thread | None = None
        self._date = (0, "")

    def start(self) -> None:
        self.sock.listen(1024)
        self.sock.settimeout(
            0.5
        )  # accept wakes this often to see a stop even where shutdown() does not wake it
        self._accepting = threading.Thread(target=self._accept, name="devhost-http", daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # out of descriptors, say: try again
                continue
            conn = _Connection(sock)
            with self._lock:
                self._connections.add(conn)
            self._pool.submit(self._serve, conn)

    def _serve(self, conn: _Connection) -> None:
        sock = conn.sock
        try:
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            messages = _Messages(sock, self.max_body, self.server)
            parser = httptools.HttpRequestParser(messages)
            messages.parser = parser
            while not conn.closing:
                sock.settimeout(READ_TIMEOUT_S if messages.in_message else KEEP_ALIVE_S)
                try:
                    data = sock.recv(_RECV)
                except (TimeoutError, OSError):
                    return
                if not data:
                    return
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    self._write(
                        conn, respond(400, {"error": "protocol upgrades are not served"}), "GET", False
                    )
                    return
                except httptools.HttpParserError:
                    self._write(conn, respond(400, {"error": "malformed HTTP request"}), "GET", False)
                    return
                if messages.too_large_now:
                    self._write(
                        conn,
                        respond(413, {"error": f"request body is larger than {self.max_body} bytes"}),
                        "",
                        False,
                    )
                    return
                while messages.done:
                    request, keep_alive = messages.done.pop(0)
                    with conn.lock:
                        conn.busy = True
                    try:
                        response = self._answer(request)
                    finally:
                        with conn.lock:
                            conn.busy = False
                            keep_alive = keep_alive and not conn.closing
                    if not self._write(conn, response, request.method, keep_alive) or not keep_alive:
                        return
        finally:
            with self._lock:
                self._connections.discard(conn)
            try:
                sock.close()
            except OSError:
                pass

    def _answer(self, request: Request) -> Response:
        try:
            return self.app(request)
        except Exception:
            log.exception("the host failed on %s %r", request.method, request.path)
            return respond(500, {"error": "host error"})

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    def _write(self, conn: _Connection, response: Response, method: str, keep_alive: bool) -> bool:
        status, headers, body = response
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"date: {self._http_date()}", "server: devhost"]
        names = set()
        for k, v in headers:
            names.add(k.lower())
            lines.append(f"{k}: {v}")
        if (
            "content-length" not in names
            and "transfer-encoding" not in names
            and status not in _NO_BODY_STATUS
        ):
            lines.append(f"content-length: {len(body)}")
        if not keep_alive:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD" or status in _NO_BODY_STATUS:
            body = b""
        try:
            if len(body) <= 65536:
                conn.sock.sendall(head + body)
            else:
                conn.sock.sendall(head)
                conn.sock.sendall(body)
            return True
        except OSError:
            return False

    def stop(self, timeout: float) -> None:
        """Stop accepting, close idle connections, let running requests finish (up to `timeout`)."""
        self._stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._accepting is not None:
            self._accepting.join(2)
        self.sock.close()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                connections = list(self._connections)
            for conn in connections:
                with conn.lock:
                    conn.closing = True
                    idle = not conn.busy
                if idle:
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            if not connections or time.monotonic() > deadline:
                self._pool.shutdown(wait=False, cancel_futures=True)
                return
            time.sleep(0.02)
