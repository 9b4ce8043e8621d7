"""Image Analysis datasets: PUT/GET/PATCH/DELETE /computervision/datasets/{name}.

A dataset is a snapshot: registering it validates every COCO file it names (cvcore.coco, every image read)
and imports them into a project of its own (named `ia-dataset-{name}`, domain General (compact) for its
annotation kind), so later changes to the files do not change the dataset. Annotation files and images are
read with the storage client, and only inside this deployment's storage account: any container but the
internal ones (models, predictions, rejected); anything else is DatasetInvalidAnnotationUri. `file_name`
paths are relative to the COCO file's folder. All or nothing: a failure deletes the half-made project.
"""

from __future__ import annotations

from cvcore import coco, layout
from cvcore.errors import NotFound

from ..bootstrap import Services
from ..training import coco_import, projects
from ..training.model import MULTICLASS, Project, utcnow
from . import errors
from .common import check_name, fields, is_name, now
from .errors import VisionError
from .registry import DATASET, ETAG, MODEL, AlreadyExists

CLASSIFICATION, DETECTION = "imageClassification", "imageObjectDetection"
DOMAINS = {CLASSIFICATION: "0732100f-1a38-4e49-a514-c9b44c697ab5",  # General (compact), classification
           DETECTION: "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"}  # General (compact), object detection
INTERNAL_CONTAINERS = (layout.MODELS, layout.PREDICTIONS, layout.REJECTED)
MAX_ANNOTATION_FILES = 20
MAX_COCO_BYTES = 64 * 1024 * 1024
PROJECT_PREFIX = "ia-dataset-"


def to_json(record: dict) -> dict:
    return {"name": record["name"], "annotationKind": record["annotationKind"],
            "annotationFileUris": record["annotationFileUris"], "customProperties": record.get("customProperties")
            or {}, "createdDateTime": record["created"], "updatedDateTime": record["updated"],
            "eTag": record.get(ETAG)}


def require(s: Services, name: str) -> dict:
    record = s.vision.get(DATASET, name) if is_name(name) else None
    if record is None:
        raise VisionError(404, errors.DATASET_NOT_FOUND, f"dataset {str(name)[:200]!r} does not exist")
    return record


def readable_containers(s: Services) -> tuple[str, ...]:
    names = ([c.name for c in s.clients.blob.list_containers()] if s.clients
             else list(coco_import.READABLE_CONTAINERS))
    return tuple(n for n in names if n not in INTERNAL_CONTAINERS)


def _invalid_uri(index: int, message: str) -> VisionError:
    return VisionError(400, errors.DATASET_INVALID_ANNOTATION_URI, f"annotationFileUris[{index}]: {message}")


def _uris(value) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_ANNOTATION_FILES:
        raise VisionError(400, errors.DATASET_INVALID_ANNOTATION_URI,
                          f"annotationFileUris must list 1 to {MAX_ANNOTATION_FILES} COCO file URIs")
    for i, uri in enumerate(value):
        if not isinstance(uri, str) or not uri.strip():
            raise _invalid_uri(i, "a URI string is required")
    return value


def _read(s: Services, index: int, uri: str, endpoint: str | None, containers: tuple[str, ...]):
    """(COCO bytes, a resolver for its images): the file must be a blob of this account's readable containers."""
    if not endpoint:
        raise _invalid_uri(index, "this deployment has no blob endpoint to resolve URIs against")
    try:
        container, name = coco.account_blob(uri, endpoint)
        name = coco.safe_relative_path(name)
    except ValueError as exc:
        raise _invalid_uri(index, f"{exc}; annotation files must be blobs of this deployment's storage account") \
            from None
    if container not in containers:
        raise _invalid_uri(index, f"container {container!r} is not readable; use one of {', '.join(containers)}")
    resolver = coco_import.blob_resolver(s.blobs, name.rpartition("/")[0], endpoint)
    # file_name is relative to the file's own folder; URLs may name any readable container
    resolver.container, resolver.containers = container, containers
    try:
        data = resolver.read(f"{container}/{name}", MAX_COCO_BYTES)
    except FileNotFoundError:
        raise _invalid_uri(index, f"{container}/{name} does not exist") from None
    if len(data) > MAX_COCO_BYTES:
        raise VisionError(400, errors.DATASET_ANNOTATIONS_INVALID, f"annotationFileUris[{index}] is larger than "
                                                                   f"{MAX_COCO_BYTES} bytes")
    return data, resolver


def _custom(value) -> dict:
    fields(value, "customProperties", required=False)  # an object (or absent)
    return dict(value or {})


def _problems(reports) -> list[dict]:
    return [{"code": p.code, "message": p.message, "target": f"annotationFileUris[{i}]:{p.path}"}
            for i, report in enumerate(reports) for p in report.problems]


def register(s: Services, name: str, body) -> tuple[dict, int]:
    name = check_name(name, "dataset name")
    b = fields(body, "the body")
    kind = {k.lower(): k for k in DOMAINS}.get(str(b.get("annotationkind", "")).lower())
    if kind is None:
        raise VisionError(400, errors.INVALID_ARGUMENT, f"annotationKind must be {CLASSIFICATION} or "
                                                        f"{DETECTION}, got {b.get('annotationkind')!r}")
    uris = _uris(b.get("annotationfileuris"))
    custom = _custom(b.get("customproperties"))
    if s.vision.get(DATASET, name) is not None:
        raise VisionError(409, errors.DATASET_ALREADY_EXISTS, f"a dataset named {name!r} exists")
    endpoint, containers = s.settings.storage.endpoints.get("blob"), readable_containers(s)
    files = [_read(s, i, uri, endpoint, containers) for i, uri in enumerate(uris)]
    created = utcnow()
    project = Project(id=layout.new_id(), name=PROJECT_PREFIX + name,
                      description=f"Image Analysis dataset {name}", domain_id=DOMAINS[kind],
                      classification_type=MULTICLASS if kind == CLASSIFICATION else None,
                      target_export_platforms=[], created=created, last_modified=created)
    rules = coco_import.rules_for(project)
    reports = [coco.validate(data, resolver, rules, pool=s.pool) for data, resolver in files]
    problems = _problems(reports)
    if problems:
        raise VisionError(400, errors.DATASET_ANNOTATIONS_INVALID,
                          f"the COCO files have {len(problems)} problems; nothing was registered", problems)
    if not any(im.annotations for r in reports for im in r.images):
        raise VisionError(400, errors.DATASET_EMPTY, "the COCO files hold no annotation")
    record = {"name": name, "annotationKind": kind, "annotationFileUris": uris, "customProperties": custom,
              "projectId": project.id, "created": now(), "updated": now(), "summary": []}
    s.repo.save_project(project)
    try:
        for report, (_, resolver) in zip(reports, files):
            result = coco_import.import_report(s.repo, s.blobs, s.pool, project, report, resolver,
                                               origin=f"ia-dataset:{name}")
            if result.outcome == "rejected":
                # the project's own checks (coco_import.plan) added their problems to this report
                raise VisionError(400, errors.DATASET_ANNOTATIONS_INVALID, result.detail, _problems(reports))
            record["summary"].append(result.summary)
        s.vision.add(DATASET, name, record)
    except AlreadyExists:
        projects.delete_project(s.repo, s.blobs, project.id)
        raise VisionError(409, errors.DATASET_ALREADY_EXISTS, f"a dataset named {name!r} exists") from None
    except BaseException:
        projects.delete_project(s.repo, s.blobs, project.id)
        raise
    return to_json(s.vision.get(DATASET, name)), 201


def update(s: Services, name: str, body) -> dict:
    """PATCH: customProperties may change; the files are a snapshot (register another dataset for others)."""
    record, b = require(s, name), fields(body, "the body")
    for key, field in (("annotationkind", "annotationKind"), ("annotationfileuris", "annotationFileUris")):
        if key in b and b[key] != record[field]:
            raise errors.bad_request(f"{field} of a registered dataset cannot change; register a new dataset",
                                     "DatasetImmutable")
    if "customproperties" in b:
        record["customProperties"] = _custom(b["customproperties"])
        record["updated"] = now()
        s.vision.replace(DATASET, name, record, record[ETAG])
    return to_json(s.vision.get(DATASET, name))


def delete(s: Services, name: str) -> None:
    record = require(s, name)
    s.vision.delete(DATASET, name)
    release_project(s, record["projectId"])


def release_project(s: Services, project_id: str) -> None:
    """Delete a dataset's project once no dataset and no model (its iterations live there) refers to it."""
    if any(r.get("projectId") == project_id for kind in (DATASET, MODEL) for r in s.vision.list(kind)):
        return
    try:
        projects.delete_project(s.repo, s.blobs, project_id)
    except NotFound:
        pass
