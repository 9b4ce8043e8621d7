"""Project webhooks: an HTTPS endpoint a project names (settings `webhookUri`, with a write-only
`webhookSecret` of at least 16 characters) receives the same JSON as the notification queue (Training,
Export; ConnectionTest when it is set), POSTed through the SSRF-guarded client (cvcore.urlfetch.post: every
address checked and pinned, no redirects, one deadline) and signed:

    X-CustomVision-Signature: sha256=<hex HMAC-SHA256 of the exact body with the secret>
    X-CustomVision-Delivery: <delivery id>        X-CustomVision-Event: Training | Export | ConnectionTest

Setting the URI sends the ConnectionTest at once and refuses the URI (naming the field, with the reason)
unless it answers 2xx. Events go through the `webhook-deliveries` queue: each attempt is recorded on the
delivery (models/{project}/_webhooks/{delivery}.json: status Pending / Delivered / Failed, every attempt
with its HTTP status or error), a failure is retried after BACKOFF_S[attempt] seconds, MAX_ATTEMPTS in
all. GET .../projects/{id}/webhook/deliveries lists the latest deliveries. Plain http is accepted only for
origins the operator lists in CUSTOMVISION_WEBHOOK_ALLOW_ORIGINS (local development, tests).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from cvcore import layout, messages
from cvcore.errors import BadRequest
from cvcore.urlfetch import UrlFetchError, normalise_origin, post

from ..domain.ports import BlobStore, JobQueue

log = logging.getLogger(__name__)
URI_FIELD, SECRET_FIELD = "webhookUri", "webhookSecret"
MIN_SECRET = 16
MAX_ATTEMPTS = 5
BACKOFF_S = (0, 10, 60, 300, 1800)  # before attempt 1..5
TIMEOUT_S = 10.0
LISTED = 50


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _origin_allowed(uri: str, allow_origins: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(uri)
        return normalise_origin(f"{parts.scheme}://{parts.netloc}") in {
            normalise_origin(o) for o in allow_origins
        }
    except Exception:
        return False


def send(uri: str, secret: str, event: dict, delivery_id: str, allow_origins: tuple[str, ...] = ()) -> int:
    """POST one signed event; returns the 2xx status or raises UrlFetchError with the reason."""
    body = json.dumps(event, separators=(",", ":")).encode()
    reply = post(
        uri,
        body,
        {
            "Content-Type": "application/json",
            "X-CustomVision-Signature": sign(secret, body),
            "X-CustomVision-Delivery": delivery_id,
            "X-CustomVision-Event": str(event.get("type")),
        },
        timeout=TIMEOUT_S,
        allow_origins=allow_origins,
    )
    return reply.status


def check(project, uri, secret, allow_origins: tuple[str, ...] = ()) -> tuple[str, str]:
    """Validate a webhook URI and secret and send the ConnectionTest; return (uri, secret) to store."""
    if not uri:
        return "", ""
    if not isinstance(uri, str) or len(uri) > 2048:
        raise BadRequest(
            "BadRequestInvalid", f"{URI_FIELD}: an https URI of at most 2048 characters is required"
        )
    uri = uri.strip()
    scheme = urlsplit(uri).scheme.lower()
    if scheme != "https" and not (scheme == "http" and _origin_allowed(uri, allow_origins)):
        raise BadRequest("BadRequestInvalid", f"{URI_FIELD}: {uri[:100]!r} must be an https URI")
    secret = secret if isinstance(secret, str) else (project.webhook_secret or "")
    if len(secret) < MIN_SECRET:
        raise BadRequest(
            "BadRequestInvalid",
            f"{SECRET_FIELD}: a secret of at least {MIN_SECRET} characters "
            "is required to sign the deliveries",
        )
    try:
        send(
            uri,
            secret,
            {"version": "1.0", "type": "ConnectionTest", "Content": {"projectId": project.id}},
            layout.new_id(),
            allow_origins,
        )
    except UrlFetchError as exc:
        raise BadRequest(
            "BadRequestInvalid", f"{URI_FIELD}: the ConnectionTest was not accepted: {exc.message}"
        ) from None
    return uri, secret


def _record_name(project_id: str, delivery_id: str) -> str:
    return f"{layout.project_prefix(project_id)}_webhooks/{delivery_id}.json"


def enqueue(blobs: BlobStore, queue: JobQueue, project, event: dict) -> str | None:
    """Record a Pending delivery of `event` to the project's webhook and queue its first attempt."""
    if not project.webhook_uri:
        return None
    delivery_id = layout.new_prediction_id(int(time.time() * 1000))  # names sort newest first
    record = {
        "id": delivery_id,
        "event": event,
        "uri": project.webhook_uri,
        "status": "Pending",
        "attempts": [],
        "created": messages.now_iso(),
    }
    blobs.put(
        layout.MODELS, _record_name(project.id, delivery_id), json.dumps(record).encode(), "application/json"
    )
    queue.send(json.dumps({"project_id": project.id, "delivery_id": delivery_id}))
    return delivery_id


def attempt(repo, blobs: BlobStore, queue, body: str, allow_origins: tuple[str, ...] = ()) -> str:
    """One attempt of a queued delivery: Delivered, retried later (`queue.send(text, delay)`), or Failed
    after MAX_ATTEMPTS. Returns the delivery's status."""
    ask = json.loads(body)
    project = repo.get_project(ask["project_id"])
    name = _record_name(ask["project_id"], ask["delivery_id"])
    if project is None or not blobs.exists(layout.MODELS, name):
        return "Gone"
    record = json.loads(blobs.get(layout.MODELS, name))
    if record["status"] != "Pending":
        return record["status"]
    tried: dict[str, Any] = {"at": messages.now_iso()}  # + status (int, or None unanswered) and error
    try:
        tried["status"] = send(
            project.webhook_uri or record["uri"],
            project.webhook_secret,
            record["event"],
            record["id"],
            allow_origins,
        )
        record["status"] = "Delivered"
    except UrlFetchError as exc:
        tried.update(error=exc.message, status=exc.status)
        if len(record["attempts"]) + 1 >= MAX_ATTEMPTS:
            record["status"] = "Failed"
    record["attempts"].append(tried)
    blobs.put(layout.MODELS, name, json.dumps(record).encode(), "application/json")
    if record["status"] == "Pending":
        queue.send(body, BACKOFF_S[len(record["attempts"])])
    return record["status"]


def deliveries(blobs: BlobStore, project_id: str) -> list[dict]:
    """The latest deliveries, newest first."""
    names = blobs.list_names(layout.MODELS, f"{layout.project_prefix(project_id)}_webhooks/")[:LISTED]
    return [json.loads(blobs.get(layout.MODELS, n)) for n in names]
