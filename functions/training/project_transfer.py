"""Moving a project between deployments: Custom Vision's export_project / import_project pair.

GET /projects/{id}/export writes a snapshot of the project as a COCO file (normalised boxes, every image
with a time-limited read URL, its metadata, every tag with its type and description, the project's
settings under `info.custom_vision`) to `models/{project}/exports/{exportId}.coco.json`, and answers
ProjectExport with a token: base64url of {"v": 1, "snapshot": read URL of that blob}. Whoever holds the
token can import the project until the URLs expire (cvcore's BlobStore URL lifetime, 8 hours).

POST /projects/import?token=&name= reads the snapshot and every image over HTTPS (cvcore.urlfetch: only
public addresses, or this deployment's own storage endpoint when local), validates all of it with
cvcore.coco, and imports through coco_import. Trained iterations are not moved (iterationCount is 0):
train again at the destination.

- Up to INLINE_IMAGES images the import runs inside the request (about as fast as a COCO drop, see
  README): the snapshot is validated before the project is created, a failure after that deletes the
  half-made project, and the reply is the project with status Succeeded.
- A larger snapshot would outlast an HTTP request (Functions stop one at 230 s), so the reply is the new
  project with status Importing, as Custom Vision's is, and an ImportJob on the project-imports queue
  finishes it (queue_imports.py -> run_import): status Succeeded, or Failed with `statusMessage` listing
  the problems. A transient failure is retried by the queue (the import is idempotent: images are content
  addressed, tags matched by name); the last attempt marks the project Failed, so it never stays Importing.
"""

from __future__ import annotations

import base64
import binascii
import json
from concurrent.futures import Executor

from cvcore import coco, domains, layout
from cvcore.errors import BadRequest, CustomVisionError, NotFound
from cvcore.imaging import ImageError, ImageStatus
from cvcore.urlfetch import UrlFetchError, fetch

from ..domain.ports import BlobStore, JobQueue, MetadataRepository
from ..domain.records import DELETING, Project, utcnow
from . import coco_export, projects, serialize
from .coco_import import ProjectGone, ensure_alive, import_report

TOKEN_VERSION = 1
JOB_VERSION = 1
INLINE_IMAGES = 500  # larger snapshots import in the background (12 ms an image on Azurite; Azure is slower)
IMPORTING, SUCCEEDED, FAILED = "Importing", "Succeeded", "Failed"
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
FETCH_TIMEOUT_S = 30.0
MS_PER_IMAGE = (
    15  # benchmarks/transfer.py on Azurite, 2 cores: 12 ms an image; an estimate, as Custom Vision's
)


def export_project(repo: MetadataRepository, blobs: BlobStore, project_id: str) -> dict:
    project = projects.require_project(repo, project_id)
    tags = repo.list_tags(project.id)
    entries = coco_export.current_dataset(project, repo.list_images(project.id), image_tags=True)
    export_id = layout.new_id()
    snapshot = coco_export.to_coco(
        project, tags, entries, blobs.url, coco_export.NORMALIZED, {"export_id": export_id}
    )
    name = layout.project_export(project.id, export_id)
    blobs.put(layout.MODELS, name, json.dumps(snapshot, separators=(",", ":")).encode(), "application/json")
    token = {"v": TOKEN_VERSION, "snapshot": blobs.url(layout.MODELS, name)}
    return {
        "iterationCount": 0,
        "imageCount": len(entries),
        "tagCount": len(tags),
        "regionCount": sum(1 for e in entries for _, box in e.annotations if box is not None),
        "estimatedImportTimeInMS": 500 + MS_PER_IMAGE * len(entries),
        "token": base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("="),
    }


def import_project(
    repo: MetadataRepository,
    blobs: BlobStore,
    pool: Executor,
    token: str | None,
    name: str | None,
    allow_origins=(),
    jobs: JobQueue | None = None,
) -> dict:
    """The project made from an export token: imported now, or (a large snapshot, when `jobs` is given)
    answered Importing and finished by run_import from the ImportJob sent to `jobs`."""
    url = _snapshot_url(token)
    data = _read_snapshot(url, tuple(allow_origins), BadRequest, "BadRequestInvalidImportToken")
    settings = _settings(data)
    domain = domains.get(str(settings.get("domainId")))  # absent: "None", no domain
    if domain is None:
        raise BadRequest(
            "BadRequestInvalidImportToken",
            f"the snapshot's domain {settings.get('domainId')!r} is not known here",
        )
    if jobs is not None and settings["images"] > INLINE_IMAGES:
        project = _create(repo, name, settings, domain, status=IMPORTING)
        try:
            jobs.send(json.dumps({"v": JOB_VERSION, "projectId": project.id, "snapshot": url}))
        except BaseException:
            projects.delete_project(repo, blobs, project.id)
            raise
        return serialize.project_json(project)
    report, resolver = _validate(data, domain, tuple(allow_origins), pool)
    _refuse_if_bad(report)
    project = _create(repo, name, settings, domain)
    try:
        import_report(repo, blobs, pool, project, report, resolver, origin="import")
        _refuse_if_bad(report)  # the plan against the new project can still object (e.g. a tag limit)
        final = repo.get_project(project.id)
        if final is None or final.status == DELETING:
            raise ProjectGone(f"project {project.id} was deleted during the import")
    except ProjectGone:
        # deleted by its owner while this request filled it: what the import wrote after the deletion's
        # sweep goes too, and the client is told the project is gone (not a 500, not a deleted project)
        remove_remains(repo, blobs, project.id)
        raise NotFound(
            "NotFoundProject", f"project {project.id} was deleted while it was being imported"
        ) from None
    except BaseException:
        projects.delete_project(repo, blobs, project.id)
        raise
    return serialize.project_json(final)


def parse_job(body: bytes | str) -> tuple[str, str]:
    """(project id, snapshot URL) of an ImportJob message; ValueError when it is not one."""
    try:
        job = json.loads(body)
        if job.get("v") != JOB_VERSION or not isinstance(job.get("snapshot"), str):
            raise ValueError(f"unknown import job version {job.get('v')!r}")
        return layout.guid(job.get("projectId"), "projectId"), job["snapshot"]
    except (TypeError, AttributeError, BadRequest) as exc:
        raise ValueError(f"not an import job: {exc}") from None


def run_import(
    repo: MetadataRepository,
    blobs: BlobStore,
    pool: Executor,
    project_id: str,
    snapshot_url: str,
    allow_origins=(),
    last_attempt: bool = False,
) -> str:
    """Finish a background import; returns the project's status. Problems with the snapshot mark it Failed
    with every problem listed; anything else (storage, network) is raised for the queue to retry, except on
    the last attempt, which marks it Failed with that error."""
    project = repo.get_project(project_id)
    if project is None or project.status != IMPORTING:
        return project.status if project else "deleted"  # deleted meanwhile, or a duplicate message
    try:
        data = _read_snapshot(
            snapshot_url, tuple(allow_origins), CustomVisionError, "ErrorProjectImportRequestFailed"
        )
        report, resolver = _validate(data, project.domain, tuple(allow_origins), pool)
        _refuse_if_bad(report)
        import_report(
            repo,
            blobs,
            pool,
            project,
            report,
            resolver,
            origin="import",
            progress=lambda *_: _still_there(repo, project_id),
        )
        _refuse_if_bad(report)
        return _settle(repo, project_id, SUCCEEDED, "")
    except (_ProjectDeleted, ProjectGone):
        remove_remains(repo, blobs, project_id)
        return "deleted"
    except CustomVisionError as exc:
        return _settle(repo, project_id, FAILED, exc.message)
    except Exception as exc:
        if not last_attempt:
            raise
        return _settle(repo, project_id, FAILED, f"the import failed on its last attempt: {exc}")


class _ProjectDeleted(Exception):
    pass


def remove_remains(repo: MetadataRepository, blobs: BlobStore, project_id: str) -> None:
    """A project deleted while a background import wrote to it: what the batches wrote after the delete
    goes too (blobs, then rows; the project row is already gone)."""
    for container in layout.CONTAINERS:
        blobs.delete_prefix(container, layout.project_prefix(project_id))
    repo.delete_project(project_id)


def _still_there(repo: MetadataRepository, project_id: str) -> None:
    """Between import batches: stop when the project was deleted meanwhile (or is being deleted)."""
    try:
        ensure_alive(repo, project_id)
    except ProjectGone:
        raise _ProjectDeleted(project_id) from None


def _settle(repo: MetadataRepository, project_id: str, status: str, message: str) -> str:
    project = repo.get_project(project_id)
    if project is None or project.status == DELETING:  # never mark a project being deleted Succeeded
        return "deleted"
    project.status, project.status_message = status, message[:4000]
    project.last_modified = utcnow()
    repo.save_project(project)
    return status


def _read_snapshot(url: str, allow_origins: tuple[str, ...], error, code: str) -> bytes:
    try:
        return fetch(
            url,
            max_bytes=MAX_SNAPSHOT_BYTES,
            timeout=FETCH_TIMEOUT_S,
            allow_origins=UrlResolver(allow_origins).allow,
        ).data
    except UrlFetchError as exc:
        raise error(
            code, f"the token's project snapshot cannot be read (expired or deleted?): {exc.message}"
        ) from None


def _validate(data: bytes, domain, allow_origins: tuple[str, ...], pool) -> tuple[coco.Report, UrlResolver]:
    resolver = UrlResolver(allow_origins)
    rules = coco.Rules(
        task=coco.DETECTION if domain.type == domains.OBJECT_DETECTION else coco.CLASSIFICATION,
        multiclass=False,
        min_images_per_category=0,
        image_tags_in_detection=True,
    )
    return coco.validate(data, resolver, rules, pool=pool), resolver


def _create(
    repo: MetadataRepository, name: str | None, settings: dict, domain, status: str = SUCCEEDED
) -> Project:
    created = projects.create_project(
        repo,
        _name(repo, name, settings),
        settings.get("description"),
        domain.id,
        settings.get("classificationType"),
        settings.get("targetExportPlatforms") or [],
    )
    project = projects.require_project(
        repo, created["id"]
    )  # just created: gone only if deleted meanwhile (404)
    project.use_negative_set = settings.get("useNegativeSet", True) is not False
    project.augmentation_methods = (settings.get("imageProcessingSettings") or {}).get("augmentationMethods")
    project.status = status
    repo.save_project(project)
    return project


def _snapshot_url(token: str | None) -> str:
    try:
        raw = base64.urlsafe_b64decode((token or "") + "=" * (-len(token or "") % 4))
        body = json.loads(raw)
        if body.get("v") != TOKEN_VERSION or not isinstance(body.get("snapshot"), str):
            raise ValueError("unknown token version")
        return body["snapshot"]
    except (binascii.Error, ValueError, TypeError, AttributeError):
        raise BadRequest(
            "BadRequestInvalidImportToken",
            "token: not a project export token (GET /projects/{id}/export gives one)",
        ) from None


def _settings(data: bytes) -> dict:
    try:
        document = json.loads(data)
        project = document["info"]["custom_vision"]["project"]
        images = document.get("images")
        return {
            **project.get("settings", {}),
            "name": project["name"],
            "description": project.get("description"),
            "images": len(images) if isinstance(images, list) else 0,
        }
    except (ValueError, KeyError, TypeError):
        raise BadRequest("BadRequestInvalidImportToken", "the snapshot is not a project export") from None


def _name(repo: MetadataRepository, wanted: str | None, settings: dict) -> str:
    if wanted:
        return wanted
    taken = {p.name.lower() for p in repo.list_projects()}
    base = settings["name"]
    candidates = [base, f"{base} (imported)"] + [f"{base} (imported {k})" for k in range(2, 1000)]
    return next(c for c in candidates if c.lower() not in taken)


def _refuse_if_bad(report: coco.Report) -> None:
    if not report.ok:
        listed = "; ".join(str(p) for p in report.problems[:20])
        more = f" (and {len(report.problems) - 20} more)" if len(report.problems) > 20 else ""
        raise CustomVisionError(
            "ErrorProjectImportRequestFailed", f"the exported project cannot be imported: {listed}{more}"
        )


class UrlResolver:
    """Images named by `absolute_url` anywhere public (the source deployment's storage), fetched with
    cvcore.urlfetch's guards; `allow` adds this deployment's own endpoint when it is local."""

    def __init__(self, allow: tuple[str, ...]):
        self.allow = allow

    def locate(self, entry: dict) -> tuple[str, str]:
        url = entry.get("absolute_url")
        if not isinstance(url, str) or not url.strip():
            raise coco.SourceError(
                coco.NO_SOURCE, "a project snapshot names every image by absolute_url", "absolute_url"
            )
        return url, "absolute_url"

    def read(self, ref: str, max_bytes: int) -> bytes:
        try:
            return fetch(ref, max_bytes=max_bytes, timeout=FETCH_TIMEOUT_S, allow_origins=self.allow).data
        except UrlFetchError as exc:
            if exc.reason == "too-large":
                raise ImageError(ImageStatus.ERROR_IMAGE_SIZE, exc.message) from None
            if exc.status == 404:
                raise FileNotFoundError(ref) from None
            raise coco.SourceError(coco.IMAGE_UNREADABLE, exc.message, "absolute_url") from None
