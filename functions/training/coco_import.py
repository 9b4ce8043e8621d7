"""Importing a validated COCO report into a project.

    report = coco.validate(data, resolver, rules_for(project))      # cvcore: structure, then every image
    result = import_report(repo, blobs, pool, project, report, resolver)   # tags, images, regions

All or nothing: nothing is written until the whole file (every image included) has passed, and the
project's own state (existing tags, images already there) has been checked against it (`plan`). The
write then goes through the same pipeline as an upload (ingest.ingest: images land exactly like uploaded
ones), a bounded batch at a time; ids are content addressed and tags of new names get deterministic ids,
so a write that fails half-way is completed by running it again, never doubled.

The blob drop that runs it, with its status blob, is coco_drop.py.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

from cvcore import coco, layout

from ..domain.ports import BlobStore, MetadataRepository
from ..domain.records import (
    DELETING,
    MULTICLASS,
    NEGATIVE,
    REGULAR,
    TAG_TYPES,
    ImageRecord,
    Project,
    Region,
    Tag,
    utcnow,
)
from .images import MAX_REGIONS_PER_IMAGE, check_metadata, tag_problem, update_images
from .ingest import DUPLICATE, OK, Candidate, ingest

log = logging.getLogger(__name__)
BATCH = 64  # images read, checked and stored together: bounds the bytes held at once (<= 64 x 6 MB)
READABLE_CONTAINERS = (layout.UPLOADS, layout.IMAGES)  # what absolute_url / coco_url may point into
MAX_TAGS_PER_PROJECT = 500


class ProjectGone(RuntimeError):
    """The project was deleted (or its background deletion began) while an import wrote to it: the import
    stops, and the caller removes what it wrote after the deletion's sweep (project_transfer.remove_remains)."""


def ensure_alive(repo: MetadataRepository, project_id: str) -> None:
    """Between import batches: raise ProjectGone once the project is gone or marked Deleting. The deletion
    sweeps blobs first and rows last, so an import that went on writing would leave orphans behind it."""
    project = repo.get_project(project_id)
    if project is None or project.status == DELETING:
        raise ProjectGone(f"project {project_id} was deleted during the import")


class ImportChanged(RuntimeError):
    """An image changed between validation and writing; the import must run again from the start."""


@dataclass
class ImportResult:
    outcome: str  # imported / duplicate / rejected / deleted (the project went during the import)
    detail: str = ""
    problems: list[coco.Problem] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def rules_for(project: Project, *, min_images_per_category: int = 2) -> coco.Rules:
    return coco.Rules(
        task=coco.DETECTION if project.is_detection else coco.CLASSIFICATION,
        multiclass=project.classification_type == MULTICLASS,
        min_images_per_category=min_images_per_category,
    )


def blob_resolver(blobs: BlobStore, folder: str, endpoint: str | None) -> coco.StorageResolver:
    """Images of a drop: file_name under `uploads/{folder}`, URLs inside this storage account."""

    def read(container: str, name: str, max_bytes: int) -> bytes:
        try:
            return blobs.get_capped(container, name, max_bytes)
        except Exception as exc:
            if isinstance(exc, LookupError) or getattr(exc, "status_code", None) == 404:
                raise FileNotFoundError(f"{container}/{name}") from None
            raise

    return coco.StorageResolver(read, layout.UPLOADS, folder, endpoint, READABLE_CONTAINERS)


# ---- plan: the file against the project's current state ------------------------------------------------
@dataclass
class Plan:
    tags: dict[str, Tag]  # every tag of the project once imported, by id
    new_tags: list[Tag]
    tag_of: dict[int, str]  # category id -> tag id
    entries: dict[str, list[coco.ImageEntry]]  # image id -> the file's entries with those bytes


def plan(repo: MetadataRepository, project: Project, report: coco.Report) -> Plan:
    """Map categories to tags (by name, without case; new ones created) and check what each image would
    become against what the project already holds. Problems go into `report`."""
    tags = {t.id: t for t in repo.list_tags(project.id)}
    by_name = {t.name.casefold(): t for t in tags.values()}
    new_tags, tag_of = [], {}
    for c in report.categories:
        tag = by_name.get(c.name.casefold())
        if tag is None:
            kind = {t.lower(): t for t in TAG_TYPES}.get(str(c.extra.get("type", REGULAR)).lower(), REGULAR)
            tag = Tag(
                id=layout.tag_id_for(project.id, c.name),
                name=c.name,
                type=kind,
                created=utcnow(),
                description=str(c.extra.get("description", "imported from a COCO file"))[:1024],
            )
            new_tags.append(tag)
            tags[tag.id] = tag
        tag_of[c.id] = tag.id
    if len(tags) > MAX_TAGS_PER_PROJECT:
        report.add(
            "categories",
            "TooManyTags",
            f"the project would have {len(tags)} tags; the limit is {MAX_TAGS_PER_PROJECT}",
        )
    entries: dict[str, list[coco.ImageEntry]] = {}
    for im in report.images:
        entries.setdefault(layout.image_id_for(project.id, _checked(im)[1]), []).append(im)
    existing = repo.get_images(project.id, list(entries))
    for image_id, group in entries.items():
        tag_ids, regions = _annotations(group, tag_of)
        before = existing.get(image_id)
        _check_image(report, project, tags, group[0], before, tag_ids, regions)
    return Plan(tags, new_tags, tag_of, entries)


def _checked(im: coco.ImageEntry) -> tuple[str, str]:
    """(ref, sha256) of an image of a validated report: coco.validate reports a missing ref and check_images
    fills the hash, so either missing means the report was not validated (a caller's bug)."""
    if im.ref is None or im.sha256 is None:
        raise ValueError(f"images[{im.index}] was not checked: import only a report coco.validate passed")
    return im.ref, im.sha256


_RegionSpec = tuple[str, float, float, float, float]  # (tag id, left, top, width, height)


def _annotations(group: list[coco.ImageEntry], tag_of: dict[int, str]) -> tuple[list[str], list[_RegionSpec]]:
    """(tag ids, regions) the file gives one image, merged over entries with the same bytes, repeats dropped."""
    tag_ids: list[str] = []
    regions: list[_RegionSpec] = []
    for im in group:
        for category_id, box in im.annotations:
            if category_id not in tag_of:
                continue
            if box is None:
                tag_ids.append(tag_of[category_id])
            elif not any(r[0] == tag_of[category_id] and _same(r[1:], box) for r in regions):
                regions.append((tag_of[category_id], *box))
    return list(dict.fromkeys(tag_ids)), regions


def _same(a, b, tolerance: float = 1e-6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def _check_image(
    report: coco.Report,
    project: Project,
    tags: dict[str, Tag],
    entry: coco.ImageEntry,
    before: ImageRecord | None,
    tag_ids: list[str],
    regions: list[tuple],
) -> None:
    path = f"images[{entry.index}]"
    union = set(tag_ids) | {r[0] for r in regions} | (before.tag_ids() if before else set())
    problem = tag_problem(tags, union)
    if problem:
        report.add(path, problem[0], problem[1])
    negative = sorted({tags[r[0]].name for r in regions if tags[r[0]].type == NEGATIVE})
    if negative:
        report.add(
            path,
            "NegativeTagRegion",
            f"{negative[0]!r} is the project's Negative tag; a region cannot carry it",
        )
    if project.classification_type == MULTICLASS and len(union) > 1:
        names = ", ".join(sorted(tags[t].name for t in union if t in tags))
        where = (
            "with the tags it already has in the project" if before else "over the entries with these bytes"
        )
        report.add(
            path,
            coco.MULTIPLE_CATEGORIES,
            f"{where} this image would have {names}; a Multiclass project allows one tag per image",
        )
    old = before.regions if before else []
    added = [
        r
        for r in regions
        if not any(o.tag_id == r[0] and _same((o.left, o.top, o.width, o.height), r[1:]) for o in old)
    ]
    if len(old) + len(added) > MAX_REGIONS_PER_IMAGE:
        report.add(
            path,
            coco.TOO_MANY_REGIONS,
            f"the image already has {len(old)} regions; with this file it would "
            f"have {len(old) + len(added)}, over {MAX_REGIONS_PER_IMAGE}",
        )
    if "metadata" in entry.extra:
        try:
            check_metadata(entry.extra["metadata"], f"{path}.metadata")
        except Exception as exc:
            report.add(f"{path}.metadata", "BadMetadata", getattr(exc, "message", str(exc)))


# ---- write -----------------------------------------------------------------------------------------------
def import_report(
    repo: MetadataRepository,
    blobs: BlobStore,
    pool: Executor,
    project: Project,
    report: coco.Report,
    resolver: coco.Resolver,
    progress=None,
    origin: str = "coco",
) -> ImportResult:
    """Write a report that passed `coco.validate`: plan it (problems -> rejected, nothing written), then
    tags, then images a batch at a time. Raises ImportChanged or a storage error to be run again."""
    started = time.monotonic()
    the_plan = plan(repo, project, report) if report.ok else None
    if the_plan is None or not report.ok:  # invalid, or the plan found problems with the project
        return ImportResult("rejected", f"{len(report.problems)} problems", report.problems, report.summary())
    for tag in the_plan.new_tags:
        repo.save_tag(project.id, tag)
    counts = {"created": 0, "merged": 0, "regions": 0}
    ids = list(the_plan.entries)
    for start in range(0, len(ids), BATCH):
        ensure_alive(repo, project.id)
        _write_batch(
            repo, blobs, pool, project, the_plan, ids[start : start + BATCH], resolver, report, origin, counts
        )
        if progress is not None:
            progress("importing", min(start + BATCH, len(ids)), len(ids))
    ensure_alive(repo, project.id)  # an "imported" result means the project outlived every write
    seconds = time.monotonic() - started
    summary = {
        **report.summary(),
        "imagesCreated": counts["created"],
        "imagesMerged": counts["merged"],
        "regionsCreated": counts["regions"],
        "tagsCreated": [t.name for t in the_plan.new_tags],
        "seconds": round(seconds, 3),
        "imagesPerSecond": round(len(ids) / seconds, 1) if seconds else None,
    }
    return ImportResult(
        "imported", f"{counts['created']} images created, {counts['merged']} merged", [], summary
    )


def _write_batch(
    repo,
    blobs,
    pool,
    project,
    the_plan: Plan,
    ids: list[str],
    resolver,
    report: coco.Report,
    origin: str,
    counts: dict,
) -> None:
    max_bytes = report.rules.max_image_bytes
    datas = list(pool.map(lambda i: resolver.read(_checked(the_plan.entries[i][0])[0], max_bytes), ids))
    wanted = {i: _annotations(the_plan.entries[i], the_plan.tag_of) for i in ids}
    by_metadata: dict[str, list[int]] = {}
    for k, image_id in enumerate(ids):
        meta = the_plan.entries[image_id][0].extra.get("metadata") or {}
        by_metadata.setdefault(json.dumps(meta, sort_keys=True), []).append(k)
    merges: dict[str, tuple] = {}
    for meta, ks in by_metadata.items():
        candidates = [
            Candidate(
                source=_checked(the_plan.entries[ids[k]][0])[0],
                data=datas[k],
                tag_ids=wanted[ids[k]][0],
                regions=wanted[ids[k]][1],
                origin=origin,
            )
            for k in ks
        ]
        outcomes = ingest(repo, blobs, pool, project, candidates, json.loads(meta), the_plan.tags)
        for k, out in zip(ks, outcomes, strict=True):
            if out.status not in (OK, DUPLICATE):
                raise (RuntimeError if out.status == "ErrorStorage" else ImportChanged)(
                    f"{out.source}: {out.status} {out.message} (it passed validation; run the import again)"
                )
            if out.image.id != ids[k]:
                raise ImportChanged(f"{out.source} changed since it was validated; run the import again")
            if out.status == OK:
                counts["created"] += 1
                counts["regions"] += len(out.image.regions)
            else:
                merges[ids[k]] = (*wanted[ids[k]], json.loads(meta))
    del datas
    if merges:
        counts["merged"] += len(merges)
        added = update_images(repo, project.id, merges, lambda im: _merge(im, *merges[im.id]), pool)
        counts["regions"] += sum(added.values())
        missing = set(merges) - set(added)
        if missing:
            raise ImportChanged(f"images {sorted(missing)[:3]} were deleted during the import; run it again")


def _merge(im: ImageRecord, tag_ids: list[str], regions: list[_RegionSpec], metadata: dict) -> int:
    """Add what the file says and the image lacks; return the number of regions added (truthy: save).
    An image with nothing to add still counts as merged (the result is never None)."""
    changed = False
    for tag_id in tag_ids:
        if tag_id not in im.tags:
            im.tags[tag_id] = utcnow()
            changed = True
    added = 0
    for tag_id, *box in regions:
        if not any(r.tag_id == tag_id and _same((r.left, r.top, r.width, r.height), box) for r in im.regions):
            left, top, width, height = box
            im.regions.append(Region(layout.new_id(), tag_id, left, top, width, height, utcnow()))
            added += 1
    if metadata and any(im.metadata.get(k) != v for k, v in metadata.items()):
        im.metadata = {**im.metadata, **metadata}
        changed = True
    return _Count(added, changed or added > 0)


class _Count(int):
    """An int (regions added) whose truth says whether the image changed (update_images saves on truthy)."""

    changed: bool

    def __new__(cls, value: int, changed: bool):
        obj = super().__new__(cls, value)
        obj.changed = changed
        return obj

    def __bool__(self) -> bool:
        return self.changed
