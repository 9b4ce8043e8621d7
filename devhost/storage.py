"""Storage clients per connection string, and the small helpers the listeners and bindings share."""

from __future__ import annotations

import base64
import logging
import os
import threading

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from . import config

CLIENT_OPTIONS = dict(retry_total=3, connection_timeout=10, read_timeout=60)


class Clients:
    """Thread-safe cache of service clients keyed by the app setting a binding names."""

    def __init__(self, environ=None):
        self._environ = environ
        self._lock = threading.Lock()
        self._cache: dict = {}
        self._made: set = set()

    def _get(self, kind, setting):
        conn = config.connection_string(setting, self._environ)
        with self._lock:
            key = (kind, conn)
            if key not in self._cache:
                cls = BlobServiceClient if kind == "blob" else QueueServiceClient
                self._cache[key] = cls.from_connection_string(conn, **CLIENT_OPTIONS)
            return self._cache[key]

    def has_setting(self, name: str) -> bool:
        return bool((os.environ if self._environ is None else self._environ).get(name))

    def blob_service(self, setting: str | None) -> BlobServiceClient:
        return self._get("blob", setting)

    def queue_service(self, setting: str | None) -> QueueServiceClient:
        return self._get("queue", setting)

    def container(self, setting, name: str, create: bool = True):
        client = self.blob_service(setting).get_container_client(name)
        if create:
            self._ensure(("container", client.url), client.create_container)
        return client

    def queue(self, setting, name: str, create: bool = True):
        client = self.queue_service(setting).get_queue_client(name)
        if create:
            self._ensure(("queue", client.url), client.create_queue)
        return client

    def _ensure(self, key, create) -> None:
        if key in self._made:
            return
        try:
            create()
        except ResourceExistsError:
            pass
        self._made.add(key)

    def close(self) -> None:
        with self._lock:
            for client in self._cache.values():
                client.close()
            self._cache.clear()


def b64(data: str | bytes) -> str:
    """A queue message body as the Functions host writes it (Base64 text)."""
    return base64.b64encode(data.encode("utf-8") if isinstance(data, str) else bytes(data)).decode("ascii")


class Complaints:
    """Log a listener's recurring error once (not on every poll), and its recovery."""

    def __init__(self, what: str):
        self.what = what
        self.last: str | None = None

    def report(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if text != self.last:
            logging.getLogger("devhost").warning("%s: %s (retrying every poll)", self.what, text)
            self.last = text

    def clear(self) -> None:
        if self.last is not None:
            logging.getLogger("devhost").info("%s: working again", self.what)
            self.last = None
