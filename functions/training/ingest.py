"""Turning uploaded bytes into training images: the one pipeline behind create_images_from_data,
_files, _urls and the upload blob trigger.

Each image is judged on its own and gets Custom Vision's status. Order of writes: blobs, then the row,
so a row never names a missing blob. Image ids are content addressed (layout.image_id_for), which makes
exact duplicates, re-sent batches and re-delivered blob drops land once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cvcore import layout
from cvcore.errors import BadRequest
from cvcore.imaging import CheckedImage, ImageError, check_image

from . import serialize
from .images import check_region, tag_problem
from .model import ImageRecord, Project, Region, Tag, utcnow
from .ports import BlobStore, MetadataRepository

MAX_BATCH = 64
OK, DUPLICATE = "OK", "OKDuplicate"


@dataclass
class Candidate:
    """One image to ingest, before any check: bytes (or why there are none), tags and regions."""

    source: str
    data: bytes | None
    tag_ids: list[str] = field(default_factory=list)
    regions: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    error: tuple[str, str] | None = None  # (status, message) known before decoding, e.g. a failed download
    origin: str = "upload"


@dataclass
class Outcome:
    source: str
    status: str
    message: str = ""
    record: ImageRecord | None = None


def parse_regions(raw_regions, path: str) -> list[tuple[str, float, float, float, float]]:
    if raw_regions is None:
        return []
    if not isinstance(raw_regions, list):
        raise BadRequest("BadRequestImageRegions", f"{path}: a list of regions is required")
    return [check_region(r, f"{path}[{j}]") for j, r in enumerate(raw_regions)]


def ingest(repo: MetadataRepository, blobs: BlobStore, pool: ThreadPoolExecutor, project: Project,
           candidates: list[Candidate], metadata: dict[str, str] | None = None,
           tags: dict[str, Tag] | None = None) -> list[Outcome]:
    tags = {t.id: t for t in repo.list_tags(project.id)} if tags is None else tags
    checked = list(pool.map(_check, candidates)) if len(candidates) > 1 else [_check(c) for c in candidates]
    outcomes: list[Outcome] = []
    fresh: dict[str, tuple[int, CheckedImage, Candidate]] = {}
    for i, (cand, result) in enumerate(zip(candidates, checked)):
        if isinstance(result, Outcome):
            outcomes.append(result)
            continue
        problem = _tag_and_region_problem(tags, cand)
        if problem:
            outcomes.append(Outcome(cand.source, *problem))
            continue
        image_id = layout.image_id_for(project.id, result.sha256)
        outcomes.append(Outcome(cand.source, OK, record=ImageRecord(
            id=image_id, created=utcnow(), width=result.width, height=result.height,
            content_type=result.content_type, source=cand.origin,
            tags={t: utcnow() for t in dict.fromkeys(cand.tag_ids)},
            regions=[Region(layout.new_id(), *r, utcnow()) for r in cand.regions],
            metadata=dict(metadata or {}))))
        if image_id in fresh:
            outcomes[-1].status = DUPLICATE  # the same bytes twice in one batch
        else:
            fresh[image_id] = (i, result, cand)

    existing = repo.get_images(project.id, list(fresh)) if fresh else {}
    to_store = [(i, checked_image) for image_id, (i, checked_image, _) in fresh.items() if image_id not in existing]
    stored = dict(pool.map(lambda item: _store(blobs, project.id, outcomes[item[0]].record, item[1]), to_store))
    new_records = [outcomes[i].record for i, _ in to_store if stored[outcomes[i].record.id] is None]
    raced = repo.add_images(project.id, new_records) if new_records else set()
    if raced:
        existing.update(repo.get_images(project.id, raced))
    for out in outcomes:
        if out.record is None:
            continue
        image_id = out.record.id
        if image_id in existing:
            out.status, out.record = DUPLICATE, existing[image_id]
        elif stored.get(image_id):
            out.status, out.message, out.record = "ErrorStorage", stored[image_id], None
        elif out.status == DUPLICATE:
            first = next((o for o in outcomes if o.status == OK and o.record and o.record.id == image_id), None)
            if first is None:  # the first copy failed to store; so does this one
                out.status, out.message, out.record = "ErrorStorage", stored.get(image_id) or "", None
            else:
                out.record = first.record
    return outcomes


def _check(cand: Candidate) -> CheckedImage | Outcome:
    if cand.error:
        return Outcome(cand.source, *cand.error)
    try:
        return check_image(cand.data or b"")
    except ImageError as exc:
        return Outcome(cand.source, exc.status.value if hasattr(exc.status, "value") else str(exc.status),
                       exc.message)


def _tag_and_region_problem(tags: dict[str, Tag], cand: Candidate) -> tuple[str, str] | None:
    problem = tag_problem(tags, list(cand.tag_ids) + [r[0] for r in cand.regions])
    if problem:
        return problem
    if len(cand.regions) > 300:
        return "ErrorRegionLimitExceed", f"an image has at most 300 regions, got {len(cand.regions)}"
    return None


def _store(blobs: BlobStore, project_id: str, record: ImageRecord, image: CheckedImage) -> tuple[str, str | None]:
    """Write original and thumbnail; return (imageId, error message or None)."""
    try:
        blobs.put(layout.IMAGES, layout.image_original(project_id, record.id), image.data, image.content_type)
        if image.thumbnail is not None:
            blobs.put(layout.IMAGES, layout.image_thumbnail(project_id, record.id), image.thumbnail, "image/jpeg")
        return record.id, None
    except Exception as exc:  # noqa: BLE001 - any storage failure is this image's ErrorStorage, not the batch's
        return record.id, f"could not store the image: {type(exc).__name__}: {str(exc)[:200]}"


def summary(project: Project, outcomes: list[Outcome], tags: dict[str, Tag], url_for) -> dict:
    """ImageCreateSummary JSON."""
    images = []
    for out in outcomes:
        entry = {"sourceUrl": out.source, "status": out.status,
                 "image": serialize.image_json(project.id, out.record, tags, url_for) if out.record else None}
        if out.message:
            entry["message"] = out.message
        images.append(entry)
    return {"isBatchSuccessful": all(o.status in (OK, DUPLICATE) for o in outcomes), "images": images}
