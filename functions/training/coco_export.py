"""A project's dataset, or the one an iteration was trained on, as a COCO file.

    GET /projects/{id}/coco?iterationId=&boxes=pixels|normalized

`boxes=pixels` (the default) is standard COCO: bbox [x, y, width, height] in pixels of the upright image,
`area` in square pixels, `iscrowd` 0, loadable by pycocotools. `boxes=normalized` gives Custom Vision's
(and Image Analysis 4.0's) [left, top, width, height] in 0..1, with `info.bbox_format` "normalized_ltwh".
Each image carries `absolute_url` and `coco_url`: a read URL (time-limited) of the stored image, so the
file can be dropped into another project of this deployment as is (cvcore.coco accepts URLs inside the
storage account). A classification annotation has no bbox: it tags its image. Without iterationId the
export holds every image of the project, untagged ones without annotations; with it, the frozen dataset
of that iteration (cvcore.manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvcore import layout, manifest
from cvcore.errors import BadRequest

from ..domain.ports import BlobStore, MetadataRepository
from ..domain.records import ImageRecord, Project, Tag, iso
from .iterations import require_iteration
from .projects import require_project
from .serialize import project_json

PIXELS, NORMALIZED = "pixels", "normalized"


@dataclass
class Entry:
    """One image of an export and its annotations: (tag id, normalised box or None)."""

    image_id: str
    width: int
    height: int
    content_type: str
    metadata: dict
    annotations: list[tuple[str, tuple[float, float, float, float] | None]]


def export_coco(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    iteration_id: str | None = None,
    boxes: str | None = None,
) -> dict:
    project = require_project(repo, project_id)
    fmt = (boxes or PIXELS).lower()
    if fmt not in (PIXELS, NORMALIZED):
        raise BadRequest("BadRequestInvalid", f"boxes must be pixels or normalized, got {boxes!r}")
    if iteration_id:
        tags, entries = iteration_dataset(repo, blobs, project, iteration_id)
    else:
        tags = repo.list_tags(project.id)
        entries = current_dataset(project, repo.list_images(project.id), image_tags=False)
    return to_coco(project, tags, entries, blobs.url, fmt, {"iteration_id": iteration_id})


def current_dataset(project: Project, records: list[ImageRecord], image_tags: bool) -> list[Entry]:
    """Every image with its tags (classification) or regions (detection; plus explicit tags if `image_tags`)."""
    out = []
    for im in sorted(records, key=lambda r: (r.created, r.id)):
        anns: list[tuple[str, tuple[float, float, float, float] | None]] = [
            (r.tag_id, (r.left, r.top, r.width, r.height)) for r in im.regions
        ]
        if not project.is_detection or image_tags:
            anns += [(t, None) for t in im.tags]
        out.append(Entry(im.id, im.width, im.height, im.content_type, dict(im.metadata), anns))
    return out


def iteration_dataset(
    repo: MetadataRepository, blobs: BlobStore, project: Project, iteration_id: str
) -> tuple[list[Tag], list[Entry]]:
    it = require_iteration(repo, project, iteration_id)
    m = manifest.loads(blobs.get(layout.MODELS, layout.iteration_dataset(project.id, it.id)))
    records = repo.get_images(project.id, [im["image_id"] for im in m.images])
    tag_of = {c["id"]: c["tag_id"] for c in m.categories}
    tags = [Tag(c["tag_id"], c["name"], "", c.get("type", "Regular"), it.created) for c in m.categories]
    anns: dict[int, list] = {}
    for a in m.annotations:
        anns.setdefault(a["image_id"], []).append(
            (tag_of[a["category_id"]], tuple(a["bbox"]) if a.get("bbox") else None)
        )
    entries = [
        Entry(
            im["image_id"],
            im["width"],
            im["height"],
            records[im["image_id"]].content_type if im["image_id"] in records else "image/jpeg",
            {},
            anns.get(im["id"], []),
        )
        for im in m.images
    ]
    return tags, entries


def to_coco(project: Project, tags: list[Tag], entries: list[Entry], url_for, boxes: str, info: dict) -> dict:
    """The COCO document. Category ids follow the tags' order, image ids the entries' order, from 1."""
    cat_of = {t.id: k for k, t in enumerate(tags, start=1)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, e in enumerate(entries, start=1):
        url = url_for(layout.IMAGES, layout.image_original(project.id, e.image_id))
        image: dict[str, Any] = {
            "id": n,
            "file_name": e.image_id + (".png" if e.content_type == "image/png" else ".jpg"),
            "width": e.width,
            "height": e.height,
            "absolute_url": url,
            "coco_url": url,
            "custom_vision_image_id": e.image_id,
        }
        if e.metadata:
            image["metadata"] = e.metadata
        images.append(image)
        for tag_id, box in e.annotations:
            if tag_id not in cat_of:
                continue
            ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": n, "category_id": cat_of[tag_id]}
            if box is not None:
                scale = (e.width, e.height, e.width, e.height) if boxes == PIXELS else (1, 1, 1, 1)
                bbox = [round(v * s, 6) for v, s in zip(box, scale, strict=True)]
                ann.update(bbox=bbox, area=round(bbox[2] * bbox[3], 6), iscrowd=0)
            annotations.append(ann)
    categories = [
        {
            "id": cat_of[t.id],
            "name": t.name,
            "supercategory": "",
            "type": t.type,
            "description": t.description,
            "custom_vision_tag_id": t.id,
        }
        for t in tags
    ]
    head = {
        "description": f"Custom Vision project {project.name}",
        "version": "1.0",
        "date_created": iso(project.last_modified),
        "project_id": project.id,
        "task": "detection" if project.is_detection else "classification",
        "bbox_format": "pixels" if boxes == PIXELS else "normalized_ltwh",
        "custom_vision": {"project": project_json(project)},
        **{k: v for k, v in info.items() if v},
    }
    return {
        "info": head,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
