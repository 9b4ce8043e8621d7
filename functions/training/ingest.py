"""Turning uploaded bytes into training images: the one pipeline behind create_images_from_data,
_files, _urls and the upload blob trigger.

Each image is judged on its own and gets Custom Vision's status. Order of writes: blobs, then the row,
so a row never names a missing blob. Image ids are content addressed (layout.image_id_for), which makes
exact duplicates, re-sent batches and re-delivered blob drops land once.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import cast

from cvcore import layout
from cvcore.errors import BadRequest
from cvcore.imaging import CheckedImage, ImageError, check_image

from ..domain.ports import BlobStore, MetadataRepository
from ..domain.records import ImageRecord, Project, Region, Tag, utcnow
from . import serialize
from .images import check_region, tag_problem

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

    @property
    def image(self) -> ImageRecord:
        """The stored image of an OK or duplicate outcome; the other outcomes have none."""
        if self.record is None:
            raise ValueError(f"{self.source}: {self.status} names no stored image")
        return self.record


def parse_regions(raw_regions, path: str) -> list[tuple[str, float, float, float, float]]:
    if raw_regions is None:
        return []
    if not isinstance(raw_regions, list):
        raise BadRequest("BadRequestImageRegions", f"{path}: a list of regions is required")
    return [check_region(r, f"{path}[{j}]") for j, r in enumerate(raw_regions)]


def ingest(
    repo: MetadataRepository,
    blobs: BlobStore,
    pool: Executor,
    project: Project,
    candidates: list[Candidate],
    metadata: dict[str, str] | None = None,
    tags: dict[str, Tag] | None = None,
) -> list[Outcome]:
    """Hash first (ids are content addressed), find the duplicates in one lookup, then check and store
    each new image in one pooled task, and finally insert the rows of those that stored."""
    tags = {t.id: t for t in repo.list_tags(project.id)} if tags is None else tags
    outcomes: list[Outcome | None] = [Outcome(c.source, *c.error) if c.error else None for c in candidates]
    ids: list[str | None] = [None] * len(candidates)
    for i, cand in enumerate(candidates):
        if outcomes[i] is None:
            problem = _tag_and_region_problem(tags, cand)
            if problem:
                outcomes[i] = Outcome(cand.source, *problem)
            else:
                ids[i] = layout.image_id_for(project.id, hashlib.sha256(cand.data or b"").hexdigest())
    existing = repo.get_images(project.id, [i for i in ids if i]) if any(ids) else {}
    first_of: dict[str, int] = {}
    work: list[tuple[int, str]] = []  # (index, image id) of the images to check and store
    for i, image_id in enumerate(ids):
        if image_id is None or image_id in existing or image_id in first_of:
            continue  # nothing to do, already stored, or the same bytes again in this batch
        first_of[image_id] = i
        work.append((i, image_id))

    def check_and_store(item: tuple[int, str]) -> Outcome:
        i, image_id = item
        cand = candidates[i]
        try:
            image = check_image(cand.data or b"")
        except ImageError as exc:
            return Outcome(cand.source, str(exc.status), exc.message)
        record = ImageRecord(
            id=image_id,
            created=utcnow(),
            width=image.width,
            height=image.height,
            content_type=image.content_type,
            source=cand.origin,
            camera=image.camera,
            source_format=image.source_format,
            tags={t: utcnow() for t in dict.fromkeys(cand.tag_ids)},
            regions=[Region(layout.new_id(), *r, utcnow()) for r in cand.regions],
            metadata=dict(metadata or {}),
        )
        error = _store(blobs, project.id, record.id, image)
        return (
            Outcome(cand.source, "ErrorStorage", error) if error else Outcome(cand.source, OK, record=record)
        )

    done = pool.map(check_and_store, work) if len(work) > 1 else map(check_and_store, work)
    stored = {i: outcome for (i, _), outcome in zip(work, done, strict=True)}
    for i, outcome in stored.items():
        outcomes[i] = outcome
    new_records = [o.record for o in stored.values() if o.status == OK and o.record is not None]
    raced = repo.add_images(project.id, new_records) if new_records else set()
    if raced:  # another request stored the same bytes between our lookup and our insert
        existing.update(repo.get_images(project.id, raced))
    for i, image_id in enumerate(ids):
        if image_id is None:
            continue
        if image_id in existing:
            outcomes[i] = Outcome(candidates[i].source, DUPLICATE, record=existing[image_id])
        elif first_of[image_id] != i:
            first = stored[first_of[image_id]]
            outcomes[i] = (
                Outcome(candidates[i].source, DUPLICATE, record=first.record)
                if first.status == OK
                else Outcome(candidates[i].source, first.status, first.message)
            )
    # Every slot is filled by now: a candidate's own error or problem, a duplicate, or its check and store.
    return cast(list[Outcome], outcomes)


def _tag_and_region_problem(tags: dict[str, Tag], cand: Candidate) -> tuple[str, str] | None:
    problem = tag_problem(tags, list(cand.tag_ids) + [r[0] for r in cand.regions])
    if problem:
        return problem
    if len(cand.regions) > 300:
        return "ErrorRegionLimitExceed", f"an image has at most 300 regions, got {len(cand.regions)}"
    return None


def _store(blobs: BlobStore, project_id: str, image_id: str, image: CheckedImage) -> str | None:
    """Write original and thumbnail (idempotent: same id, same bytes); return an error message or None."""
    try:
        blobs.put(layout.IMAGES, layout.image_original(project_id, image_id), image.data, image.content_type)
        if image.thumbnail is not None:
            blobs.put(
                layout.IMAGES, layout.image_thumbnail(project_id, image_id), image.thumbnail, "image/jpeg"
            )
        return None
    except Exception as exc:
        return f"could not store the image: {type(exc).__name__}: {str(exc)[:200]}"


def summary(project: Project, outcomes: list[Outcome], tags: dict[str, Tag], url_for) -> dict:
    """ImageCreateSummary JSON."""
    images = []
    for out in outcomes:
        entry = {
            "sourceUrl": out.source,
            "status": out.status,
            "image": serialize.image_json(project.id, out.record, tags, url_for) if out.record else None,
        }
        if out.message:
            entry["message"] = out.message
        images.append(entry)
    return {"isBatchSuccessful": all(o.status in (OK, DUPLICATE) for o in outcomes), "images": images}
