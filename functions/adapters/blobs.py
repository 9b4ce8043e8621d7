"""BlobStore on Azure Blob storage, with read URLs signed by the account key (local, connection string)
or by a cached user delegation key (identity-based access in Azure)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import islice

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContentSettings,
    UserDelegationKey,
    generate_blob_sas,
)

from ..domain.ports import BlobStore

URL_LIFETIME = timedelta(hours=8)
_DELEGATION_LIFETIME = timedelta(days=1)


class AzureBlobStore(BlobStore):
    def __init__(self, service: BlobServiceClient, pool: ThreadPoolExecutor):
        self._service = service
        self._pool = pool
        self._lock = threading.Lock()
        self._delegation: tuple[UserDelegationKey, datetime] | None = None  # (key, expires)

    def put(self, container: str, name: str, data: bytes, content_type: str) -> None:
        self._service.get_blob_client(container, name).upload_blob(
            data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
        )

    def get(self, container: str, name: str) -> bytes:
        return self._service.get_blob_client(container, name).download_blob().readall()

    def get_capped(self, container: str, name: str, max_bytes: int) -> bytes:
        client = self._service.get_blob_client(container, name)
        try:
            return client.download_blob(offset=0, length=max_bytes + 1).readall()
        except HttpResponseError as exc:
            if exc.status_code == 416:  # a range on an empty blob
                return b""
            raise

    def exists(self, container: str, name: str) -> bool:
        return self._service.get_blob_client(container, name).exists()

    def delete(self, container: str, name: str) -> None:
        try:
            self._service.get_blob_client(container, name).delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            pass

    def list_names(self, container: str, prefix: str) -> list[str]:
        client = self._service.get_container_client(container)
        return sorted(b.name for b in client.list_blobs(name_starts_with=prefix))

    def delete_prefix(self, container: str, prefix: str, limit: int | None = None) -> int:
        client = self._service.get_container_client(container)
        names = [b.name for b in islice(client.list_blobs(name_starts_with=prefix), limit)]
        list(self._pool.map(lambda n: self.delete(container, n), names))
        return len(names)

    def url(self, container: str, name: str) -> str:
        now = datetime.now(UTC)
        expiry = now + URL_LIFETIME
        account = self._service.account_name
        if not account:  # the SDK leaves it unset only for a URL it cannot parse; a SAS is signed for it
            raise ValueError(
                f"the blob service URL {self._service.url!r} names no storage account to sign for"
            )
        credential = self._service.credential
        account_key = getattr(credential, "account_key", None)
        if account_key:
            sas = generate_blob_sas(
                account,
                container,
                name,
                account_key=account_key,
                permission=BlobSasPermissions(read=True),
                expiry=expiry,
            )
        else:
            sas = generate_blob_sas(
                account,
                container,
                name,
                user_delegation_key=self._delegation_key(now),
                permission=BlobSasPermissions(read=True),
                expiry=expiry,
            )
        return f"{self._service.url.rstrip('/')}/{container}/{name}?{sas}"

    def _delegation_key(self, now: datetime) -> UserDelegationKey:
        with self._lock:
            if self._delegation is None or self._delegation[1] - now < URL_LIFETIME:
                expires = now + _DELEGATION_LIFETIME
                key = self._service.get_user_delegation_key(now - timedelta(minutes=5), expires)
                self._delegation = (key, expires)
            return self._delegation[0]
