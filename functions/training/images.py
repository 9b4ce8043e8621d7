"""Image queries and edits: listing, counting, tags, regions, metadata, deletion.

Edits are read-modify-write on the image row with its ETag, retried on a concurrent change, so two
clients tagging the same image at once both land.

One file because the edits and the queries share the image rules (check_region, tag_problem, the metadata
limits) and the ETag read-modify-write (update_images) that coco_import, tags and uploads also call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor

from cvcore import coco, layout, manifest
from cvcore.errors import BadRequest, NotFound

from ..domain.ports import BlobStore, ConcurrencyError, MetadataRepository
from ..domain.records import NEGATIVE, ImageRecord, Project, Region, Tag, utcnow
from . import serialize
from .projects import require_project

MAX_TAKE = 256
MAX_REGIONS_PER_IMAGE = coco.MAX_REGIONS_PER_IMAGE
MAX_TAGS_PER_IMAGE = coco.MAX_TAGS_PER_IMAGE
MAX_METADATA_ENTRIES = 10
MAX_METADATA_KEY = 128
MAX_METADATA_VALUE = 256
_RETRIES = 5


# ---- rules shared with ingestion -------------------------------------------------------------------------
def check_region(raw, path: str) -> tuple[str, float, float, float, float]:
    """Validate one region object (tagId, left, top, width, height normalised to 0..1)."""
    if not isinstance(raw, dict):
        raise BadRequest("BadRequestImageRegions", f"{path}: a region must be an object")
    try:
        tag_id = layout.guid(raw.get("tagId"), f"{path}.tagId")
    except ValueError as exc:
        raise BadRequest("BadRequestImageRegions", str(exc)) from None
    for name in ("left", "top", "width", "height"):
        if not coco.is_number(raw.get(name)):
            raise BadRequest(
                "BadRequestImageRegions", f"{path}.{name}: a finite number is required, got {raw.get(name)!r}"
            )
    box = [float(raw[name]) for name in ("left", "top", "width", "height")]
    problem = coco.normalised_box_problem(box)  # the one region rule, shared with COCO and the manifest
    if problem:
        raise BadRequest("BadRequestImageRegions", f"{path}: {problem}")
    return (tag_id, *coco.clamp_box(box))


def tag_problem(tags: dict[str, Tag], tag_ids: Iterable[str]) -> tuple[str, str] | None:
    """Why this set of tags cannot go on one image, as (ImageCreateStatus, message), or None."""
    tag_ids = set(tag_ids)
    unknown = sorted(t for t in tag_ids if t not in tags)
    if unknown:
        return "ErrorInvalidTag", f"tag {unknown[0]} does not exist in this project"
    if len(tag_ids) > MAX_TAGS_PER_IMAGE:
        return "ErrorTagLimitExceed", f"an image has at most {MAX_TAGS_PER_IMAGE} tags, got {len(tag_ids)}"
    if any(tags[t].type == NEGATIVE for t in tag_ids) and len(tag_ids) > 1:
        return (
            "ErrorNegativeAndRegularTagOnSameImage",
            "the Negative tag cannot be on an image together with another tag",
        )
    return None


def update_images(
    repo: MetadataRepository,
    project_id: str,
    image_ids: Iterable[str],
    mutate: Callable[[ImageRecord], object],
    pool: Executor | None = None,
) -> dict:
    """Apply `mutate` to each existing image and save it when `mutate` returns truthy; ETag-checked and
    retried. Returns {imageId: mutate's result} for the images that exist."""
    ids = list(dict.fromkeys(image_ids))
    current = repo.get_images(project_id, ids)
    results: dict = {}

    def one(image_id: str):
        image = current[image_id]
        for _ in range(_RETRIES):
            result = mutate(image)
            if not result:
                return image_id, result
            try:
                repo.update_image(project_id, image)
                return image_id, result
            except ConcurrencyError:
                fresh = repo.get_images(project_id, [image_id]).get(image_id)
                if fresh is None:
                    return image_id, None
                image = fresh
        raise BadRequest("Conflict", f"image {image_id} kept changing while it was being updated; try again")

    targets = [i for i in ids if i in current]
    mapped = pool.map(one, targets) if pool is not None and len(targets) > 1 else map(one, targets)
    for image_id, result in mapped:
        if result is not None:
            results[image_id] = result
    return results


# ---- queries ------------------------------------------------------------------------------------------
def _select(images: list[ImageRecord], tagging_status: str | None, tag_ids: list[str]) -> list[ImageRecord]:
    status = (tagging_status or "All").lower()
    if status not in ("all", "tagged", "untagged"):
        raise BadRequest(
            "BadRequestInvalid", f"taggingStatus must be All, Tagged or Untagged, got {tagging_status!r}"
        )
    if status == "tagged":
        images = [im for im in images if im.is_tagged]
    elif status == "untagged":
        images = [im for im in images if not im.is_tagged]
    if tag_ids:
        wanted = set(tag_ids)
        images = [im for im in images if im.tag_ids() & wanted]
    return images


def _order(images: list[ImageRecord], order_by: str | None) -> list[ImageRecord]:
    order = (order_by or "Newest").lower()
    if order not in ("newest", "oldest"):
        raise BadRequest("BadRequestInvalid", f"orderBy must be Newest or Oldest, got {order_by!r}")
    return sorted(images, key=lambda im: (im.created, im.id), reverse=order == "newest")


def _iteration_images(
    repo: MetadataRepository, blobs: BlobStore | None, project: Project, iteration_id: str | None
) -> set[str] | None:
    """The image ids an iteration was trained on (from its frozen manifest), or None for "now"."""
    if not iteration_id:
        return None
    from .iterations import require_iteration

    it = require_iteration(repo, project, iteration_id)
    if blobs is None:
        raise TypeError("an iteration's images are read from its manifest, so blobs must be given with it")
    data = blobs.get(layout.MODELS, layout.iteration_dataset(project.id, it.id))
    return {im["image_id"] for im in manifest.loads(data).images}


def _in_iteration(images: list[ImageRecord], ids: set[str] | None) -> list[ImageRecord]:
    return images if ids is None else [im for im in images if im.id in ids]


def query_images(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    *,
    tagging_status: str | None = None,
    tag_ids: Sequence[str] = (),
    order_by: str | None = None,
    take: int = 50,
    skip: int = 0,
    iteration_id: str | None = None,
) -> list[dict]:
    project = require_project(repo, project_id)
    ids = _iteration_images(repo, blobs, project, iteration_id)
    tags = {t.id: t for t in repo.list_tags(project.id)}
    selected = _order(
        _select(_in_iteration(repo.list_images(project.id), ids), tagging_status, list(tag_ids)), order_by
    )
    return [serialize.image_json(project.id, im, tags, blobs.url) for im in selected[skip : skip + take]]


def count_images(
    repo: MetadataRepository,
    project_id: str,
    *,
    tagging_status: str | None = None,
    tag_ids: Sequence[str] = (),
    iteration_id: str | None = None,
    blobs: BlobStore | None = None,
) -> int:
    project = require_project(repo, project_id)
    ids = _iteration_images(repo, blobs, project, iteration_id)
    status = (tagging_status or "All").lower()
    if ids is None and len(set(tag_ids)) <= 1 and status in ("all", "tagged", "untagged"):
        counts = repo.image_counts(project.id)  # kept as counters: no scan
        if tag_ids:
            return 0 if status == "untagged" else counts.per_tag.get(tag_ids[0], 0)
        return {"all": counts.images, "tagged": counts.tagged, "untagged": counts.untagged}[status]
    return len(_select(_in_iteration(repo.list_images(project.id), ids), tagging_status, list(tag_ids)))


def images_by_ids(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    image_ids: list[str],
    iteration_id: str | None = None,
) -> list[dict]:
    project = require_project(repo, project_id)
    ids = _iteration_images(repo, blobs, project, iteration_id)
    tags = {t.id: t for t in repo.list_tags(project.id)}
    found = repo.get_images(project.id, [i for i in image_ids if ids is None or i in ids])
    return [
        serialize.image_json(project.id, found[i], tags, blobs.url)
        for i in dict.fromkeys(image_ids)
        if i in found
    ]


def delete_images(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    image_ids: list[str],
    all_images: bool,
    pool: Executor,
) -> None:
    project = require_project(repo, project_id)
    if all_images:
        image_ids = [im.id for im in repo.list_images(project.id)]
    elif not image_ids:
        raise BadRequest("BadRequestImageBatch", "imageIds: name the images to delete, or set allImages=true")
    ids = list(repo.get_images(project.id, image_ids))
    repo.delete_images(project.id, ids)  # rows first: an image without its row is unreachable, not broken

    def drop(image_id):
        blobs.delete(layout.IMAGES, layout.image_original(project.id, image_id))
        blobs.delete(layout.IMAGES, layout.image_thumbnail(project.id, image_id))

    list(pool.map(drop, ids))


# ---- tags on images ---------------------------------------------------------------------------------------
def _entries(body, key: str, max_items: int) -> list:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise BadRequest("BadRequestInvalid", f"{key}: a list is required")
    entries = body[key]
    if len(entries) > max_items:
        raise BadRequest(
            "BadRequestExceededBatchSize", f"{key}: at most {max_items} entries, got {len(entries)}"
        )
    return entries


def _guid(raw: dict, key: str, path: str, code: str) -> str:
    try:
        return layout.guid(raw.get(key) if isinstance(raw, dict) else None, f"{path}.{key}")
    except ValueError as exc:
        raise BadRequest(code, str(exc)) from None


def create_image_tags(repo: MetadataRepository, project_id: str, body, pool: Executor) -> dict:
    project = require_project(repo, project_id)
    tags = {t.id: t for t in repo.list_tags(project.id)}
    pairs = []
    for i, raw in enumerate(_entries(body, "tags", 128)):
        image_id = _guid(raw, "imageId", f"tags[{i}]", "BadRequestImageTags")
        tag_id = _guid(raw, "tagId", f"tags[{i}]", "BadRequestImageTags")
        if tag_id not in tags:
            raise BadRequest(
                "BadRequestImageTags", f"tags[{i}].tagId: tag {tag_id} does not exist in this project"
            )
        pairs.append((image_id, tag_id))
    existing = repo.get_images(project.id, [p[0] for p in pairs])
    for i, (image_id, _) in enumerate(pairs):
        if image_id not in existing:
            raise NotFound(
                "NotFoundImage", f"tags[{i}].imageId: image {image_id} does not exist in this project"
            )
    wanted: dict[str, list[str]] = {}
    for image_id, tag_id in pairs:
        wanted.setdefault(image_id, []).append(tag_id)
    summary: dict[str, list[dict]] = {"created": [], "duplicated": [], "exceeded": []}

    def add(im: ImageRecord):
        outcome: dict[str, list[str]] = {"created": [], "duplicated": [], "exceeded": []}  # tag ids
        for tag_id in dict.fromkeys(wanted[im.id]):
            if tag_id in im.tags:
                outcome["duplicated"].append(tag_id)
                continue
            problem = tag_problem(tags, im.tag_ids() | {tag_id})
            if problem and problem[0] == "ErrorNegativeAndRegularTagOnSameImage":
                raise BadRequest(
                    "BadRequestNegativeAndRegularTagOnSameImage",
                    f"image {im.id}: the Negative tag cannot be combined with another tag",
                )
            if problem:
                outcome["exceeded"].append(tag_id)
                continue
            im.tags[tag_id] = utcnow()
            outcome["created"].append(tag_id)
        return outcome if outcome["created"] else _NoSave(outcome)

    results = update_images(repo, project.id, wanted, add, pool)
    for image_id, outcome in results.items():
        outcome = outcome.value if isinstance(outcome, _NoSave) else outcome
        for key in summary:
            summary[key] += [{"imageId": image_id, "tagId": t} for t in outcome[key]]
    return summary


class _NoSave:
    """A mutate() result that is falsy (nothing to save) but still carries a report."""

    def __init__(self, value):
        self.value = value

    def __bool__(self):
        return False


def delete_image_tags(
    repo: MetadataRepository,
    project_id: str,
    image_ids: list[str],
    tag_ids: list[str],
    pool: Executor,
) -> None:
    project = require_project(repo, project_id)
    if not image_ids or not tag_ids:
        raise BadRequest("BadRequestRequiredParamIsNull", "imageIds and tagIds are both required")
    drop = set(tag_ids)

    def untag(im: ImageRecord):
        before = (len(im.tags), len(im.regions))
        for t in drop:
            im.tags.pop(t, None)
        im.regions = [r for r in im.regions if r.tag_id not in drop]
        return before != (len(im.tags), len(im.regions))

    update_images(repo, project.id, image_ids, untag, pool)


# ---- regions ----------------------------------------------------------------------------------------------
def require_detection(project: Project, field: str) -> None:
    if not project.is_detection:
        raise BadRequest(
            "BadRequestImageRegions", f"{field}: regions are only accepted in object detection projects"
        )


def create_image_regions(repo: MetadataRepository, project_id: str, body, pool: Executor) -> dict:
    project = require_project(repo, project_id)
    require_detection(project, "regions")
    tags = {t.id: t for t in repo.list_tags(project.id)}
    wanted: dict[str, list[Region]] = {}
    for i, raw in enumerate(_entries(body, "regions", 64)):
        image_id = _guid(raw, "imageId", f"regions[{i}]", "BadRequestImageRegions")
        tag_id, left, top, width, height = check_region(raw, f"regions[{i}]")
        if tag_id not in tags:
            raise BadRequest("BadRequestImageRegions", f"regions[{i}].tagId: tag {tag_id} does not exist")
        if tags[tag_id].type == NEGATIVE:
            raise BadRequest(
                "BadRequestImageRegions", f"regions[{i}].tagId: a region cannot carry the Negative tag"
            )
        wanted.setdefault(image_id, []).append(
            Region(layout.new_id(), tag_id, left, top, width, height, utcnow())
        )
    existing = repo.get_images(project.id, wanted)
    missing = [i for i in wanted if i not in existing]
    if missing:
        raise NotFound("NotFoundImage", f"image {missing[0]} does not exist in this project")

    def add(im: ImageRecord):
        outcome: dict[str, list[Region]] = {"created": [], "duplicated": [], "exceeded": []}
        for region in wanted[im.id]:
            if any(r.same_box(region) for r in im.regions):
                outcome["duplicated"].append(region)
            elif len(im.regions) >= MAX_REGIONS_PER_IMAGE:
                outcome["exceeded"].append(region)
            else:
                region.created = utcnow()
                im.regions.append(region)
                outcome["created"].append(region)
        return outcome if outcome["created"] else _NoSave(outcome)

    summary: dict[str, list[dict]] = {"created": [], "duplicated": [], "exceeded": []}
    for image_id, outcome in update_images(repo, project.id, wanted, add, pool).items():
        outcome = outcome.value if isinstance(outcome, _NoSave) else outcome
        summary["created"] += [
            {"imageId": image_id, **serialize.region_json(r, tags)} for r in outcome["created"]
        ]
        for key in ("duplicated", "exceeded"):
            summary[key] += [
                {
                    "imageId": image_id,
                    "tagId": r.tag_id,
                    "left": r.left,
                    "top": r.top,
                    "width": r.width,
                    "height": r.height,
                }
                for r in outcome[key]
            ]
    return summary


def delete_image_regions(
    repo: MetadataRepository, project_id: str, region_ids: list[str], pool: Executor
) -> None:
    project = require_project(repo, project_id)
    if not region_ids:
        raise BadRequest("BadRequestRequiredParamIsNull", "regionIds is required")
    drop = set(region_ids)
    owners = [im.id for im in repo.list_images(project.id) if any(r.id in drop for r in im.regions)]

    def remove(im: ImageRecord):
        before = len(im.regions)
        im.regions = [r for r in im.regions if r.id not in drop]
        return len(im.regions) != before

    update_images(repo, project.id, owners, remove, pool)


# ---- metadata ---------------------------------------------------------------------------------------------
def check_metadata(metadata, path: str = "metadata") -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise BadRequest("BadRequestInvalid", f"{path}: an object of string keys and values is required")
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_METADATA_KEY:
            raise BadRequest(
                "BadRequestImageMetadataKey",
                f"{path}: key {str(key)[:40]!r} must be 1 to {MAX_METADATA_KEY} characters",
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise BadRequest(
                "BadRequestImageMetadataValue",
                f"{path}.{key}: value must be a string of at most {MAX_METADATA_VALUE} characters",
            )
        out[key] = value
    return out


def update_metadata(
    repo: MetadataRepository, project_id: str, image_ids: list[str], metadata, pool: Executor
) -> dict:
    project = require_project(repo, project_id)
    if not image_ids:
        raise BadRequest("BadRequestRequiredParamIsNull", "imageIds is required")
    metadata = check_metadata(metadata)

    def apply(im: ImageRecord):
        merged = {**im.metadata, **metadata}
        if len(merged) > MAX_METADATA_ENTRIES:
            return _NoSave(("ErrorLimitExceed", im.metadata))
        im.metadata = merged
        return ("OK", merged)

    results = update_images(repo, project.id, image_ids, apply, pool)
    entries = []
    for image_id in dict.fromkeys(image_ids):
        outcome = results.get(image_id)
        if outcome is None:
            entries.append({"imageId": image_id, "status": "ErrorImageNotFound", "metadata": None})
        else:
            status, meta = outcome.value if isinstance(outcome, _NoSave) else outcome
            entries.append({"imageId": image_id, "status": status, "metadata": meta})
    return {"isBatchSuccessful": all(e["status"] == "OK" for e in entries), "images": entries}
