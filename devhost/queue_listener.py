"""Queue trigger by polling, with the Functions host's queue semantics: Base64 text messages, up to
`batchSize` runs at once, delete on success, retry after `visibilityTimeout`, and `<queue>-poison` once a
message has been dequeued `maxDequeueCount` times (or at once when it is not valid Base64)."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait

from azure.core.exceptions import ResourceNotFoundError
from azure.functions.queue import QueueMessage

from .bindings import json_binding_data
from .catalog import FunctionSpec
from .config import HostConfig
from .invoker import Invoker
from .storage import Clients, Complaints

log = logging.getLogger("devhost")
LEASE_SECONDS = 600  # how long a received message stays invisible while its function runs


class QueueListener(threading.Thread):
    def __init__(
        self,
        spec: FunctionSpec,
        invoker: Invoker,
        clients: Clients,
        cfg: HostConfig,
        poll_interval: float,
        stop: threading.Event,
    ):
        super().__init__(name=f"queue-{spec.name}", daemon=True)
        self.spec, self.invoker, self.clients, self.cfg, self.stop = spec, invoker, clients, cfg, stop
        self.interval = poll_interval
        self.conn, self.name = spec.trigger.get("connection"), spec.trigger["queueName"]
        self.inflight: dict = {}  # Future -> received message
        self.errors = Complaints(f"queue listener {spec.name}")

    def run(self) -> None:
        while not self.stop.is_set():
            got = 0
            try:
                if len(self.inflight) < self.cfg.batch_size:
                    got = self._fetch(self.cfg.batch_size - len(self.inflight))
                    self.errors.clear()
            except Exception as exc:
                self.errors.report(exc)
            if self.inflight:
                room = got and len(self.inflight) < self.cfg.batch_size
                done, _ = wait(
                    list(self.inflight), timeout=0 if room else self.interval, return_when=FIRST_COMPLETED
                )
                for future in done:
                    self._settle(self.inflight.pop(future), future.exception() is None)
            elif not got:
                self.stop.wait(self.interval)
            self._renew()
        for future in list(self.inflight):  # drain what is running before the host stops
            wait([future])
            self._settle(self.inflight.pop(future), future.exception() is None)

    def _fetch(self, room: int) -> int:
        queue = self.clients.queue(self.conn, self.name)
        got = 0
        for msg in queue.receive_messages(
            messages_per_page=min(32, room), max_messages=room, visibility_timeout=LEASE_SECONDS
        ):
            got += 1
            try:
                body = base64.b64decode(re.sub(r"\s+", "", msg.content or ""), validate=True)
            except (binascii.Error, ValueError) as exc:
                try:
                    self._poison(msg, f"the message is not valid Base64 ({exc})")
                except Exception as err:
                    log.warning("queue %s message %s: moving to poison failed: %s", self.name, msg.id, err)
                continue
            annotation = getattr(self.spec.params.get(self.spec.trigger["name"]), "annotation", None)
            value: QueueMessage | str | bytes = QueueMessage(
                id=msg.id,
                body=body,
                dequeue_count=msg.dequeue_count,
                expiration_time=msg.expires_on,
                insertion_time=msg.inserted_on,
                time_next_visible=msg.next_visible_on,
                pop_receipt=msg.pop_receipt,
            )
            if annotation is str or annotation is bytes:
                value = body.decode("utf-8", "replace") if annotation is str else body
            data = {
                **json_binding_data(body),
                "QueueTrigger": body.decode("utf-8", "replace"),
                "Id": msg.id,
                "DequeueCount": msg.dequeue_count,
                "InsertionTime": msg.inserted_on,
                "ExpirationTime": msg.expires_on,
                "NextVisibleTime": msg.next_visible_on,
                "PopReceipt": msg.pop_receipt,
            }
            future = self.invoker.submit(
                self.spec, value, data, f"queue {self.name} message {msg.id} dequeue {msg.dequeue_count}"
            )
            msg.leased_at = time.monotonic()
            self.inflight[future] = msg
        return got

    def _renew(self) -> None:
        """Keep long runs invisible: extend a message's lease once half of it has passed, as the host does."""
        now = time.monotonic()
        for msg in self.inflight.values():
            if now - msg.leased_at > LEASE_SECONDS / 2:
                try:
                    renewed = self.clients.queue(self.conn, self.name).update_message(
                        msg.id, msg.pop_receipt, visibility_timeout=LEASE_SECONDS
                    )
                    msg.pop_receipt, msg.leased_at = renewed.pop_receipt, now
                except Exception as exc:
                    log.warning("queue %s message %s: renewing its lease failed: %s", self.name, msg.id, exc)
                    msg.leased_at = now

    def _settle(self, msg, ok: bool) -> None:
        queue = self.clients.queue(self.conn, self.name)
        try:
            if ok:
                queue.delete_message(msg.id, msg.pop_receipt)
            elif (msg.dequeue_count or 0) >= self.cfg.max_dequeue_count:
                self._poison(msg, f"it failed on {msg.dequeue_count} dequeues")
            else:
                queue.update_message(
                    msg.id, msg.pop_receipt, visibility_timeout=int(self.cfg.visibility_timeout)
                )
        except ResourceNotFoundError:
            log.warning("queue %s message %s was gone when settling (its lease ran out?)", self.name, msg.id)
        except Exception as exc:
            log.warning("queue %s message %s: settling failed: %s", self.name, msg.id, exc)

    def _poison(self, msg, reason: str) -> None:
        poison = f"{self.name}-poison"
        self.clients.queue(self.conn, poison).send_message(msg.content)
        self.clients.queue(self.conn, self.name).delete_message(msg.id, msg.pop_receipt)
        log.error("queue %s message %s moved to %s: %s", self.name, msg.id, poison, reason)
