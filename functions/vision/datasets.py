"""Image Analysis datasets: PUT/GET/PATCH/DELETE /computervision/datasets/{name}.

A dataset is a snapshot: registering it validates every COCO file it names (cvcore.coco, every image read)
and imports them into a project of its own (named `ia-dataset-{name}`, domain General (compact) for its
annotation kind), so later changes to the files do not change the dataset. Annotation files and images are
read with the storage client, and only inside this deployment's storage account: any container but the
internal ones (models, predictions, rejected); anything else is DatasetInvalidAnnotationUri. `file_name`
paths are relative to the COCO file's folder. All or nothing: a failure deletes the half-made project.

Files naming up to project_transfer.INLINE_IMAGES images are registered inside the request. A larger dataset
would outlast an HTTP request (Functions stop one at 230 s): its files' structure is checked (no image read)
and any problem refused at once; then its record is saved with the internal `state` importing (its project
Importing) and answered, a job goes on the project-imports queue, and finish_registration
(queue_imports.py) reads every image and imports them: state ready (project Succeeded), or failed with its
problems saved (project Failed). Models and evaluations refuse a dataset that is not ready (require_ready);
the dataset's JSON is the same in every state.
"""

from __future__ import annotations

import json

from cvcore import coco, layout
from cvcore.errors import NotFound

from ..domain.ports import ConcurrencyError, wired
from ..domain.records import MULTICLASS, Project, utcnow
from ..training import coco_import, project_transfer, projects
from . import errors
from .common import check_name, fields, is_name, now, require_record
from .errors import VisionError
from .ports import VisionServices, registry
from .registry import DATASET, ETAG, MODEL, AlreadyExists

CLASSIFICATION, DETECTION = "imageClassification", "imageObjectDetection"
DOMAINS = {
    CLASSIFICATION: "0732100f-1a38-4e49-a514-c9b44c697ab5",  # General (compact), classification
    DETECTION: "a27d5ca5-bb19-49d8-a70a-fec086c47f5b",
}  # General (compact), object detection
INTERNAL_CONTAINERS = (layout.MODELS, layout.PREDICTIONS, layout.REJECTED)
MAX_ANNOTATION_FILES = 20
MAX_COCO_BYTES = 64 * 1024 * 1024
PROJECT_PREFIX = "ia-dataset-"
IMPORTING, READY, FAILED = "importing", "ready", "failed"  # a record's internal `state`; none: ready
JOB_VERSION, JOB_KIND = 1, "visionDataset"  # a registration job on the project-imports queue


def to_json(record: dict) -> dict:
    return {
        "name": record["name"],
        "annotationKind": record["annotationKind"],
        "annotationFileUris": record["annotationFileUris"],
        "customProperties": record.get("customProperties") or {},
        "createdDateTime": record["created"],
        "updatedDateTime": record["updated"],
        "eTag": record.get(ETAG),
    }


def require(s: VisionServices, name: str) -> dict:
    return require_record(registry(s), DATASET, name, errors.DATASET_NOT_FOUND)


def require_ready(s: VisionServices, name: str) -> dict:
    """A dataset a model may train or be evaluated on: not still registering, not failed."""
    record = require(s, name)
    state = record.get("state", READY)
    if state == IMPORTING:
        raise VisionError(
            409,
            errors.DATASET_NOT_READY,
            f"dataset {name!r} is still being registered: its images "
            "are read and imported in the background; try again later",
        )
    if state == FAILED:
        raise VisionError(
            400,
            errors.DATASET_ANNOTATIONS_INVALID,
            record.get("message") or f"dataset {name!r} failed to register",
            record.get("problems"),
        )
    return record


def readable_containers(s: VisionServices) -> tuple[str, ...]:
    names = (
        [c.name for c in s.clients.blob.list_containers()]
        if s.clients
        else list(coco_import.READABLE_CONTAINERS)
    )
    return tuple(n for n in names if n not in INTERNAL_CONTAINERS)


def _invalid_uri(index: int, message: str) -> VisionError:
    return VisionError(400, errors.DATASET_INVALID_ANNOTATION_URI, f"annotationFileUris[{index}]: {message}")


def _uris(value) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_ANNOTATION_FILES:
        raise VisionError(
            400,
            errors.DATASET_INVALID_ANNOTATION_URI,
            f"annotationFileUris must list 1 to {MAX_ANNOTATION_FILES} COCO file URIs",
        )
    for i, uri in enumerate(value):
        if not isinstance(uri, str) or not uri.strip():
            raise _invalid_uri(i, "a URI string is required")
    return value


def _read(s: VisionServices, index: int, uri: str, endpoint: str | None, containers: tuple[str, ...]):
    """(COCO bytes, a resolver for its images): the file must be a blob of this account's readable containers."""
    if not endpoint:
        raise _invalid_uri(index, "this deployment has no blob endpoint to resolve URIs against")
    try:
        container, name = coco.account_blob(uri, endpoint)
        name = coco.safe_relative_path(name)
    except ValueError as exc:
        raise _invalid_uri(
            index, f"{exc}; annotation files must be blobs of this deployment's storage account"
        ) from None
    if container not in containers:
        raise _invalid_uri(
            index, f"container {container!r} is not readable; use one of {', '.join(containers)}"
        )
    resolver = coco_import.blob_resolver(s.blobs, name.rpartition("/")[0], endpoint)
    # file_name is relative to the file's own folder; URLs may name any readable container
    resolver.container, resolver.containers = container, containers
    try:
        data = resolver.read(f"{container}/{name}", MAX_COCO_BYTES)
    except FileNotFoundError:
        raise _invalid_uri(index, f"{container}/{name} does not exist") from None
    if len(data) > MAX_COCO_BYTES:
        raise VisionError(
            400,
            errors.DATASET_ANNOTATIONS_INVALID,
            f"annotationFileUris[{index}] is larger than {MAX_COCO_BYTES} bytes",
        )
    return data, resolver


def _custom(value) -> dict:
    fields(value, "customProperties", required=False)  # an object (or absent)
    return dict(value or {})


def _problems(reports) -> list[dict]:
    return [
        {"code": p.code, "message": p.message, "target": f"annotationFileUris[{i}]:{p.path}"}
        for i, report in enumerate(reports)
        for p in report.problems
    ]


def _refuse(reports) -> None:
    problems = _problems(reports)
    if problems:
        raise VisionError(
            400,
            errors.DATASET_ANNOTATIONS_INVALID,
            f"the COCO files have {len(problems)} problems; nothing was registered",
            problems,
        )
    if not any(im.annotations for r in reports for im in r.images):
        raise VisionError(400, errors.DATASET_EMPTY, "the COCO files hold no annotation")


def _files(s: VisionServices, uris: list[str]) -> list:
    endpoint, containers = s.settings.storage.endpoints.get("blob"), readable_containers(s)
    return [_read(s, i, uri, endpoint, containers) for i, uri in enumerate(uris)]


def _validated(s: VisionServices, project: Project, files: list) -> list[coco.Report]:
    """Every image of the files read and checked; problems raise datasetAnnotationsInvalid (or datasetEmpty),
    listing them all."""
    reports = [
        coco.validate(data, resolver, coco_import.rules_for(project), pool=s.pool) for data, resolver in files
    ]
    _refuse(reports)
    return reports


def _import(
    s: VisionServices, name: str, project: Project, files: list, reports: list, progress=None
) -> list[dict]:
    """The validated files into `project`; the import summaries."""
    summary = []
    for report, (_, resolver) in zip(reports, files, strict=True):
        result = coco_import.import_report(
            s.repo, s.blobs, s.pool, project, report, resolver, progress=progress, origin=f"ia-dataset:{name}"
        )
        if result.outcome == "rejected":
            # the project's own checks (coco_import.plan) added their problems to this report
            raise VisionError(400, errors.DATASET_ANNOTATIONS_INVALID, result.detail, _problems(reports))
        summary.append(result.summary)
    return summary


def register(s: VisionServices, name: str, body) -> tuple[dict, int]:
    name = check_name(name, "dataset name")
    b = fields(body, "the body")
    kind = {k.lower(): k for k in DOMAINS}.get(str(b.get("annotationkind", "")).lower())
    if kind is None:
        raise VisionError(
            400,
            errors.INVALID_ARGUMENT,
            f"annotationKind must be {CLASSIFICATION} or {DETECTION}, got {b.get('annotationkind')!r}",
        )
    uris = _uris(b.get("annotationfileuris"))
    custom = _custom(b.get("customproperties"))
    if registry(s).get(DATASET, name) is not None:
        raise VisionError(409, errors.DATASET_ALREADY_EXISTS, f"a dataset named {name!r} exists")
    files = _files(s, uris)
    created = utcnow()
    project = Project(
        id=layout.new_id(),
        name=PROJECT_PREFIX + name,
        description=f"Image Analysis dataset {name}",
        domain_id=DOMAINS[kind],
        classification_type=MULTICLASS if kind == CLASSIFICATION else None,
        target_export_platforms=[],
        created=created,
        last_modified=created,
    )
    structure = [coco.validate(data, None, coco_import.rules_for(project)) for data, _ in files]
    later = s.imports is not None and sum(len(r.images) for r in structure) > project_transfer.INLINE_IMAGES
    if later:
        _refuse(structure)  # what shows without reading an image, at once (inline: with the images' problems)
    del structure
    record = {
        "name": name,
        "annotationKind": kind,
        "annotationFileUris": uris,
        "customProperties": custom,
        "projectId": project.id,
        "created": now(),
        "updated": now(),
        "summary": [],
    }
    if later:
        project.status, record["state"] = project_transfer.IMPORTING, IMPORTING
        _create(s, name, project, record)
        try:
            wired(s.imports, "imports").send(json.dumps({"v": JOB_VERSION, "kind": JOB_KIND, "name": name}))
        except BaseException:
            registry(s).delete(DATASET, name)
            projects.delete_project(s.repo, s.blobs, project.id)
            raise
    else:
        reports = _validated(s, project, files)
        _create(
            s, name, project, record, lambda: record.update(summary=_import(s, name, project, files, reports))
        )
    return to_json(require(s, name)), 201


def _create(s: VisionServices, name: str, project: Project, record: dict, fill=None) -> None:
    """The project, filled by `fill`, then the dataset's record; a failure deletes the project."""
    s.repo.save_project(project)
    try:
        if fill is not None:
            fill()
        registry(s).add(DATASET, name, record)
    except AlreadyExists:
        projects.delete_project(s.repo, s.blobs, project.id)
        raise VisionError(409, errors.DATASET_ALREADY_EXISTS, f"a dataset named {name!r} exists") from None
    except BaseException:
        projects.delete_project(s.repo, s.blobs, project.id)
        raise


def parse_job(body: bytes | str) -> str | None:
    """The dataset name of a registration job; None for a message of another kind (no `kind`); ValueError
    when it is not a job at all."""
    job = json.loads(body)  # a JSONDecodeError is a ValueError
    if not isinstance(job, dict) or "kind" not in job:
        return None
    if job.get("kind") != JOB_KIND or job.get("v") != JOB_VERSION or not is_name(job.get("name")):
        raise ValueError(f"not a dataset registration job: kind {job.get('kind')!r}, v {job.get('v')!r}")
    return job["name"]


class _Deleted(Exception):
    pass


def finish_registration(s: VisionServices, name: str, last_attempt: bool = False) -> str:
    """The background half of a large register (queue_imports.py); returns the dataset's state. Problems with
    the files or images mark it failed with them listed; anything else (storage) is raised for the queue to
    retry, except on the last attempt, which marks it failed with that error."""
    record = registry(s).get(DATASET, name)
    if record is None or record.get("state") != IMPORTING:
        return (
            record.get("state", READY) if record else "deleted"
        )  # deleted meanwhile, or a duplicate message
    project_id = record["projectId"]
    project = s.repo.get_project(project_id)
    if project is None:
        return "deleted"  # the dataset is being deleted: its record goes next

    def still_there(*_) -> None:  # between import batches
        current = registry(s).get(DATASET, name)
        if current is None or current["projectId"] != project_id:
            raise _Deleted(name)

    try:
        files = _files(s, record["annotationFileUris"])
        summary = _import(s, name, project, files, _validated(s, project, files), progress=still_there)
    except _Deleted:
        project_transfer.remove_remains(s.repo, s.blobs, project_id)
        return "deleted"
    except VisionError as exc:
        return _settle(
            s, name, project_id, FAILED, f"registering dataset {name!r} failed: {exc.message}", exc.details
        )
    except Exception as exc:
        if not last_attempt:
            raise
        return _settle(
            s,
            name,
            project_id,
            FAILED,
            f"the registration failed on its last attempt: {type(exc).__name__}: {str(exc)[:1000]}",
        )
    return _settle(s, name, project_id, READY, summary=summary)


def _settle(
    s: VisionServices, name: str, project_id: str, state: str, message: str = "", problems=(), summary=None
) -> str:
    """The project's status first (a model may train once the record says ready), then the record's state."""
    project = s.repo.get_project(project_id)
    if project is None:
        return "deleted"
    project.status = project_transfer.SUCCEEDED if state == READY else project_transfer.FAILED
    project.status_message = "; ".join([message] + [f"{p['target']}: {p['message']}" for p in problems])[
        :4000
    ]
    project.last_modified = utcnow()
    s.repo.save_project(project)
    for attempt in range(3):  # a PATCH of customProperties may come between
        record = registry(s).get(DATASET, name)
        if record is None or record["projectId"] != project_id:
            return "deleted"
        record.update(state=state, updated=now())
        if state == READY:
            record["summary"] = summary
        else:
            record.update(message=message, problems=list(problems)[: errors.MAX_DETAILS])
        try:
            registry(s).replace(DATASET, name, record, record[ETAG])
            return state
        except ConcurrencyError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable: the third conflict is raised")


def update(s: VisionServices, name: str, body) -> dict:
    """PATCH: customProperties may change; the files are a snapshot (register another dataset for others)."""
    record, b = require(s, name), fields(body, "the body")
    for key, field in (("annotationkind", "annotationKind"), ("annotationfileuris", "annotationFileUris")):
        if key in b and b[key] != record[field]:
            raise errors.bad_request(
                f"{field} of a registered dataset cannot change; register a new dataset", "DatasetImmutable"
            )
    if "customproperties" in b:
        record["customProperties"] = _custom(b["customproperties"])
        record["updated"] = now()
        registry(s).replace(DATASET, name, record, record[ETAG])
    return to_json(require(s, name))


def delete(s: VisionServices, name: str) -> None:
    record = require(s, name)
    registry(s).delete(DATASET, name)
    release_project(s, record["projectId"])


def release_project(s: VisionServices, project_id: str) -> None:
    """Delete a dataset's project once no dataset and no model (its iterations live there) refers to it."""
    if any(r.get("projectId") == project_id for kind in (DATASET, MODEL) for r in registry(s).list(kind)):
        return
    try:
        projects.delete_project(s.repo, s.blobs, project_id)
    except NotFound:
        pass
