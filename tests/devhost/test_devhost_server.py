"""The host's threaded HTTP/1.1 server (devhost.http_server) on the wire: raw sockets against the toy app,
for what a client library hides (keep-alive, pipelining, 100-continue, HEAD, malformed requests), and the
worker's concurrency bound on functions that now run on connection threads."""

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devhost import Host
from tests.devhost.helpers import TOYAPP

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host(toy_app):
    with Host(toy_app, port=0, script_root=TOYAPP, poll_interval=5, max_body=4096) as h:
        yield h


def _connect(host) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", host.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock: socket.socket, buffer: bytearray, head_only: bool = False):
    """(status, headers, body) of the next response on `sock`; what follows stays in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_serves_many_requests_on_one_connection(host):
    sock, buffer = _connect(host), bytearray()
    with sock:
        for n in range(5):
            sock.sendall(f"GET /items/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, body = _read_response(sock, buffer)
            assert status == 200 and json.loads(body)["route"] == {"id": str(n)}
            assert "connection" not in headers and headers["date"].endswith("GMT")


def test_pipelined_requests_are_answered_in_order(host):
    sock, buffer = _connect(host), bytearray()
    with sock:
        body = b'{"k": 1}'
        sock.sendall(
            b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
            + b"GET /items/special HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answers = [_read_response(sock, buffer) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 200]
    assert json.loads(answers[0][2])["fn"] == "item_by_id"
    assert json.loads(answers[1][2])["length"] == len(body)
    assert json.loads(answers[2][2])["fn"] == "item_special"


def test_chunked_body_reaches_the_function_whole(host):
    sock, buffer = _connect(host), bytearray()
    with sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        status, _, body = _read_response(sock, buffer)
    assert status == 200 and json.loads(body)["length"] == 7


def test_expect_100_continue_is_answered_before_the_body(host):
    sock, buffer = _connect(host), bytearray()
    with sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        status, _, _ = _read_response(sock, buffer)
        assert status == 100
        sock.sendall(b"hello")
        status, _, body = _read_response(sock, buffer)
    assert status == 200 and json.loads(body)["length"] == 5


def test_head_sends_headers_without_the_body(host):
    sock, buffer = _connect(host), bytearray()
    with sock:
        sock.sendall(b"HEAD /custom HTTP/1.1\r\nHost: x\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = _read_response(sock, buffer, head_only=True)
        assert status == 201 and int(headers["content-length"]) > 0
        status, _, body = _read_response(sock, buffer)  # the next response starts right after the head
    assert status == 200 and json.loads(body)["route"] == {"id": "2"}


def test_http_1_0_and_connection_close_end_the_connection(host):
    for request in (
        b"GET /items/3 HTTP/1.0\r\n\r\n",
        b"GET /items/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ):
        sock, buffer = _connect(host), bytearray()
        with sock:
            sock.sendall(request)
            status, headers, _ = _read_response(sock, buffer)
            assert status == 200 and headers["connection"] == "close"
            assert _closed(sock)


def test_a_malformed_request_is_a_400_and_the_connection_closes(host):
    sock, buffer = _connect(host), bytearray()
    with sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        status, _, body = _read_response(sock, buffer)
        assert status == 400 and "malformed" in json.loads(body)["error"]
        assert _closed(sock)
    assert requests.get(host.base_url + "/items/4", timeout=10).status_code == 200  # the host is fine


def test_an_oversized_body_is_drained_then_413_and_the_connection_stays_usable(host):
    sock, buffer = _connect(host), bytearray()
    with sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"z" * 5000)
        status, _, body = _read_response(sock, buffer)
        assert status == 413 and "4096" in json.loads(body)["error"]
        sock.sendall(b"GET /items/6 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock, buffer)[0] == 200


def test_a_body_past_the_drain_limit_is_refused_at_once(host, monkeypatch):
    from devhost import http_server

    monkeypatch.setattr(http_server, "DRAIN_LIMIT", 1000)
    sock, buffer = _connect(host), bytearray()
    with sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n")  # no body sent
        status, headers, _ = _read_response(sock, buffer)
        assert status == 413 and headers["connection"] == "close"
        assert _closed(sock)


def test_an_idle_keep_alive_connection_is_closed(host, monkeypatch):
    from devhost import http_server

    monkeypatch.setattr(http_server, "KEEP_ALIVE_S", 0.3)
    sock, buffer = _connect(host), bytearray()
    with sock:
        sock.sendall(b"GET /items/7 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock, buffer)[0] == 200
        started = time.monotonic()
        assert _closed(sock)
        assert time.monotonic() - started < 5


def test_functions_at_once_are_bounded_by_the_workers_even_on_connection_threads(toy_app):
    with Host(toy_app, port=0, script_root=TOYAPP, poll_interval=5, max_workers=2) as h:
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: requests.get(h.base_url + "/slow?s=0.4", timeout=10), range(4)))
        elapsed = time.perf_counter() - started
    assert [r.text for r in replies] == ["done"] * 4
    assert elapsed >= 0.75, f"4 x 0.4 s on 2 workers took {elapsed:.2f} s: more than 2 ran at once"


def test_stop_answers_the_running_request_and_closes_idle_connections(toy_app):
    h = Host(toy_app, port=0, script_root=TOYAPP, poll_interval=5).start()
    idle, buffer = _connect(h), bytearray()
    idle.sendall(b"GET /items/8 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _read_response(idle, buffer)[0] == 200
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(requests.get, h.base_url + "/slow?s=0.5", timeout=10)
        time.sleep(0.15)
        started = time.monotonic()
        h.stop()
        assert slow.result().text == "done" and slow.result().headers.get("connection") == "close"
    assert time.monotonic() - started < 5
    assert _closed(idle)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", h.port), timeout=2)
