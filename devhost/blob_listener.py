"""Blob trigger by polling (the local stand-in for both container scans and the Event Grid source).

New blobs and changed ETags are delivered at least once: a receipt is written to `azure-webjobs-hosts`
(`blobreceipts/{hostId}/Host.Functions.{name}/{etag}/{container}/{blob}`) only after success, so a
restarted host skips what it already processed. Five failed runs of one blob+ETag put a poison message on
`webjobs-blobtrigger-poison` (and a receipt, so it is not retried after a restart either)."""

from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import wait

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from .bindings import as_annotated
from .catalog import FunctionSpec
from .config import HOST_STORAGE
from .invoker import Invoker
from .storage import Clients, Complaints, b64

log = logging.getLogger("devhost")
RECEIPTS, POISON = "azure-webjobs-hosts", "webjobs-blobtrigger-poison"
_PARAM = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")


def blob_pattern(path: str) -> tuple[str, re.Pattern, str, dict]:
    """`container/{a}/{b}.png` -> (container, regex over blob names, literal prefix, group -> name); each
    parameter captures greedily (`.*`), as the WebJobs binding template does."""
    container, _, rest = path.strip("/").partition("/")
    if "{" in container or not container:
        raise ValueError(f"blob trigger path {path!r} must start with a literal container name")
    names: dict[str, str] = {}
    pos, regex = 0, ""
    for m in _PARAM.finditer(rest):
        regex += re.escape(rest[pos : m.start()])
        if m.group(1):
            names[f"g{len(names)}"] = m.group(1).strip()
            regex += f"(?P<g{len(names) - 1}>.*)"
        else:
            regex += re.escape(m.group(0)[0])
        pos = m.end()
    regex += re.escape(rest[pos:])
    first = _PARAM.search(rest)
    prefix = rest[: first.start()] if first else rest
    return container, re.compile(f"^{regex}$", re.DOTALL), prefix.replace("{{", "{").replace("}}", "}"), names


class BlobListener(threading.Thread):
    def __init__(
        self,
        spec: FunctionSpec,
        invoker: Invoker,
        clients: Clients,
        host_id: str,
        poll_interval: float,
        stop: threading.Event,
        max_attempts: int = 5,
        batch: int = 16,
    ):
        super().__init__(name=f"blob-{spec.name}", daemon=True)
        self.spec, self.invoker, self.clients, self.stop = spec, invoker, clients, stop
        self.interval, self.max_attempts, self.batch = poll_interval, max_attempts, batch
        self.conn = spec.trigger.get("connection")
        self.container, self.regex, self.prefix, self.names = blob_pattern(spec.trigger["path"])
        self.function_id = f"Host.Functions.{spec.name}"
        self.receipt_root = f"blobreceipts/{host_id}/{self.function_id}/"
        self.done: set[tuple[str, str]] = set()
        self.attempts: dict[tuple[str, str], int] = {}
        self.loaded = False
        self.errors = Complaints(f"blob listener {spec.name}")

    def _host_setting(self):
        return HOST_STORAGE if self.clients.has_setting(HOST_STORAGE) else self.conn

    def _load_receipts(self) -> None:
        receipts = self.clients.container(self._host_setting(), RECEIPTS)
        for blob in receipts.list_blobs(name_starts_with=self.receipt_root):
            etag, container, name = blob.name[len(self.receipt_root) :].split("/", 2)
            if container == self.container:
                self.done.add((name, etag))
        self.loaded = True

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if not self.loaded:
                    self._load_receipts()
                more = self.poll_once()
                self.errors.clear()
                if more:
                    continue  # more were due than one batch: go on at once
            except Exception as exc:
                self.errors.report(exc)
            self.stop.wait(self.interval)

    def poll_once(self) -> bool:
        """One scan; returns True when blobs were left for the next round."""
        container = self.clients.container(self.conn, self.container)
        seen, due = set(), []
        for blob in container.list_blobs(name_starts_with=self.prefix or None, include=["metadata"]):
            m = self.regex.match(blob.name)
            key = (blob.name, blob.etag.strip('"'))
            if m is None:
                continue
            seen.add(key)
            if key not in self.done:
                due.append((blob, key, m))
        self.done &= seen  # forget deleted or replaced blobs; their receipts stay in storage
        self.attempts = {k: n for k, n in self.attempts.items() if k in seen}
        futures = {}
        for blob, key, m in due[: self.batch]:
            client = container.get_blob_client(blob.name)
            try:
                body = client.download_blob(
                    etag=blob.etag, match_condition=MatchConditions.IfNotModified
                ).readall()
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # changed or gone since the listing; the next scan sees its new state
            except Exception as exc:
                log.warning("blob %s/%s: download failed: %s", self.container, blob.name, exc)
                continue
            path = f"{self.container}/{blob.name}"
            annotation = getattr(self.spec.params.get(self.spec.trigger["name"]), "annotation", None)
            stream = as_annotated(
                body,
                annotation,
                self.spec.trigger,
                name=path,
                uri=client.url,
                blob_properties={
                    "etag": key[1],
                    "length": blob.size,
                    "content_type": blob.content_settings.content_type,
                },
                metadata=dict(blob.metadata or {}),
            )
            data = {self.names[g]: v for g, v in m.groupdict().items()}
            data.update(BlobTrigger=path, Uri=client.url, Metadata=dict(blob.metadata or {}))
            futures[self.invoker.submit(self.spec, stream, data, f"blob {path} etag {key[1]}")] = key
        wait(futures)
        for future, key in futures.items():
            try:
                self._settle(key, future.exception() is None)
            except Exception as exc:
                log.warning("blob %s/%s: recording the outcome failed: %s", self.container, key[0], exc)
        return len(due) > self.batch

    def _settle(self, key: tuple[str, str], ok: bool) -> None:
        name, etag = key
        if not ok:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            if self.attempts[key] < self.max_attempts:
                return
            message = {
                "Type": "BlobTrigger",
                "FunctionId": self.function_id,
                "FunctionName": self.spec.name,
                "BlobType": "BlockBlob",
                "ContainerName": self.container,
                "BlobName": name,
                "ETag": etag,
            }
            self.clients.queue(self._host_setting(), POISON).send_message(b64(json.dumps(message)))
            log.error(
                "blob %s/%s (etag %s) failed %d times; poison message written to %s",
                self.container,
                name,
                etag,
                self.attempts[key],
                POISON,
            )
        self.attempts.pop(key, None)
        receipts = self.clients.container(self._host_setting(), RECEIPTS)
        receipts.upload_blob(
            f"{self.receipt_root}{etag}/{self.container}/{name}",
            b"",
            overwrite=True,
            metadata={"outcome": "succeeded" if ok else "poisoned"},
        )
        self.done.add(key)
