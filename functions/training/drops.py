"""Drop-a-file ingestion: `uploads/{projectId}/{tagName}/{file}` becomes a tagged training image,
`uploads/{projectId}/untagged/{file}` (or `uploads/{projectId}/{file}`) an untagged one, and
`uploads/{projectId}/**/{name}.coco.json` a COCO import (coco_drop.py). Files under
`uploads/{projectId}/_coco/` are left alone: they are the images COCO files name by `file_name`.

A drop that fails is copied to `rejected/` beside a `.error.json` saying why; the drop is removed only
after its success or its rejection is recorded. Re-delivery is harmless: ids are content addressed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from cvcore import layout
from cvcore.coco import safe_relative_path
from cvcore.imaging import MAX_TRAINING_IMAGE_BYTES

from ..domain.ports import BlobStore, MetadataRepository
from ..domain.records import DELETING, REGULAR, Project, Tag, utcnow
from . import coco_drop
from .ingest import Candidate, ingest

log = logging.getLogger(__name__)
UNTAGGED = "untagged"
COCO_SUFFIX = layout.COCO_SUFFIX


@dataclass
class DropResult:
    outcome: str  # "ingested", "imported" (a COCO file), "duplicate", "rejected", "skipped", "deleted"
    detail: str = ""
    image_id: str | None = None


def ingest_drop(
    repo: MetadataRepository, blobs: BlobStore, pool, name: str, data: bytes, blob_endpoint: str | None = None
) -> DropResult:
    """Handle one dropped blob; `name` is its path inside the uploads container. `blob_endpoint` is the
    storage account's blob endpoint, which COCO `absolute_url`s must point into."""
    if name.endswith("/"):
        return DropResult("skipped", "a folder marker")
    parts = name.split("/")
    try:
        project_id = layout.guid(parts[0], "projectId")
    except ValueError:
        return _reject(
            blobs,
            name,
            data,
            "ErrorSource",
            f"path: the first folder must be a project id (uploads/{{projectId}}/{{tag}}/{{file}}), "
            f"got {parts[0][:64]!r}",
        )
    if len(parts) < 2 or not parts[-1]:
        return _reject(blobs, name, data, "ErrorSource", "path: no file name after the project id")
    if parts[1] == layout.COCO_DATASET_FOLDER and not name.endswith(COCO_SUFFIX):
        return DropResult("skipped", f"kept in {layout.COCO_DATASET_FOLDER}/ for COCO files")
    project = repo.get_project(project_id)
    if project is None or project.status == DELETING:  # a drop must not refill a project being deleted
        return _reject(blobs, name, data, "NotFoundProject", f"project {project_id} does not exist")
    if name.endswith(COCO_SUFFIX):
        return _coco_drop(repo, blobs, pool, project, name, data, blob_endpoint)
    folder = parts[1] if len(parts) > 2 else UNTAGGED
    tag = None
    if folder.lower() != UNTAGGED:
        if project.is_detection:
            return _reject(
                blobs,
                name,
                data,
                "ErrorInvalidTag",
                f"path: {project.name!r} is an object detection project; images need regions, so drop "
                f"them into uploads/{project.id}/untagged/ or import a COCO file",
            )
        tag = _tag_by_name(repo, project, folder)
    if len(data) > MAX_TRAINING_IMAGE_BYTES:
        return _reject(
            blobs,
            name,
            data,
            "ErrorImageSize",
            f"image is {len(data)} bytes; the limit is {MAX_TRAINING_IMAGE_BYTES}",
        )
    outcome = ingest(
        repo,
        blobs,
        pool,
        project,
        [Candidate(source=name, data=data, tag_ids=[tag.id] if tag else [], origin="drop")],
    )[0]
    if outcome.status in ("OK", "OKDuplicate"):
        blobs.delete(layout.UPLOADS, name)
        kind = "ingested" if outcome.status == "OK" else "duplicate"
        return DropResult(kind, outcome.status, outcome.image.id)
    if outcome.status == "ErrorStorage":
        raise RuntimeError(f"storage failed while ingesting {name}: {outcome.message}")  # let the host retry
    return _reject(blobs, name, data, outcome.status, outcome.message)


def _tag_by_name(repo: MetadataRepository, project: Project, name: str) -> Tag:
    """The project's tag with this name (any case), created as a Regular tag when missing."""
    for tag in repo.list_tags(project.id):
        if tag.name.lower() == name.lower():
            return tag
    # the id follows from the name: two drops into a new folder at once upsert one tag, not two
    tag = Tag(
        id=layout.tag_id_for(project.id, name),
        name=name,
        description="created by a dropped file",
        type=REGULAR,
        created=utcnow(),
    )
    repo.save_tag(project.id, tag)
    return tag


def _coco_drop(
    repo: MetadataRepository,
    blobs: BlobStore,
    pool,
    project: Project,
    name: str,
    data: bytes,
    blob_endpoint: str | None,
) -> DropResult:
    try:
        relative = safe_relative_path(name.split("/", 1)[1])
    except ValueError as exc:
        return _reject(blobs, name, data, "ErrorSource", f"path: {exc}")
    result = coco_drop.import_drop(repo, blobs, pool, project, relative, data, blob_endpoint)
    if result.outcome == "rejected":
        return _reject(
            blobs,
            name,
            data,
            "ErrorCocoValidation",
            f"the COCO file has {len(result.problems)} problems; nothing was imported",
            [p.to_json() for p in result.problems],
            {"summary": result.summary},
        )
    blobs.delete(layout.UPLOADS, name)
    return DropResult(result.outcome, result.detail)


# Reports are `{drop}.error.json`; a rejected drop is kept under its own name, except a drop whose own name
# ends in a report's suffix (or in KEPT_SUFFIX): kept as `{drop}.drop`, so no drop's bytes ever overwrite a
# report (`x.jpg.error.json` dropped after `x.jpg`) nor another drop's kept copy.
KEPT_SUFFIX = ".drop"


def kept_name(name: str) -> str:
    """Where rejected/ keeps the bytes of the rejected drop `name` (see KEPT_SUFFIX)."""
    return name + KEPT_SUFFIX if name.endswith((layout.rejected_error_name(""), KEPT_SUFFIX)) else name


def _reject(
    blobs: BlobStore,
    name: str,
    data: bytes,
    status: str,
    message: str,
    errors: list[dict] | None = None,
    extra: dict | None = None,
) -> DropResult:
    """Move the drop to rejected/ beside a .error.json listing every problem ({path, code, message})."""
    kept = kept_name(name)
    report = {
        "blob": f"{layout.UPLOADS}/{name}",
        "keptAs": f"{layout.REJECTED}/{kept}",
        "status": status,
        "message": message,
        "errors": errors or [{"path": name, "code": status, "message": message}],
        "rejectedAt": utcnow().isoformat(),
        **(extra or {}),
    }
    blobs.put(layout.REJECTED, kept, data, "application/octet-stream")
    blobs.put(
        layout.REJECTED,
        layout.rejected_error_name(name),
        json.dumps(report, indent=2).encode(),
        "application/json",
    )
    blobs.delete(layout.UPLOADS, name)
    log.warning("rejected drop %s: %s %s", name, status, message)
    return DropResult("rejected", f"{status}: {message}")
