"""Storage integration, as Custom Vision's project options define it (`exportModelContainerUri`,
`notificationQueueUri` on create_project / update_project):

- the URIs are checked when set: a container or queue of this service's own storage account (or of an
  account named in CUSTOMVISION_INTEGRATION_ACCOUNTS, reached with the app's identity), never an arbitrary
  URL, never a SAS token in it (the service uses its own identity), never one of the service's own
  containers or queues; then a connection test: a temporary blob under CustomVision-TestPermission/ in the
  container, a ConnectionTest message on the queue. A URI that fails either is refused, naming the field.
- when a training ends: a Training message (TrainingCompleted / TrainingFailed) on the queue;
- when an export ends: its zip copied into the container as `{projectId}-{iterationId}.{platform}` (flavours
  other than the platform's default add `-{flavor}`), and an Export message (ExportCompleted / ExportFailed)
  with modelUri: the copy's URL, or the service's own download link when no container is set.
Messages are Custom Vision's documented JSON ({"version": "1.0", "type", "Content"}), Base64-encoded like
every queue message the Functions host writes. A delivery that fails later is logged, not retried forever.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, ResourceNotFoundError

from cvcore import exports, layout
from cvcore.errors import BadRequest
from cvcore.settings import Settings
from cvcore.storage import StorageClients, base64_queue

log = logging.getLogger(__name__)
TEST_FOLDER = "CustomVision-TestPermission"
VERSION = "1.0"
MAX_URI = 2048
CONTAINER_FIELD, QUEUE_FIELD = "exportModelContainerUri", "notificationQueueUri"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_RESERVED = {
    "blob": set(layout.CONTAINERS),
    "queue": set(layout.ALL_QUEUES) | {q + layout.POISON_SUFFIX for q in layout.ALL_QUEUES},
}


@dataclass(frozen=True)
class Place:
    kind: str  # "blob" or "queue"
    service: str  # the account's service URL, no trailing slash
    name: str

    @property
    def uri(self) -> str:
        return f"{self.service}/{self.name}"


def _origin_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}{parts.path.rstrip('/')}"


def parse(uri, kind: str, services: tuple[str, ...], field: str) -> Place:
    """Check a container (kind "blob") or queue URI against the allowed service URLs; raise BadRequest."""
    what = "container" if kind == "blob" else "queue"
    if not isinstance(uri, str) or not uri.strip():
        raise BadRequest("BadRequestInvalid", f"{field}: a {what} URI is required")
    uri = uri.strip()
    if len(uri) > MAX_URI:
        raise BadRequest("BadRequestInvalid", f"{field}: the URI is longer than {MAX_URI} characters")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadRequest("BadRequestInvalid", f"{field}: {uri!r} is not an http(s) URI of a storage {what}")
    if parts.username or parts.password:
        raise BadRequest("BadRequestInvalid", f"{field}: credentials in the URI are not accepted")
    if parts.query or parts.fragment:
        raise BadRequest(
            "BadRequestInvalid",
            f"{field}: remove the query (a SAS token is not needed: the service "
            "reaches the account with its own identity)",
        )
    base = _origin_path(uri)
    service = next((s for s in services if base.startswith(s + "/")), None)
    if service is None:
        raise BadRequest(
            "BadRequestInvalid",
            f"{field}: {uri!r} is not in this service's storage account "
            f"({', '.join(services) or 'none configured'}); other accounts must "
            "be allowed by the operator (CUSTOMVISION_INTEGRATION_ACCOUNTS)",
        )
    name = base[len(service) + 1 :]
    if not _NAME.fullmatch(name):
        raise BadRequest(
            "BadRequestInvalid",
            f"{field}: {name!r} is not a {what} name (3-63 lower-case letters, "
            "digits and single hyphens, one path segment)",
        )
    if name in _RESERVED[kind] and service == services[0]:
        raise BadRequest(
            "BadRequestInvalid", f"{field}: {name!r} is one of the service's own {what}s; name one of yours"
        )
    return Place(kind, service, name)


def connection_test(project_id: str) -> dict:
    return {"version": VERSION, "type": "ConnectionTest", "Content": {"projectId": project_id}}


def training_message(project_id: str, iteration_id: str, completed: bool) -> dict:
    return {
        "version": VERSION,
        "type": "Training",
        "Content": {
            "projectId": project_id,
            "iterationId": iteration_id,
            "trainingStatus": "TrainingCompleted" if completed else "TrainingFailed",
        },
    }


def export_message(
    project_id: str,
    iteration_id: str,
    target: exports.Target,
    completed: bool,
    model_uri: str | None,
    reason: str | None = None,
) -> dict:
    content = {
        "projectId": project_id,
        "iterationId": iteration_id,
        "exportStatus": "ExportCompleted" if completed else "ExportFailed",
        "modelUri": model_uri,
        "platform": target.platform,
        "flavor": target.flavor,
    }
    if reason:
        content["reason"] = reason
    return {"version": VERSION, "type": "Export", "Content": content}


def backup_name(project_id: str, iteration_id: str, target: exports.Target) -> str:
    default = exports.DEFAULT_FLAVOR.get(target.platform) == target.flavor
    return f"{project_id}-{iteration_id}.{target.platform}" + ("" if default else f"-{target.flavor}")


class StorageIntegration:
    """Reaches the containers and queues projects name, through the app's own storage clients."""

    def __init__(self, clients: StorageClients, settings: Settings, blobs=None, webhook_queue=None):
        self._clients = clients
        self._blobs, self.webhook_queue = blobs, webhook_queue
        self.webhook_allow_origins = settings.webhook_allow_origins
        own = settings.storage.endpoints
        extra = settings.integration_accounts
        self.services = {}
        for kind in ("blob", "queue"):
            found = [_origin_path(own[kind])] if kind in own else []
            found += [f"https://{a}.{kind}.core.windows.net" for a in extra]
            self.services[kind] = tuple(dict.fromkeys(found))

    def _blob_service(self, place: Place):
        if place.service == self.services["blob"][0]:
            return self._clients.blob
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(place.service, credential=self._clients.credential)

    def _queue(self, place: Place):
        if place.service == self.services["queue"][0]:
            return self._clients.queue(place.name)
        from azure.storage.queue import QueueClient

        return base64_queue(QueueClient(place.service, place.name, credential=self._clients.credential))

    # ---- set up -----------------------------------------------------------------------------------------
    def check(self, project_id: str, container_uri: str | None, queue_uri: str | None) -> tuple[str, str]:
        """Validate and test the URIs that are set (an empty string clears one); return them normalised."""
        out = []
        for uri, kind, field in ((container_uri, "blob", CONTAINER_FIELD), (queue_uri, "queue", QUEUE_FIELD)):
            if not uri:
                out.append("")
                continue
            place = parse(uri, kind, self.services[kind], field)
            (self._test_container if kind == "blob" else self._test_queue)(place, project_id, field)
            out.append(place.uri)
        return out[0], out[1]

    def _test_container(self, place: Place, project_id: str, field: str) -> None:
        blob = self._blob_service(place).get_blob_client(
            place.name, f"{TEST_FOLDER}/{project_id}-{uuid.uuid4()}"
        )
        try:
            blob.upload_blob(b"Custom Vision storage integration test", overwrite=True)
            blob.delete_blob()
        except ResourceNotFoundError:
            raise BadRequest(
                "BadRequestInvalid", f"{field}: container {place.name!r} does not exist"
            ) from None
        except AzureError as exc:
            raise BadRequest(
                "BadRequestInvalid",
                f"{field}: cannot write to container {place.name!r}: {type(exc).__name__}",
            ) from None

    def _test_queue(self, place: Place, project_id: str, field: str) -> None:
        try:
            self._queue(place).send_message(json.dumps(connection_test(project_id)))
        except ResourceNotFoundError:
            raise BadRequest("BadRequestInvalid", f"{field}: queue {place.name!r} does not exist") from None
        except AzureError as exc:
            raise BadRequest(
                "BadRequestInvalid", f"{field}: cannot send to queue {place.name!r}: {type(exc).__name__}"
            ) from None

    # ---- deliveries -------------------------------------------------------------------------------------
    def announce(self, project, body: dict) -> None:
        """Tell the project's queue and webhook (whichever are set) about a finished training or export."""
        self.notify(project.notification_queue_uri, body)
        if project.webhook_uri and self._blobs is not None and self.webhook_queue is not None:
            from . import webhooks

            try:
                webhooks.enqueue(self._blobs, self.webhook_queue, project, body)
            except AzureError as exc:
                log.warning("webhook delivery of %s for %s not queued: %s", body.get("type"), project.id, exc)

    def notify(self, queue_uri: str, body: dict) -> bool:
        if not queue_uri:
            return False
        try:
            place = parse(queue_uri, "queue", self.services["queue"], QUEUE_FIELD)
            self._queue(place).send_message(json.dumps(body))
            return True
        except (BadRequest, AzureError) as exc:
            log.warning("notification %s to %s not delivered: %s", body.get("type"), queue_uri, exc)
            return False

    def backup(self, container_uri: str, name: str, data: bytes) -> str | None:
        """Copy an export into the project's container; its URL, or None when it could not be written."""
        if not container_uri:
            return None
        try:
            place = parse(container_uri, "blob", self.services["blob"], CONTAINER_FIELD)
            blob = self._blob_service(place).get_blob_client(place.name, name)
            blob.upload_blob(data, overwrite=True)
            return blob.url
        except (BadRequest, AzureError) as exc:
            log.warning("export backup %s to %s not written: %s", name, container_uri, exc)
            return None
