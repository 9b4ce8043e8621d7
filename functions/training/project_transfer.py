"""Moving a project between deployments: Custom Vision's export_project / import_project pair.

GET /projects/{id}/export writes a snapshot of the project as a COCO file (normalised boxes, every image
with a time-limited read URL, its metadata, every tag with its type and description, the project's
settings under `info.custom_vision`) to `models/{project}/exports/{exportId}.coco.json`, and answers
ProjectExport with a token: base64url of {"v": 1, "snapshot": read URL of that blob}. Whoever holds the
token can import the project until the URLs expire (cvcore's BlobStore URL lifetime, 8 hours).

POST /projects/import?token=&name= reads the snapshot and every image over HTTPS (cvcore.urlfetch: only
public addresses, or this deployment's own storage endpoint when local), validates all of it with
cvcore.coco, and only then creates the project and imports through coco_import; a failure after that
deletes the half-made project. Trained iterations are not moved (iterationCount is 0): train again at the
destination. The import runs inside the request, about as fast as a COCO drop (see README).
"""

from __future__ import annotations

import base64
import binascii
import json
from concurrent.futures import ThreadPoolExecutor

from cvcore import coco, domains, layout
from cvcore.errors import BadRequest, CustomVisionError
from cvcore.imaging import ImageError, ImageStatus
from cvcore.urlfetch import UrlFetchError, fetch

from . import coco_export, projects, serialize
from .coco_import import import_report
from .ports import BlobStore, MetadataRepository

TOKEN_VERSION = 1
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
FETCH_TIMEOUT_S = 30.0
MS_PER_IMAGE = 40  # measured on Azurite, validation plus writing (see README); an estimate, as Custom Vision's


def export_project(repo: MetadataRepository, blobs: BlobStore, project_id: str) -> dict:
    project = projects.require_project(repo, project_id)
    tags = repo.list_tags(project.id)
    entries = coco_export.current_dataset(project, repo.list_images(project.id), image_tags=True)
    export_id = layout.new_id()
    snapshot = coco_export.to_coco(project, tags, entries, blobs.url, coco_export.NORMALIZED,
                                   {"export_id": export_id})
    name = layout.project_export(project.id, export_id)
    blobs.put(layout.MODELS, name, json.dumps(snapshot, separators=(",", ":")).encode(), "application/json")
    token = {"v": TOKEN_VERSION, "snapshot": blobs.url(layout.MODELS, name)}
    return {"iterationCount": 0, "imageCount": len(entries), "tagCount": len(tags),
            "regionCount": sum(1 for e in entries for _, box in e.annotations if box is not None),
            "estimatedImportTimeInMS": 500 + MS_PER_IMAGE * len(entries),
            "token": base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")}


def import_project(repo: MetadataRepository, blobs: BlobStore, pool: ThreadPoolExecutor, token: str | None,
                   name: str | None, allow_origins=()) -> dict:
    url = _snapshot_url(token)
    resolver = UrlResolver(tuple(allow_origins))
    try:
        data = fetch(url, max_bytes=MAX_SNAPSHOT_BYTES, timeout=FETCH_TIMEOUT_S, allow_origins=resolver.allow).data
    except UrlFetchError as exc:
        raise BadRequest("BadRequestInvalidImportToken", f"the token's project snapshot cannot be read "
                                                         f"(expired or deleted?): {exc.message}") from None
    settings = _settings(data)
    domain = domains.get(settings.get("domainId"))
    if domain is None:
        raise BadRequest("BadRequestInvalidImportToken", f"the snapshot's domain {settings.get('domainId')!r} "
                                                         "is not known here")
    rules = coco.Rules(task=coco.DETECTION if domain.type == domains.OBJECT_DETECTION else coco.CLASSIFICATION,
                       multiclass=False, min_images_per_category=0, image_tags_in_detection=True)
    report = coco.validate(data, resolver, rules, pool=pool)
    _refuse_if_bad(report)
    created = projects.create_project(repo, _name(repo, name, settings), settings.get("description"), domain.id,
                                      settings.get("classificationType"), settings.get("targetExportPlatforms") or [])
    project = repo.get_project(created["id"])
    project.use_negative_set = settings.get("useNegativeSet", True) is not False
    project.augmentation_methods = (settings.get("imageProcessingSettings") or {}).get("augmentationMethods")
    repo.save_project(project)
    try:
        import_report(repo, blobs, pool, project, report, resolver, origin="import")
        _refuse_if_bad(report)  # the plan against the new project can still object (e.g. a tag limit)
    except BaseException:
        projects.delete_project(repo, blobs, project.id)
        raise
    return serialize.project_json(repo.get_project(project.id))


def _snapshot_url(token: str | None) -> str:
    try:
        raw = base64.urlsafe_b64decode((token or "") + "=" * (-len(token or "") % 4))
        body = json.loads(raw)
        if body.get("v") != TOKEN_VERSION or not isinstance(body.get("snapshot"), str):
            raise ValueError("unknown token version")
        return body["snapshot"]
    except (binascii.Error, ValueError, TypeError, AttributeError):
        raise BadRequest("BadRequestInvalidImportToken", "token: not a project export token (GET "
                                                         "/projects/{id}/export gives one)") from None


def _settings(data: bytes) -> dict:
    try:
        project = json.loads(data)["info"]["custom_vision"]["project"]
        return {**project.get("settings", {}), "name": project["name"], "description": project.get("description")}
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
        raise CustomVisionError("ErrorProjectImportRequestFailed",
                                f"the exported project cannot be imported: {listed}{more}")


class UrlResolver:
    """Images named by `absolute_url` anywhere public (the source deployment's storage), fetched with
    cvcore.urlfetch's guards; `allow` adds this deployment's own endpoint when it is local."""

    def __init__(self, allow: tuple[str, ...]):
        self.allow = allow

    def locate(self, entry: dict) -> tuple[str, str]:
        url = entry.get("absolute_url")
        if not isinstance(url, str) or not url.strip():
            raise coco.SourceError(coco.NO_SOURCE, "a project snapshot names every image by absolute_url",
                                   "absolute_url")
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

