"""Fetch an image by URL without letting the URL reach inside the network (SSRF guards).

    fetch(url, max_bytes=...) -> Fetched(data, content_type, final_url)   or raises UrlFetchError

What a URL must pass, at every hop (the first URL and each redirect target alike):

    * scheme http or https; no user:password@; a valid port; a plain host name or IP literal;
    * the host is resolved once (getaddrinfo, or the numeric forms inet_aton accepts such as
      `2130706433` and `0x7f.1`, parsed locally); EVERY address must be publicly routable: no private,
      loopback, link-local (cloud metadata 169.254.169.254), multicast, reserved, unspecified, shared
      (100.64.0.0/10) or documentation ranges, and no IPv6 form embedding such an IPv4 address
      (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64);
    * the connection goes to the address that was checked (pinned: no second lookup, so DNS rebinding
      cannot swap it), with the original Host header and, for https, SNI and certificate verification
      against the host name;
    * origins listed in `allow_origins` (exact `scheme://host:port`) skip the address check: the
      service's own storage endpoint, which is loopback when running locally. Nothing else is exempt.

Redirects (301, 302, 303, 307, 308) are followed by hand, at most `max_redirects`. The body is refused
as soon as it is known to exceed `max_bytes` (Content-Length, or while streaming). One deadline covers
resolving, connecting, every hop and the body: a server dripping bytes cannot hold a worker past
`timeout`. Environment proxies are never used (urllib3 connections are made directly).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

__all__ = ["Fetched", "UrlFetchError", "blocked_reason", "fetch", "normalise_origin", "system_resolver"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "selfhosted-customvision-fetch/1"
_CHUNK = 64 * 1024

# host: letters, digits, hyphen, underscore (seen in real DNS), dots; after IDNA encoding.
_HOST_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")
_FORBIDDEN_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

_SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")
_EXTRA_BLOCKED_V4 = tuple(
    ipaddress.ip_network(n)
    for n in ("0.0.0.0/8", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15", "240.0.0.0/4")
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPATIBLE = ipaddress.ip_network("::/96")

Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None
    final_url: str
    status: int = 200


class UrlFetchError(Exception):
    """The URL could not, or must not, be fetched. `reason` is a short machine string:

    scheme, url, blocked-address, resolve, connect, timeout, http-status, redirects, too-large, protocol
    """

    def __init__(self, reason: str, message: str, url: str = "", status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.url = url
        self.status = status


def system_resolver(host: str, port: int) -> list[str]:
    """Every address getaddrinfo gives for host (TCP), in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def blocked_reason(ip: str) -> str | None:
    """Why this address must not be fetched from, or None when it is publicly routable."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return f"{ip!r} is not an IP address"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            inner = blocked_reason(str(addr.ipv4_mapped))
            return (
                f"{addr} is the IPv4-mapped form of an address that is not public ({inner})"
                if inner
                else None
            )
        embedded = _embedded_v4(addr)
        if embedded is not None:
            inner = blocked_reason(str(embedded))
            if inner:
                return f"{addr} embeds an IPv4 address that is not public ({inner})"
    for flag in (
        "is_unspecified",
        "is_loopback",
        "is_link_local",
        "is_multicast",
        "is_private",
        "is_reserved",
        "is_site_local",
    ):
        if getattr(addr, flag, False):
            return f"{addr} is {flag[3:].replace('_', '-')}"
    if isinstance(addr, ipaddress.IPv4Address):
        if addr in _SHARED_V4:
            return f"{addr} is carrier-grade NAT (100.64.0.0/10)"
        if any(addr in net for net in _EXTRA_BLOCKED_V4):
            return f"{addr} is in a special-purpose range"
    if not addr.is_global:
        return f"{addr} is not publicly routable"
    return None


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form carries (6to4, Teredo client, NAT64, IPv4-compatible)."""
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in _NAT64) or (addr in _V4_COMPATIBLE and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def normalise_origin(origin: str) -> str:
    """`scheme://host:port` with the scheme and host lower-cased and the default port filled in."""
    try:
        target = _check_url(origin.strip())
    except UrlFetchError as exc:
        raise ValueError(f"not an http(s) origin: {origin!r} ({exc.message})") from None
    if target.path != "/":
        raise ValueError(f"an origin has no path: {origin!r}")
    return target.origin


def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float = 10.0,
    max_redirects: int = 3,
    allow_origins: Iterable[str] = (),
    resolver: Resolver | None = None,
) -> Fetched:
    """GET `url` and return its body, or raise UrlFetchError. See the module docstring for the rules.

    `resolver(host, port) -> [ip, ...]` replaces getaddrinfo (tests; a service with its own DNS).
    """
    deadline = time.monotonic() + timeout
    allowed = frozenset(normalise_origin(o) for o in allow_origins)
    resolve = resolver or system_resolver
    visited: list[str] = []
    current = url
    while True:
        try:
            target = _check_url(current)
            visited.append(target.url)
            addresses = _resolve(target, resolve, deadline, allowed)
            status, headers, body_or_location = _get(target, addresses, max_bytes, deadline)
        except UrlFetchError as exc:
            if current is url:
                raise
            raise UrlFetchError(
                exc.reason,
                f"{_short(url)} redirected to {_short(current)}, which failed: {exc.message}",
                exc.url,
                exc.status,
            ) from None
        if status in REDIRECT_STATUSES:
            location: str = body_or_location
            if len(visited) > max_redirects:
                raise UrlFetchError(
                    "redirects", f"more than {max_redirects} redirects, the last to {_short(location)}", url
                )
            nxt = urljoin(target.url, location)
            if nxt in visited:
                raise UrlFetchError("redirects", f"redirect loop: {_short(target.url)} -> {_short(nxt)}", url)
            current = nxt
            continue
        return Fetched(body_or_location, headers.get("content-type"), target.url)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    max_bytes: int = 64 * 1024,
    timeout: float = 10.0,
    allow_origins: Iterable[str] = (),
    resolver: Resolver | None = None,
) -> Fetched:
    """POST `body` to `url` under the same rules as `fetch` (every address checked and pinned, one
    deadline, a capped answer) and return the 2xx answer; a redirect is not followed (UrlFetchError
    "http-status": a webhook that moved must be set again)."""
    deadline = time.monotonic() + timeout
    allowed = frozenset(normalise_origin(o) for o in allow_origins)
    target = _check_url(url)
    addresses = _resolve(target, resolver or system_resolver, deadline, allowed)
    status, got, answer = _get(target, addresses, max_bytes, deadline, "POST", body, headers)
    if status in REDIRECT_STATUSES:
        raise UrlFetchError(
            "http-status", f"{_short(url)} answered {status} (a redirect, not followed)", url, status
        )
    return Fetched(answer, got.get("content-type"), target.url, status)


# -- internals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    url: str  # as requested (after urljoin for redirects)
    scheme: str
    host: str  # IDNA-encoded, lower case, no brackets
    port: int
    path: str  # path + query, never empty
    origin: str  # normalised scheme://host:port

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def _short(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[:limit] + "..."


def _host_for_origin(hostname: str) -> str:
    host = hostname.lower()
    return f"[{host}]" if ":" in host else host


def _check_url(url: str) -> _Target:
    if not isinstance(url, str) or not url:
        raise UrlFetchError("url", "no URL given", str(url))
    if _FORBIDDEN_URL_CHARS.search(url):
        raise UrlFetchError(
            "url", f"URL contains whitespace, control characters or backslashes: {_short(url)!r}", url
        )
    try:
        parts: SplitResult = urlsplit(url)
    except ValueError as exc:
        raise UrlFetchError("url", f"malformed URL {_short(url)!r}: {exc}", url) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlFetchError(
            "scheme",
            f"only http and https URLs can be fetched, not {scheme or 'no'} scheme: {_short(url)}",
            url,
        )
    if "@" in parts.netloc:
        raise UrlFetchError("url", f"URLs with credentials (user:password@) are refused: {_short(url)}", url)
    try:
        port = parts.port
    except ValueError:
        raise UrlFetchError("url", f"URL has an invalid port: {_short(url)}", url) from None
    if port is None:
        port = DEFAULT_PORTS[scheme]
    elif not 1 <= port <= 65535:
        raise UrlFetchError("url", f"URL has an invalid port {port}: {_short(url)}", url)
    raw_host = parts.hostname or ""
    if not raw_host:
        raise UrlFetchError("url", f"URL has no host: {_short(url)}", url)
    host = _normalise_host(raw_host, url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        origin=f"{scheme}://{_host_for_origin(host)}:{port}",
    )


def _normalise_host(raw: str, url: str) -> str:
    if raw.startswith("[") or ":" in raw:  # urlsplit strips brackets from IPv6 literals
        try:
            return str(ipaddress.IPv6Address(raw.strip("[]").split("%", 1)[0]))
        except ValueError:
            raise UrlFetchError("url", f"URL has an invalid IPv6 host: {_short(url)}", url) from None
    try:
        host = raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UrlFetchError("url", f"URL host is not a valid domain name: {_short(url)}", url) from None
    if not _HOST_RE.match(host):
        raise UrlFetchError("url", f"URL host {raw!r} is not a valid host name: {_short(url)}", url)
    return host


def _numeric_address(host: str) -> str | None:
    """The address of an IP literal, including the legacy forms inet_aton takes (`2130706433`,
    `0x7f.1`, `0177.0.0.1`), parsed here so they never reach a DNS resolver."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


_resolver_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="urlfetch-dns")


def _resolve(target: _Target, resolve: Resolver, deadline: float, allowed: frozenset[str]) -> list[str]:
    numeric = _numeric_address(target.host)
    if numeric is not None:
        addresses = [numeric]
    else:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UrlFetchError("timeout", f"timed out before resolving {target.host}", target.url)
        future = _resolver_pool.submit(resolve, target.host, target.port)
        try:
            addresses = [str(a).split("%", 1)[0] for a in future.result(timeout=remaining)]
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise UrlFetchError("timeout", f"timed out resolving {target.host}", target.url) from None
        except (OSError, UnicodeError) as exc:
            raise UrlFetchError("resolve", f"cannot resolve host {target.host}: {exc}", target.url) from None
        if not addresses:
            raise UrlFetchError("resolve", f"host {target.host} has no addresses", target.url)
    if target.origin in allowed:
        return addresses
    for ip in addresses:
        why = blocked_reason(ip)
        if why:
            where = f"host {target.host} resolves to {ip}, and " if numeric is None else ""
            raise UrlFetchError(
                "blocked-address",
                f"refusing to fetch {_short(target.url)}: {where}{why}; "
                "only publicly routable addresses may be fetched",
                target.url,
            )
    return addresses


_ssl_lock = threading.Lock()
_default_ssl: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """The TLS context for https: system CAs, verification on; built once (loading the CA store costs
    ~20 ms). Tests replace this function to trust a local CA."""
    global _default_ssl
    if _default_ssl is None:
        with _ssl_lock:
            if _default_ssl is None:
                _default_ssl = ssl.create_default_context()
    return _default_ssl


def _connect(target: _Target, ip: str, timeout: float) -> HTTPConnection:
    """Open a connection to `ip` (already checked) for `target`; TLS is verified against target.host."""
    if target.scheme == "https":
        conn: HTTPConnection = HTTPSConnection(
            ip,
            target.port,
            timeout=timeout,
            server_hostname=target.host,
            assert_hostname=target.host,
            ssl_context=_ssl_context(),
            cert_reqs="CERT_REQUIRED",
        )
    else:
        conn = HTTPConnection(ip, target.port, timeout=timeout)
    conn.connect()
    return conn


class _Watchdog:
    """Shuts the socket down at the deadline, interrupting any blocked read (a dripping server)."""

    def __init__(self, conn: HTTPConnection, deadline: float):
        self.fired = False
        self._conn = conn
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = getattr(self._conn, "sock", None)
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def _get(
    target: _Target,
    addresses: list[str],
    max_bytes: int,
    deadline: float,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request (a GET unless told). Returns (status, headers, Location) for a redirect, (status, headers,
    body) for 2xx."""
    conn = None
    last_error: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            conn = _connect(target, ip, remaining)
            break
        except (OSError, Urllib3Error, ValueError) as exc:  # ValueError: urllib3's CertificateError
            last_error = exc
            conn = None
    if conn is None:
        if last_error is None or deadline - time.monotonic() <= 0:
            raise UrlFetchError("timeout", f"timed out connecting to {target.host}", target.url)
        if isinstance(last_error, (ssl.SSLError, ssl.CertificateError, ValueError)):
            raise UrlFetchError(
                "connect", f"TLS to {target.host} failed (certificate?): {last_error}", target.url
            )
        raise UrlFetchError(
            "connect", f"cannot connect to {target.host}:{target.port}: {last_error}", target.url
        )

    watchdog = _Watchdog(conn, deadline)
    try:
        try:
            conn.request(
                method,
                target.path,
                body=body,
                headers={
                    "Host": target.host_header,
                    "User-Agent": USER_AGENT,
                    "Accept": "image/*, */*;q=0.5",
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                    **(headers or {}),
                },
                preload_content=False,
            )
            response = conn.getresponse()
        except (OSError, Urllib3Error, ValueError, http.client.HTTPException) as exc:
            if watchdog.fired or time.monotonic() >= deadline:
                raise UrlFetchError(
                    "timeout", f"timed out waiting for {_short(target.url)}", target.url
                ) from None
            raise UrlFetchError(
                "protocol", f"no valid HTTP response from {_short(target.url)}: {exc}", target.url
            ) from None
        headers = {k.lower(): v for k, v in response.headers.items()}
        status = response.status
        if status in REDIRECT_STATUSES:
            location = headers.get("location")
            if not location:
                raise UrlFetchError(
                    "http-status",
                    f"{_short(target.url)} answered {status} without a Location",
                    target.url,
                    status,
                )
            return status, headers, location
        if not 200 <= status < 300:
            raise UrlFetchError(
                "http-status", f"{_short(target.url)} answered HTTP {status}", target.url, status
            )
        declared = headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > max_bytes:
                    raise UrlFetchError(
                        "too-large",
                        f"{_short(target.url)} is {int(declared)} bytes; the limit is {max_bytes}",
                        target.url,
                    )
            except ValueError:
                raise UrlFetchError(
                    "protocol",
                    f"{_short(target.url)} sent an invalid Content-Length {declared!r}",
                    target.url,
                ) from None
        return status, headers, _read_body(conn, response, target, max_bytes, deadline, watchdog)
    finally:
        watchdog.cancel()
        conn.close()


def _read_body(
    conn: HTTPConnection, response, target: _Target, max_bytes: int, deadline: float, watchdog: _Watchdog
) -> bytes:
    body = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UrlFetchError(
                "timeout", f"timed out reading {_short(target.url)} after {len(body)} bytes", target.url
            )
        sock = getattr(conn, "sock", None)
        if sock is not None:
            sock.settimeout(remaining)
        try:
            chunk = response.read1(min(_CHUNK, max_bytes + 1 - len(body)))
        except (OSError, Urllib3Error, ValueError, http.client.HTTPException) as exc:
            if (
                watchdog.fired
                or time.monotonic() >= deadline
                or isinstance(exc, (TimeoutError, ReadTimeoutError))
            ):
                raise UrlFetchError(
                    "timeout", f"timed out reading {_short(target.url)} after {len(body)} bytes", target.url
                ) from None
            raise UrlFetchError(
                "protocol", f"reading {_short(target.url)} failed after {len(body)} bytes: {exc}", target.url
            ) from None
        if not chunk:
            if watchdog.fired:
                raise UrlFetchError(
                    "timeout", f"timed out reading {_short(target.url)} after {len(body)} bytes", target.url
                )
            return bytes(body)
        body += chunk
        if len(body) > max_bytes:
            raise UrlFetchError(
                "too-large", f"{_short(target.url)} is more than {max_bytes} bytes (the limit)", target.url
            )
