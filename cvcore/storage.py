"""Storage clients built from settings: the one place that knows how to reach Blob, Queue and Table.

Queue messages are Base64 text, as the Azure Functions host reads and writes them by default.
"""

from __future__ import annotations

from functools import cached_property

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.blob import ExponentialRetry as BlobRetry
from azure.storage.queue import ExponentialRetry as QueueRetry
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from . import layout
from . import settings as _settings
from .settings import StorageSettings


def _uri(value: str | None, service: str) -> str:
    """A service endpoint the settings must name when there is no connection string."""
    if not value:
        names = {
            "blob": _settings.BLOB_SERVICE_URI,
            "queue": _settings.QUEUE_SERVICE_URI,
            "table": _settings.TABLE_SERVICE_URI,
        }
        raise ValueError(f"no storage connection string and no {service} endpoint: set {names[service]}")
    return value


def _options(policy_class) -> dict:
    """Client options for Blob or Queue (each SDK has its own ExponentialRetry class): the retry below and a
    connect timeout."""
    return {"retry_policy": _retry(policy_class), "connection_timeout": CONNECT_TIMEOUT_S}


def _retry(policy_class):
    """Blob and Queue retries that give up in about 9 s (waits of ~2, 2.8, 3.9 s): a storage blip that short is
    ridden out, an outage becomes the route's 503 in seconds. The SDKs' default (15 s + 3^n back-offs) kept a
    request waiting 83 s for storage that refused every connection (tests/chaos). Tables' default gives up
    in about 5 s already."""
    return policy_class(initial_backoff=0.5, increment_base=1.5, retry_total=3, random_jitter_range=0.5)


CONNECT_TIMEOUT_S = 10


def base64_queue(client: QueueClient) -> QueueClient:
    """Messages as Base64 text, as the Functions host reads and writes them."""
    client._message_encode_policy = TextBase64EncodePolicy()
    client._message_decode_policy = TextBase64DecodePolicy()
    return client


class StorageClients:
    """Lazily built, thread-safe service clients for one storage account."""

    def __init__(self, storage: StorageSettings):
        self.settings = storage

    @cached_property
    def _credential(self):
        if self.settings.connection_string:
            return None
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        if (self.settings.credential or "").lower() == "managedidentity":
            return ManagedIdentityCredential(client_id=self.settings.client_id)
        return DefaultAzureCredential()

    @cached_property
    def blob(self) -> BlobServiceClient:
        if self.settings.connection_string:
            return BlobServiceClient.from_connection_string(
                self.settings.connection_string, **_options(BlobRetry)
            )
        return BlobServiceClient(
            _uri(self.settings.blob_service_uri, "blob"), credential=self._credential, **_options(BlobRetry)
        )

    @cached_property
    def table(self) -> TableServiceClient:
        if self.settings.connection_string:
            return TableServiceClient.from_connection_string(self.settings.connection_string)
        return TableServiceClient(_uri(self.settings.table_service_uri, "table"), credential=self._credential)

    @cached_property
    def queue_service(self) -> QueueServiceClient:
        if self.settings.connection_string:
            return QueueServiceClient.from_connection_string(
                self.settings.connection_string, **_options(QueueRetry)
            )
        return QueueServiceClient(
            _uri(self.settings.queue_service_uri, "queue"),
            credential=self._credential,
            **_options(QueueRetry),
        )

    def queue(self, name: str) -> QueueClient:
        return base64_queue(self.queue_service.get_queue_client(name))

    @property
    def credential(self):
        """The identity the clients use (None with a connection string): for other accounts the service
        was allowed to reach (storage integration)."""
        return self._credential

    def ensure_resources(self) -> None:
        """Create every container, queue and table the layout names (idempotent)."""
        for name in layout.CONTAINERS:
            try:
                self.blob.create_container(name)
            except ResourceExistsError:
                pass
        for name in layout.ALL_QUEUES:
            try:
                self.queue_service.create_queue(name)
            except ResourceExistsError:
                pass
        for name in layout.TABLES:
            self.table.create_table_if_not_exists(name)
