"""A COCO file dropped into Blob storage, imported by coco_import.import_report.

The drop (`uploads/{project}/**/{name}.coco.json`, see drops.py): progress and the receipt live in
`models/{project}/imports/{name}.coco.json.status.json` (state validating -> importing -> completed, or
rejected / failed; processed and total images; the summary), readable through
GET /projects/{id}/coco/import?name=. The same file dropped again is recognised by its sha256 and imports once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import Executor

from cvcore import coco, layout
from cvcore.errors import NotFound

from ..domain.ports import BlobStore, MetadataRepository, require_project
from ..domain.records import Project, utcnow
from .coco_import import ImportResult, ProjectGone, blob_resolver, import_report, rules_for
from .project_transfer import remove_remains

log = logging.getLogger(__name__)


class Status:
    """The drop's status blob: progress while it runs, the receipt once it is done."""

    def __init__(self, blobs: BlobStore, project_id: str, relative: str, blob: str, sha256: str):
        self.blobs, self.name = blobs, layout.coco_import_status(project_id, relative)
        self.body = {
            "blob": blob,
            "sha256": sha256,
            "state": "validating",
            "processed": 0,
            "total": 0,
            "started": utcnow().isoformat(),
        }

    def previous(self) -> dict | None:
        try:
            return json.loads(self.blobs.get(layout.MODELS, self.name))
        except Exception:
            return None

    def write(self, **changes) -> None:
        self.body.update(changes, updated=utcnow().isoformat())
        try:
            self.blobs.put(
                layout.MODELS, self.name, json.dumps(self.body, indent=1).encode(), "application/json"
            )
        except Exception as exc:
            log.warning("could not write %s: %s", self.name, exc)

    def progress(self, phase: str, done: int, total: int) -> None:
        self.write(state=phase, processed=done, total=total)


def import_drop(
    repo: MetadataRepository,
    blobs: BlobStore,
    pool: Executor,
    project: Project,
    relative: str,
    data: bytes,
    blob_endpoint: str | None,
) -> ImportResult:
    """Validate and import `uploads/{project}/{relative}`; `relative` is already a safe relative path."""
    sha = hashlib.sha256(data).hexdigest()
    status = Status(blobs, project.id, relative, f"{layout.UPLOADS}/{project.id}/{relative}", sha)
    before = status.previous()
    if before and before.get("state") == "completed" and before.get("sha256") == sha:
        return ImportResult("duplicate", "this file was imported already", [], before.get("summary", {}))
    status.write()
    folder = f"{project.id}/{relative.rpartition('/')[0]}"
    resolver = blob_resolver(blobs, folder, blob_endpoint)
    throttled = coco.Throttle(status.progress)
    try:
        report = coco.validate(data, resolver, rules_for(project), pool=pool, progress=throttled)
        result = import_report(repo, blobs, pool, project, report, resolver, throttled)
    except ProjectGone as exc:
        remove_remains(repo, blobs, project.id)  # the status blob and any image written after the sweep
        return ImportResult("deleted", str(exc), [], {})
    except Exception as exc:
        status.write(state="failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        raise
    if result.outcome == "rejected":
        status.write(
            state="rejected", summary=result.summary, rejectedTo=f"{layout.REJECTED}/{project.id}/{relative}"
        )
    else:
        status.write(state="completed", summary=result.summary)
    return result


def read_status(repo: MetadataRepository, blobs: BlobStore, project_id: str, relative: str | None) -> dict:
    """GET /projects/{id}/coco/import?name=: the status blob of a COCO drop."""
    project = require_project(repo, project_id)
    try:
        relative = coco.safe_relative_path(relative)
    except ValueError as exc:
        raise NotFound("NotFoundImport", f"name {exc}") from None
    try:
        return json.loads(blobs.get(layout.MODELS, layout.coco_import_status(project.id, relative)))
    except Exception:
        raise NotFound(
            "NotFoundImport", f"no COCO import of uploads/{project.id}/{relative} is known"
        ) from None
