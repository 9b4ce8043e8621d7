"""Iterations: list, get, rename, delete, publish/unpublish, performance at any threshold, and exports.

Performance is recomputed from the trainer's `evaluation.json` (out-of-fold scores per image) with the
numpy-only metrics in cvcore, so any threshold / overlap threshold gets an honest answer."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from cvcore import layout, messages
from cvcore.errors import BadRequest, NotFound

from ..domain.ports import BlobStore, ConcurrencyError, MetadataRepository, saved_iteration
from ..domain.records import Iteration, Project, utcnow
from ..prediction.published import publish_changed
from . import serialize
from .projects import require_project

MAX_PUBLISH_NAME = 256


def require_iteration(repo: MetadataRepository, project: Project, iteration_id: str) -> Iteration:
    checked: str | None  # None (and so "iteration None" below) when it is not a GUID
    try:
        checked = layout.guid(iteration_id, "iterationId")
    except ValueError:
        checked = None
    it = repo.get_iteration(project.id, checked) if checked else None
    if it is None:
        raise NotFound("NotFoundIteration", f"iteration {checked} does not exist in project {project.id}")
    return it


def _edit(repo: MetadataRepository, project_id: str, it: Iteration, change) -> Iteration:
    """Apply `change` and save with the row's ETag, re-reading and retrying on a concurrent write."""
    for _ in range(5):
        change(it)
        it.last_modified = utcnow()
        try:
            repo.update_iteration(project_id, it)
            return saved_iteration(repo, project_id, it.id)
        except ConcurrencyError:
            it = saved_iteration(repo, project_id, it.id)
    raise BadRequest("Conflict", "the iteration kept changing; try again")


def list_iterations(repo: MetadataRepository, project_id: str) -> list[dict]:
    project = require_project(repo, project_id)
    return [serialize.iteration_json(project.id, it) for it in reversed(repo.list_iterations(project.id))]


def get_iteration(repo: MetadataRepository, project_id: str, iteration_id: str) -> dict:
    project = require_project(repo, project_id)
    return serialize.iteration_json(project.id, require_iteration(repo, project, iteration_id))


def update_iteration(repo: MetadataRepository, project_id: str, iteration_id: str, body) -> dict:
    project = require_project(repo, project_id)
    it = require_iteration(repo, project, iteration_id)
    name = (body or {}).get("name") if isinstance(body, dict) else None
    if not name or not str(name).strip() or len(str(name)) > 256:
        raise BadRequest("BadRequestIterationName", "name must be 1 to 256 characters")
    if any(
        o.name.lower() == str(name).strip().lower() and o.id != it.id
        for o in repo.list_iterations(project.id)
    ):
        raise BadRequest("BadRequestIterationNameNotUnique", f"an iteration named {name!r} already exists")
    it = _edit(repo, project.id, it, lambda i: setattr(i, "name", str(name).strip()))
    return serialize.iteration_json(project.id, it)


def delete_iteration(repo: MetadataRepository, blobs: BlobStore, project_id: str, iteration_id: str) -> None:
    project = require_project(repo, project_id)
    it = require_iteration(repo, project, iteration_id)
    if it.publish_name:
        raise BadRequest(
            "BadRequestIterationIsPublished",
            f"iteration {it.name!r} is published as {it.publish_name!r}; unpublish it first",
        )
    repo.delete_iteration(project.id, it.id)  # row first: a trainer still running sees it gone and stops
    blobs.delete_prefix(layout.MODELS, layout.iteration_prefix(project.id, it.id))
    _evaluations.drop(project.id, it.id)
    publish_changed(project.id, [it.id])  # its stored predictions stay: they are the project's, not its


def publish(
    repo: MetadataRepository,
    project_id: str,
    iteration_id: str,
    publish_name: str | None,
    prediction_id: str | None,
    overwrite: bool,
) -> bool:
    project = require_project(repo, project_id)
    it = require_iteration(repo, project, iteration_id)
    if it.status != messages.COMPLETED:
        raise BadRequest(
            "BadRequestIterationIsNotTrained", f"iteration {it.name!r} is {it.status}, not Completed"
        )
    name = (publish_name or "").strip()
    if not name or len(name) > MAX_PUBLISH_NAME or "/" in name:
        raise BadRequest(
            "BadRequestInvalidPublishName", "publishName must be 1 to 256 characters without '/'"
        )
    holders = [o for o in repo.list_iterations(project.id) if o.publish_name == name and o.id != it.id]
    if holders and not overwrite:
        raise BadRequest(
            "BadRequestInvalidPublishName",
            f"{name!r} is already the publish name of {holders[0].name!r}; unpublish it or set overwrite",
        )

    def set_published(i: Iteration):
        i.publish_name, i.prediction_resource_id = name, prediction_id

    _edit(repo, project.id, it, set_published)  # first: predictions meanwhile find the old or the new model
    for other in holders:
        _edit(repo, project.id, other, lambda i: setattr(i, "publish_name", None))
    publish_changed(project.id, [it.id, *(o.id for o in holders)])
    return True


def unpublish(repo: MetadataRepository, project_id: str, iteration_id: str) -> None:
    project = require_project(repo, project_id)
    it = require_iteration(repo, project, iteration_id)
    if not it.publish_name:
        raise BadRequest("BadRequestIterationNotPublished", f"iteration {it.name!r} is not published")

    def clear(i: Iteration):
        i.publish_name, i.prediction_resource_id = None, None

    _edit(repo, project.id, it, clear)
    publish_changed(project.id, [it.id])


class _EvaluationCache:
    """evaluation.json per iteration, bounded; a Completed iteration's artifacts never change."""

    def __init__(self, size: int = 8):
        self._items: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, blobs: BlobStore, project_id: str, iteration_id: str) -> dict:
        key = (project_id, iteration_id)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = json.loads(
            blobs.get(layout.MODELS, layout.iteration_artifact(project_id, iteration_id, layout.EVALUATION))
        )
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def drop(self, project_id: str, iteration_id: str) -> None:
        with self._lock:
            self._items.pop((project_id, iteration_id), None)


_evaluations = _EvaluationCache()


def _trained(repo: MetadataRepository, project_id: str, iteration_id: str) -> tuple[Project, Iteration]:
    project = require_project(repo, project_id)
    it = require_iteration(repo, project, iteration_id)
    if it.status != messages.COMPLETED:
        raise NotFound(
            "NotFoundIterationPerformance", f"iteration {it.name!r} is {it.status}; it has no performance"
        )
    return project, it


def _unit(value: float | None, default: float, name: str) -> float:
    if value is None:
        return default
    if not 0.0 <= value <= 1.0:
        raise BadRequest("BadRequestInvalid", f"{name} must be between 0 and 1, got {value}")
    return value


def performance(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    iteration_id: str,
    threshold: float | None,
    overlap: float | None,
) -> dict:
    project, it = _trained(repo, project_id, iteration_id)
    evaluation = _evaluations.get(blobs, project.id, it.id)
    threshold = _unit(threshold, 0.5, "threshold")
    if evaluation.get("task") == "detection":
        from cvcore.boxes import detection_performance

        return detection_performance(evaluation, threshold, _unit(overlap, 0.3, "overlapThreshold"))
    from cvcore.metrics import classification_performance

    return classification_performance(evaluation, threshold)


def advice(repo: MetadataRepository, blobs: BlobStore, project_id: str, iteration_id: str) -> dict:
    """The model doctor's findings for a Completed iteration (advice.json, written by the trainer), with a link
    to the same as a page. Iterations trained before the doctor existed have none: NotFound says so."""
    project, it = _trained(repo, project_id, iteration_id)
    name = layout.iteration_artifact(project.id, it.id, layout.ADVICE)
    if not blobs.exists(layout.MODELS, name):
        raise NotFound(
            "NotFoundIterationAdvice",
            f"iteration {it.name!r} has no advice: it was trained before "
            "the model doctor existed; train again to get it",
        )
    found = json.loads(blobs.get(layout.MODELS, name))
    page = layout.iteration_artifact(project.id, it.id, layout.REPORT_ADVICE)
    found["reportUri"] = blobs.url(layout.MODELS, page) if blobs.exists(layout.MODELS, page) else None
    return found


def _image_predictions(evaluation: dict, entry: dict, labels: dict) -> list[dict]:
    """One image's out-of-fold predictions in Custom Vision's Prediction shape, most probable first."""
    out = []
    if evaluation.get("task") == "detection":
        for label, score, left, top, width, height in entry.get("detections", []):
            lab = labels[int(label)]
            out.append(
                {
                    "probability": float(score),
                    "tagId": lab["tag_id"],
                    "tagName": lab["name"],
                    "tagType": lab.get("type", "Regular"),
                    "boundingBox": {"left": left, "top": top, "width": width, "height": height},
                }
            )
    else:
        for index, score in enumerate(entry.get("scores", [])):
            lab = labels[index]
            out.append(
                {
                    "probability": float(score),
                    "tagId": lab["tag_id"],
                    "tagName": lab["name"],
                    "tagType": lab.get("type", "Regular"),
                    "boundingBox": None,
                }
            )
    return sorted(out, key=lambda p: -p["probability"])


def image_performances(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    iteration_id: str,
    *,
    tag_ids: list[str],
    order_by: str | None,
    take: int,
    skip: int,
) -> list[dict]:
    """How each training image was predicted while held out (cross-validation), with its true tags."""
    project, it = _trained(repo, project_id, iteration_id)
    evaluation = _evaluations.get(blobs, project.id, it.id)
    labels = {int(lab["index"]): lab for lab in evaluation.get("labels", [])}
    entries = {e["key"]: e for e in evaluation.get("images", [])}
    records = repo.get_images(project.id, list(entries))
    if tag_ids:
        wanted = set(tag_ids)
        records = {k: v for k, v in records.items() if v.tag_ids() & wanted}
    order = (order_by or "Newest").lower()
    ordered = sorted(records.values(), key=lambda im: (im.created, im.id), reverse=order != "oldest")
    tags = {t.id: t for t in repo.list_tags(project.id)}
    out = []
    for im in ordered[skip : skip + take]:
        body = serialize.image_json(project.id, im, tags, blobs.url)
        out.append(
            {
                "id": im.id,
                "created": body["created"],
                "width": im.width,
                "height": im.height,
                "imageUri": body["originalImageUri"],
                "thumbnailUri": body["thumbnailUri"],
                "tags": body["tags"],
                "regions": body["regions"],
                "predictions": _image_predictions(evaluation, entries[im.id], labels),
            }
        )
    return out


def image_performance_count(
    repo: MetadataRepository, blobs: BlobStore, project_id: str, iteration_id: str, tag_ids: list[str]
) -> int:
    project, it = _trained(repo, project_id, iteration_id)
    keys = [e["key"] for e in _evaluations.get(blobs, project.id, it.id).get("images", [])]
    records = repo.get_images(project.id, keys)
    wanted = set(tag_ids)
    return sum(1 for im in records.values() if not wanted or im.tag_ids() & wanted)
