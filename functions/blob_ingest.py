"""Blob trigger: images dropped under `uploads/` become training images, `*.coco.json` files COCO imports
(see training/drops.py).

Flex Consumption requires the Event Grid source for blob triggers; infra subscribes it to this function.
"""

from __future__ import annotations

import logging

import azure.functions as func

from cvcore import layout

from . import bootstrap
from .training.drops import ingest_drop

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.blob_trigger(
    arg_name="blob",
    path=f"{layout.UPLOADS}/{{name}}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def ingest_upload(blob: func.InputStream) -> None:
    path = blob.name  # "uploads/<name>"; the SDK types it optional, a blob trigger always sets it
    if path is None:
        raise ValueError("the blob trigger passed no blob name")
    name = path.split("/", 1)[1] if path.startswith(layout.UPLOADS + "/") else path
    s = bootstrap.services()
    result = ingest_drop(
        s.repo, s.blobs, s.pool, name, blob.read(), blob_endpoint=s.settings.storage.endpoints.get("blob")
    )
    log.info("upload %s: %s %s", name, result.outcome, result.detail)
