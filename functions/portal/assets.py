"""The portal's files, read once: name -> bytes, content type, ETag and cache policy.

Only files that exist under static/ when the app starts can be served; a request path is looked up in that
table by name, so `..`, absolute paths or encoded separators can never reach the file system. Unknown paths
without a file extension are the app's own client-side routes and get index.html."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).with_name("static")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".ico": "image/x-icon",
}
_SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob: http: https:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


@dataclass(frozen=True)
class Asset:
    data: bytes
    content_type: str
    etag: str

    def headers(self) -> dict[str, str]:
        # Revalidate every time: the files are small, and a deployment must never leave an old app running.
        return {
            "Content-Type": self.content_type,
            "ETag": self.etag,
            "Cache-Control": "no-cache",
            **_SECURITY,
        }


def _load() -> dict[str, Asset]:
    table = {}
    for file in sorted(STATIC.rglob("*")):
        if file.is_file() and file.suffix in _TYPES:
            data = file.read_bytes()
            table[file.relative_to(STATIC).as_posix()] = Asset(
                data, _TYPES[file.suffix], '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
            )
    return table


_ASSETS = _load()


def names() -> list[str]:
    return sorted(_ASSETS)


def lookup(path: str) -> Asset | None:
    path = path.strip("/")
    if not path:
        return _ASSETS.get("index.html")
    found = _ASSETS.get(path)
    if found is None and "." not in path.rsplit("/", 1)[-1]:
        return _ASSETS.get("index.html")
    return found
