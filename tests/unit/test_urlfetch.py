"""cvcore.urlfetch: SSRF guards, pinning, redirects, size and time limits.

Only loopback servers are ever contacted. Every test that expects a refusal also proves that no
connection was attempted (the connector is wrapped by a recorder), and addresses that must never be
contacted are only ever handed to a connector that refuses to connect.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from cvcore import urlfetch
from cvcore.urlfetch import Fetched, UrlFetchError, blocked_reason, fetch, normalise_origin
from tests.support import images

BIG = 10 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None and "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _stream(self, total: int, chunk: int = 65536):
        sent = 0
        try:
            while sent < total:
                self.wfile.write(b"\0" * chunk)
                sent += chunk
        except OSError:
            pass

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Host")))
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/image":
            self._send(200, images.photo_jpeg(0), {"Content-Type": "image/jpeg"})
        elif path == "/echo-host":
            self._send(200, (self.headers.get("Host") or "").encode(), {"Content-Type": "text/plain"})
        elif path == "/sized":
            self._send(200, b"x" * int(q["n"]), {"Content-Type": "application/octet-stream"})
        elif path == "/huge-cl":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            self._stream(BIG)
        elif path == "/huge-no-cl":
            self.send_response(200)
            self.end_headers()
            self._stream(BIG)
        elif path == "/huge-chunked":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            try:
                for _ in range(BIG // 65536):
                    self.wfile.write(b"10000\r\n" + b"\0" * 65536 + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            self.close_connection = True
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self._drip(b"x" * 200)
        elif path == "/drip-headers":
            self._drip(b"HTTP/1.0 200 OK\r\n" + b"X-Slow: " + b"y" * 200 + b"\r\n\r\n")
        elif path == "/redirect":
            self._send(int(q.get("code", 302)), b"", {"Location": q["to"]})
        elif path == "/no-location":
            self._send(302)
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            self._send(301, b"", {"Location": f"/chain/{n - 1}" if n > 0 else "/image"})
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"nope")
        else:
            self._send(404, b"unknown route")

    def _drip(self, payload: bytes):
        try:
            for b in payload:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass


class _Server:
    def __init__(self, tls: ssl.SSLContext | None = None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.seen = []
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self.origin = f"{self.scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return self.origin + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture(scope="module")
def other_server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def connections(monkeypatch):
    """Every connection fetch opens: (host name, ip, port). Real connections only go to 127.0.0.1."""
    calls: list[tuple[str, str, int]] = []
    real = urlfetch._connect

    def recording(target, ip, timeout):
        calls.append((target.host, ip, target.port))
        assert ip == "127.0.0.1", f"test tried to connect to {ip}"
        return real(target, ip, timeout)

    monkeypatch.setattr(urlfetch, "_connect", recording)
    return calls


@pytest.fixture
def no_connect(monkeypatch):
    """A connector that records and refuses: for addresses that must never really be contacted."""
    calls: list[tuple[str, str, int]] = []

    def refusing(target, ip, timeout):
        calls.append((target.host, ip, target.port))
        raise ConnectionRefusedError(f"test connector: not connecting to {ip}")

    monkeypatch.setattr(urlfetch, "_connect", refusing)
    return calls


def _fails(reason: str, url: str, **kw) -> UrlFetchError:
    kw.setdefault("max_bytes", 1 << 20)
    with pytest.raises(UrlFetchError) as info:
        fetch(url, **kw)
    assert info.value.reason == reason, (info.value.reason, info.value.message)
    assert info.value.message
    return info.value


def _never_resolve(host, port):
    raise AssertionError(f"resolver called for {host!r}")


# -- happy path ------------------------------------------------------------------------------------


def test_fetches_an_image_from_an_allowed_origin(server, connections):
    got = fetch(server.url("/image"), max_bytes=1 << 20, allow_origins=[server.origin])
    assert isinstance(got, Fetched)
    assert got.data == images.photo_jpeg(0)
    assert got.content_type == "image/jpeg"
    assert got.final_url == server.url("/image")
    assert connections == [("127.0.0.1", "127.0.0.1", server.port)]


def test_body_exactly_at_the_limit_is_accepted(server, connections):
    got = fetch(server.url("/sized?n=5000"), max_bytes=5000, allow_origins=[server.origin])
    assert len(got.data) == 5000


def test_relative_redirect_is_followed(server, connections):
    got = fetch(server.url("/redirect?to=/image&code=307"), max_bytes=1 << 20, allow_origins=[server.origin])
    assert got.final_url == server.url("/image")
    assert got.data == images.photo_jpeg(0)
    assert len(connections) == 2


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(server, connections, code):
    got = fetch(
        server.url(f"/redirect?to=/echo-host&code={code}"), max_bytes=1000, allow_origins=[server.origin]
    )
    assert got.final_url == server.url("/echo-host")


def test_redirect_chain_within_the_limit(server, connections):
    got = fetch(server.url("/chain/2"), max_bytes=1 << 20, max_redirects=3, allow_origins=[server.origin])
    assert got.final_url == server.url("/image") and len(connections) == 4


# -- refused before anything is connected ---------------------------------------------------------


@pytest.mark.parametrize(
    "url,reason",
    [
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.com/a.jpg", "scheme"),
        ("gopher://127.0.0.1:70/_GET", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("//example.com/a.jpg", "scheme"),
        ("http://user:pass@example.com/a.jpg", "url"),
        ("http://user@example.com/a.jpg", "url"),
        ("http://example.com\\@127.0.0.1/", "url"),
        ("http://example.com:0/", "url"),
        ("http://example.com:65536/", "url"),
        ("http://example.com:abc/", "url"),
        ("http:///a.jpg", "url"),
        ("http://exa mple.com/", "url"),
        ("http://%31%32%37.0.0.1/", "url"),
        ("http://[::1/", "url"),
        ("", "url"),
    ],
)
def test_malformed_or_wrong_scheme(url, reason, no_connect):
    _fails(reason, url, resolver=_never_resolve)
    assert no_connect == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://017700000001/",
        "http://0/",
        "http://0.0.0.0:8080/",
        "http://[::1]:1/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1%25eth0]/",
        "http://[fd00::1]/",
        "http://10.0.0.1/",
        "http://10.255.255.255/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.0.1/",
        "http://192.168.255.255/",
        "http://100.64.0.1/",
        "http://100.127.255.254/",
        "http://224.0.0.1/",
        "http://239.255.255.250/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://192.0.2.1/",
        "http://198.18.0.1/",
        "https://127.0.0.1:443/",
        "http://[2002:a00:1::]/",
        "http://[64:ff9b::10.0.0.1]/",
        "http://[::10.0.0.1]/",
        "http://[ff02::1]/",
    ],
)
def test_blocked_ip_literals(url, no_connect):
    err = _fails("blocked-address", url, resolver=_never_resolve)
    assert "refusing to fetch" in err.message
    assert no_connect == []


def test_localhost_name_is_blocked(no_connect):
    _fails("blocked-address", "http://localhost:1/")  # the real resolver: /etc/hosts
    assert no_connect == []


def test_loopback_server_is_refused_unless_allowed(server, no_connect):
    requests_before = len(server.httpd.seen)
    _fails("blocked-address", server.url("/image"))
    _fails("blocked-address", server.url("/image"), allow_origins=[f"http://127.0.0.1:{server.port + 1}"])
    _fails("blocked-address", server.url("/image"), allow_origins=[f"https://127.0.0.1:{server.port}"])
    # the origin is matched exactly, by name: localhost is not 127.0.0.1
    _fails("blocked-address", f"http://localhost:{server.port}/image", allow_origins=[server.origin])
    assert no_connect == [] and len(server.httpd.seen) == requests_before


def test_hostname_resolving_to_a_private_address_is_refused(no_connect):
    calls = []

    def resolver(host, port):
        calls.append((host, port))
        return {
            "intranet.example.test": ["10.1.2.3"],
            "mixed.example.test": ["93.184.216.34", "192.168.1.5"],
            "v6.example.test": ["2606:4700::1111", "fd12::1"],
            "mapped.example.test": ["::ffff:169.254.169.254"],
        }[host]

    for host in ("intranet", "mixed", "v6", "mapped"):
        err = _fails("blocked-address", f"http://{host}.example.test/a.jpg", resolver=resolver)
        assert f"{host}.example.test resolves to" in err.message
    assert [h for h, _ in calls] == [
        "intranet.example.test",
        "mixed.example.test",
        "v6.example.test",
        "mapped.example.test",
    ]
    assert no_connect == []


def test_public_hostname_connects_to_the_checked_ip_only(no_connect):
    """Pinning: one lookup, and the connection goes to the address that was checked, with the name kept
    for the Host header and TLS. A rebinding resolver (public first, loopback after) gains nothing."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])
    calls = []

    def rebinding(host, port):
        calls.append(host)
        return next(answers)

    err = _fails("connect", "https://images.example.test/cat.jpg", resolver=rebinding, timeout=2)
    assert calls == ["images.example.test"]
    assert no_connect == [("images.example.test", "93.184.216.34", 443)]
    assert "images.example.test" in err.message


def test_every_checked_address_may_be_tried_but_nothing_else(no_connect):
    resolver = lambda host, port: ["93.184.216.34", "2606:4700::1111"]
    _fails("connect", "http://two.example.test:8080/", resolver=resolver)
    assert no_connect == [
        ("two.example.test", "93.184.216.34", 8080),
        ("two.example.test", "2606:4700::1111", 8080),
    ]


def test_pinned_connection_sends_the_original_host(server, connections):
    calls = []

    def resolver(host, port):
        calls.append(host)
        return ["127.0.0.1"]

    origin = f"http://images.example.test:{server.port}"
    got = fetch(f"{origin}/echo-host", max_bytes=1000, allow_origins=[origin], resolver=resolver)
    assert got.data == f"images.example.test:{server.port}".encode()
    assert calls == ["images.example.test"]
    assert connections == [("images.example.test", "127.0.0.1", server.port)]


def test_idna_host_is_resolved_encoded(no_connect):
    seen = []

    def resolver(host, port):
        seen.append(host)
        return ["10.0.0.1"]

    _fails("blocked-address", "http://bücher.example.test/", resolver=resolver)
    assert seen == ["xn--bcher-kva.example.test"]


def test_resolution_failure(no_connect):
    def resolver(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    _fails("resolve", "http://nowhere.example.test/", resolver=resolver)
    _fails("resolve", "http://empty.example.test/", resolver=lambda h, p: [])
    assert no_connect == []


def test_slow_resolution_hits_the_deadline(no_connect):
    def slow(host, port):
        time.sleep(1.0)
        return ["93.184.216.34"]

    start = time.monotonic()
    _fails("timeout", "http://slow.example.test/", resolver=slow, timeout=0.2)
    assert time.monotonic() - start < 0.6
    assert no_connect == []


# -- redirects are checked like the first URL -------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://2130706433/",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1/",
    ],
)
def test_redirect_to_a_blocked_target(server, connections, target):
    from urllib.parse import quote

    err = _fails(
        "blocked-address"
        if target.startswith("http://") and "@" not in target
        else ("scheme" if target.startswith("file") else "url"),
        server.url(f"/redirect?to={quote(target, safe='')}"),
        allow_origins=[server.origin],
        resolver=_never_resolve,
    )
    assert connections == [("127.0.0.1", "127.0.0.1", server.port)]
    assert err.url == server.url(f"/redirect?to={quote(target, safe='')}") or err.url == target


def test_redirect_to_another_loopback_port_is_refused(server, other_server, connections):
    _fails(
        "blocked-address",
        server.url(f"/redirect?to={other_server.url('/image')}"),
        allow_origins=[server.origin],
    )
    assert connections == [("127.0.0.1", "127.0.0.1", server.port)]
    assert other_server.httpd.seen == []


def test_redirect_loop(server, connections):
    err = _fails("redirects", server.url("/loop"), allow_origins=[server.origin])
    assert "loop" in err.message
    assert len(connections) == 1


def test_too_many_redirects(server, connections):
    _fails("redirects", server.url("/chain/3"), max_redirects=2, allow_origins=[server.origin])
    assert len(connections) == 3
    _fails("redirects", server.url("/chain/0"), max_redirects=0, allow_origins=[server.origin])


def test_redirect_without_location(server, connections):
    err = _fails("http-status", server.url("/no-location"), allow_origins=[server.origin])
    assert err.status == 302


@pytest.mark.parametrize("code", [204 + 200, 403, 404, 500, 503, 304])
def test_error_status(server, connections, code):
    err = _fails("http-status", server.url(f"/status/{code}"), allow_origins=[server.origin])
    assert err.status == code and str(code) in err.message


# -- size and time ---------------------------------------------------------------------------------


def test_declared_length_over_the_limit_is_refused_before_reading(server, connections):
    start = time.monotonic()
    err = _fails("too-large", server.url("/huge-cl"), max_bytes=1 << 20, allow_origins=[server.origin])
    assert str(BIG) in err.message
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("path", ["/huge-no-cl", "/huge-chunked"])
def test_streamed_body_over_the_limit_stops_early(server, connections, path):
    start = time.monotonic()
    _fails("too-large", server.url(path), max_bytes=256 * 1024, allow_origins=[server.origin])
    assert time.monotonic() - start < 2


def test_body_one_byte_over_the_limit(server, connections):
    _fails("too-large", server.url("/sized?n=5001"), max_bytes=5000, allow_origins=[server.origin])


def test_slow_drip_body_hits_the_overall_deadline(server, connections):
    start = time.monotonic()
    err = _fails("timeout", server.url("/drip"), timeout=0.6, allow_origins=[server.origin])
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 1.2, elapsed
    assert "timed out" in err.message


def test_slow_drip_headers_hit_the_overall_deadline(server, connections):
    start = time.monotonic()
    _fails("timeout", server.url("/drip-headers"), timeout=0.6, allow_origins=[server.origin])
    assert time.monotonic() - start < 1.2


def test_deadline_spans_redirects(server, connections):
    # one redirect, then a drip: the budget is shared, not renewed per hop
    start = time.monotonic()
    _fails("timeout", server.url("/redirect?to=/drip"), timeout=0.6, allow_origins=[server.origin])
    assert time.monotonic() - start < 1.2


def test_connection_refused(connections):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        err = _fails("connect", f"http://127.0.0.1:{port}/", allow_origins=[f"http://127.0.0.1:{port}"])
    assert str(port) in err.message


# -- origins and addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,expected",
    [
        ("http://127.0.0.1:10000", "http://127.0.0.1:10000"),
        ("HTTP://LocalHost:10000/", "http://localhost:10000"),
        ("https://Example.COM", "https://example.com:443"),
        ("http://example.com", "http://example.com:80"),
        ("http://[0:0::1]:10000", "http://[::1]:10000"),
    ],
)
def test_normalise_origin(given, expected):
    assert normalise_origin(given) == expected


@pytest.mark.parametrize("bad", ["ftp://x", "http://", "http://x:99999", "http://u@x", "http://x/path"])
def test_normalise_origin_refuses(bad):
    with pytest.raises(ValueError):
        normalise_origin(bad)


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "127.255.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00::1",
        "ff02::1",
        "fec0::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "::127.0.0.1",
        "::10.0.0.1",
        "2002:7f00:1::",
        "2002:c0a8:101::",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1 (obfuscated)
    ],
)
def test_blocked_addresses(ip):
    assert blocked_reason(ip) is not None


@pytest.mark.parametrize(
    "ip",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "100.128.0.1",
        "172.32.0.1",
    ],
)
def test_public_addresses(ip):
    assert blocked_reason(ip) is None


def test_carrier_grade_nat_is_named():
    assert "100.64.0.0/10" in blocked_reason("100.100.100.100")


# -- https: SNI and certificate verification against the name, while connecting to the pinned IP ----


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not available to make a test CA")
    d = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=images.example.test")
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:images.example.test\nextendedKeyUsage=serverAuth\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return d


@pytest.fixture(scope="module")
def tls_server(tls_files):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    sni: list[str | None] = []
    ctx.sni_callback = lambda sock, name, c: sni.append(name)
    s = _Server(tls=ctx)
    s.sni = sni
    yield s
    s.close()


@pytest.fixture
def trust_test_ca(monkeypatch, tls_files):
    monkeypatch.setattr(
        urlfetch, "_ssl_context", lambda: ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    )


def test_https_verifies_the_name_on_the_pinned_ip(tls_server, trust_test_ca, connections):
    origin = f"https://images.example.test:{tls_server.port}"
    got = fetch(
        f"{origin}/echo-host", max_bytes=1000, allow_origins=[origin], resolver=lambda h, p: ["127.0.0.1"]
    )
    assert got.data == f"images.example.test:{tls_server.port}".encode()
    assert tls_server.sni[-1] == "images.example.test"
    assert connections == [("images.example.test", "127.0.0.1", tls_server.port)]


def test_https_with_a_certificate_for_another_name_fails(tls_server, trust_test_ca, connections):
    origin = f"https://other.example.test:{tls_server.port}"
    _fails("connect", f"{origin}/image", allow_origins=[origin], resolver=lambda h, p: ["127.0.0.1"])
    assert tls_server.sni[-1] == "other.example.test"


def test_https_with_an_untrusted_certificate_fails(tls_server, connections):
    origin = f"https://images.example.test:{tls_server.port}"
    _fails("connect", f"{origin}/image", allow_origins=[origin], resolver=lambda h, p: ["127.0.0.1"])
