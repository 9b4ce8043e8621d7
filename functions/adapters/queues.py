"""JobQueue on Azure Queue storage (Base64 text, as the Functions host and the trainer read it)."""

from __future__ import annotations

from cvcore import layout
from cvcore.storage import StorageClients

from ..domain.ports import JobQueue


class AzureJobQueue(JobQueue):
    def __init__(self, clients: StorageClients, queue: str = layout.TRAINING_JOBS):
        self._queue = clients.queue(queue)

    def send(self, message: str, delay_s: int = 0) -> None:
        self._queue.send_message(message, visibility_timeout=delay_s or None)
