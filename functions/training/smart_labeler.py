"""Smart labeler (Training API): a trained iteration suggests tags (classification) or regions (detection)
for training images, each with its predictionUncertainty.

- `suggest_tags_and_regions`: for up to 64 named images.
- `query_suggested_images` / `query_suggested_image_count`: over the project's untagged images, those
  whose suggestion for one of the given tags reaches `threshold`; pages sorted by uncertainty (ascending
  or descending, then image id) with a stateless cursor (continuation.py), so tagging the images of one
  page never shifts the next.

An (iteration, image) suggestion is computed once, with the prediction route's own model cache and
predict_image, and kept as a blob beside the iteration's model (CACHE): image ids are content addressed
and an iteration's model never changes, so an entry is never stale, and deleting the iteration deletes
its entries. Only the images without an entry go through the model, in chunks of CHUNK (bounded memory).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from cvcore import artifacts, layout
from cvcore.errors import BadRequest, NotFound
from cvcore.imaging import ImageError, decode_rgb

from ..domain.ports import BlobStore, MetadataRepository
from ..domain.records import ImageRecord, Iteration, Project, iso, utcnow
from ..prediction import scoring, service
from ..prediction.predict import predict_image
from ..prediction.published import Published, task_of
from ..web.params import guid, lower_keys, page_size, unit
from . import continuation
from .projects import require_project
from .quicktest import completed_iteration
from .review import MISSING

log = logging.getLogger(__name__)
SORTS = ("UncertaintyDescending", "UncertaintyAscending")  # the first is the default: most informative first
INVALID = "BadRequestInvalid"
CHUNK = 16


def cache_name(project_id: str, iteration_id: str, image_id: str) -> str:
    return layout.iteration_artifact(project_id, iteration_id, f"suggestions/{layout.guid(image_id)}.json")


@dataclass
class Suggestion:
    image_id: str
    created: datetime
    predictions: list[dict]
    uncertainty: float

    def to_json(self) -> bytes:
        return json.dumps(
            {"created": iso(self.created), "predictions": self.predictions, "uncertainty": self.uncertainty},
            separators=(",", ":"),
        ).encode()


def suggest(
    predictor: service.Predictor, blobs: BlobStore, project: Project, it: Iteration, images: list[ImageRecord]
) -> dict[str, Suggestion]:
    """Suggestions for `images` (image id -> Suggestion; an image that cannot be read has none)."""
    pool = predictor.pool

    def cached(im: ImageRecord) -> Suggestion | None:
        try:
            raw = json.loads(blobs.get(layout.MODELS, cache_name(project.id, it.id, im.id)))
        except MISSING:
            return None
        return Suggestion(
            im.id, datetime.fromisoformat(raw["created"]), raw["predictions"], raw["uncertainty"]
        )

    found = {s.image_id: s for s in pool.map(cached, images) if s is not None}
    missing = [im for im in images if im.id not in found]
    if not missing:
        return found
    published = Published(project, it, task_of(it))
    model = service.load_model(predictor.models, published)
    writes = []
    for first in range(0, len(missing), CHUNK):
        chunk = missing[first : first + CHUNK]
        for im, image in zip(
            chunk, pool.map(lambda im: read_original(blobs, project.id, im.id), chunk), strict=True
        ):
            if image is None:
                continue
            predictions = predict_image(model, image)
            if published.task == artifacts.DETECTION:
                predictions = [p for p in predictions if p["probability"] >= scoring.REGION_FLOOR]
            uncertainty, _ = scoring.uncertainty_and_margin(
                published.task, model.sidecar.classification_type, predictions
            )
            found[im.id] = s = Suggestion(im.id, utcnow(), predictions, uncertainty)
            writes.append(
                pool.submit(
                    blobs.put,
                    layout.MODELS,
                    cache_name(project.id, it.id, im.id),
                    s.to_json(),
                    "application/json",
                )
            )
    for write in writes:
        try:
            write.result()
        except Exception:
            log.warning("a suggestion of iteration %s could not be cached", it.id, exc_info=True)
    return found


def read_original(blobs: BlobStore, project_id: str, image_id: str, draft_size=None):
    """A training image's stored original, upright (EXIF orientation applied), or None (logged) when it is
    missing or unreadable; `draft_size` lets a JPEG decode at a reduced scale."""
    try:
        return decode_rgb(
            blobs.get(layout.IMAGES, layout.image_original(project_id, image_id)),
            max_bytes=None,
            draft_size=draft_size,
        )
    except (ImageError, *MISSING) as exc:
        log.warning("training image %s cannot be read: %s", image_id, exc)
        return None


def suggestion_json(
    project: Project, it: Iteration, s: Suggestion, predictions: list[dict] | None = None
) -> dict:
    return {
        "id": s.image_id,
        "project": project.id,
        "iteration": it.id,
        "created": iso(s.created),
        "predictions": s.predictions if predictions is None else predictions,
        "predictionUncertainty": s.uncertainty,
    }


# ---- the three operations -----------------------------------------------------------------------------------
def suggest_tags_and_regions(
    repo: MetadataRepository,
    blobs: BlobStore,
    predictor: service.Predictor,
    project_id: str,
    iteration_id: str | None,
    image_ids: list[str],
) -> list[dict]:
    project = require_project(repo, project_id)
    it = completed_iteration(repo, project, iteration_id)
    if not image_ids:
        raise BadRequest("BadRequestRequiredParamIsNull", "imageIds: name the images to suggest tags for")
    images = repo.get_images(project.id, image_ids)
    missing = [i for i in image_ids if i not in images]
    if missing:
        raise NotFound("NotFoundImage", f"imageIds: image {missing[0]} does not exist in this project")
    found = suggest(predictor, blobs, project, it, list(images.values()))
    return [suggestion_json(project, it, found[i]) for i in dict.fromkeys(image_ids) if i in found]


def _tag_filter(repo: MetadataRepository, project: Project, b: dict) -> tuple[list[str], float]:
    raw = b.get("tagids") or []
    if not isinstance(raw, list):
        raise BadRequest(INVALID, "tagIds: a list of tag ids is required")
    project_tags = {t.id for t in repo.list_tags(project.id)}
    tag_ids = list(dict.fromkeys(guid(t, f"tagIds[{i}]") for i, t in enumerate(raw)))
    unknown = [t for t in tag_ids if t not in project_tags]
    if unknown:
        raise NotFound("NotFoundTag", f"tagIds: tag {unknown[0]} does not exist in this project")
    return tag_ids or sorted(project_tags), unit(b.get("threshold"), 0.0, "threshold", INVALID)


def _untagged(repo, blobs, predictor, project, it, b):
    """(tag ids, threshold, [(image, suggestion, its predictions for those tags at or above threshold)])."""
    tag_ids, threshold = _tag_filter(repo, project, b)
    images = [im for im in repo.list_images(project.id) if not im.is_tagged]
    found = suggest(predictor, blobs, project, it, images)
    wanted, hits = set(tag_ids), []
    for im in images:
        if im.id in found:
            s = found[im.id]
            chosen = [p for p in s.predictions if p["tagId"] in wanted and p["probability"] >= threshold]
            if chosen:
                hits.append((im, s, chosen))
    return tag_ids, threshold, hits


def query_suggested_images(
    repo: MetadataRepository,
    blobs: BlobStore,
    predictor: service.Predictor,
    project_id: str,
    iteration_id: str | None,
    body,
) -> dict:
    """SuggestedTagAndRegionQuery: a page of untagged images whose suggestions match, and the next token."""
    project = require_project(repo, project_id)
    it = completed_iteration(repo, project, iteration_id)
    b = lower_keys(body, "SuggestedTagAndRegionQueryToken", INVALID)
    sort = {s.lower(): s for s in SORTS}.get(str(b.get("sortby") or SORTS[0]).lower())
    if sort is None:
        raise BadRequest(INVALID, f"sortBy: one of {', '.join(SORTS)} is required, got {b.get('sortby')!r}")
    max_count = page_size(b.get("maxcount"), INVALID, INVALID)
    tag_ids, threshold, hits = _untagged(repo, blobs, predictor, project, it, b)
    fingerprint = continuation.fingerprint({"i": it.id, "t": sorted(tag_ids), "h": threshold, "o": sort})
    sign = 1.0 if sort == "UncertaintyAscending" else -1.0

    def key(hit) -> tuple[float, str]:
        return sign * hit[1].uncertainty, hit[0].id

    after = None
    if b.get("continuation"):
        state = continuation.decode(b["continuation"], project.id, fingerprint, INVALID)
        after = (float(state["after"][0]), guid(state["after"][1], "continuation"))
    rows = sorted((h for h in hits if after is None or key(h) > after), key=key)
    page = rows[:max_count]
    cont = (
        continuation.encode(project.id, fingerprint, {"after": list(key(page[-1]))})
        if len(rows) > max_count
        else None
    )
    results = [
        {
            "width": im.width,
            "height": im.height,
            **_uris(blobs, project.id, im.id),
            "domain": it.domain_id,
            **suggestion_json(project, it, s, chosen),
        }
        for im, s, chosen in page
    ]
    return {
        "token": {
            "tagIds": tag_ids,
            "threshold": threshold,
            "session": None,
            "continuation": cont,
            "maxCount": max_count,
            "sortBy": sort,
        },
        "results": results,
    }


def _uris(blobs: BlobStore, project_id: str, image_id: str) -> dict:
    original = blobs.url(layout.IMAGES, layout.image_original(project_id, image_id))
    return {
        "resizedImageUri": original,
        "originalImageUri": original,
        "thumbnailUri": blobs.url(layout.IMAGES, layout.image_thumbnail(project_id, image_id)),
    }


def query_suggested_image_count(
    repo: MetadataRepository,
    blobs: BlobStore,
    predictor: service.Predictor,
    project_id: str,
    iteration_id: str | None,
    body,
) -> dict[str, int]:
    """{tagId: how many untagged images have a suggestion for that tag at or above threshold}."""
    project = require_project(repo, project_id)
    it = completed_iteration(repo, project, iteration_id)
    tag_ids, _, hits = _untagged(repo, blobs, predictor, project, it, lower_keys(body, "TagFilter", INVALID))
    counts = dict.fromkeys(tag_ids, 0)
    for _, _, chosen in hits:
        for tag_id in {p["tagId"] for p in chosen}:
            counts[tag_id] += 1
    return counts
