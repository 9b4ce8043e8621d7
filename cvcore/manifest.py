"""The frozen dataset of an iteration: a COCO file (`models/{project}/{iteration}/dataset.json`).

Boxes are Custom Vision's normalised [left, top, width, height] in 0..1; classification tags are
annotations without a bbox. `file_name` is the image's id: the trainer derives the blob path from it
through cvcore.layout, never from the file name as a path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

from . import coco, layout


class ManifestError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class Category(TypedDict):
    """A tag taking part: COCO category `id` (1..), the tag's `name`, `tag_id` (GUID) and `type`
    (Regular / Negative / GeneralProduct)."""

    id: int
    name: str
    tag_id: str
    type: str


class ImageEntry(TypedDict):
    """One image: COCO `id` (1..), `file_name` and `image_id` both the image's GUID (never a path), size as
    uploaded; `camera` (EXIF "Make Model") and `format` (the uploaded format) where known."""

    id: int
    file_name: str
    image_id: str
    width: int
    height: int
    camera: NotRequired[str]
    format: NotRequired[str]


class Annotation(TypedDict):
    """A tag on an image (classification) or a region (detection: `bbox`, normalised [l, t, w, h])."""

    id: int
    image_id: int
    category_id: int
    bbox: NotRequired[list[float]]


@dataclass
class Manifest:
    project_id: str
    iteration_id: str
    task: str  # classification / detection
    classification_type: str | None
    categories: list[Category]
    images: list[ImageEntry]
    annotations: list[Annotation]
    info: dict = field(default_factory=dict)

    @property
    def dataset_hash(self) -> str:
        return self.info.get("dataset_hash") or compute_hash(self.images, self.annotations, self.categories)

    def to_coco(self) -> dict:
        info = {
            **self.info,
            "project_id": self.project_id,
            "iteration_id": self.iteration_id,
            "task": self.task,
            "classification_type": self.classification_type,
            "bbox_format": "normalized_ltwh",
            "dataset_hash": self.dataset_hash,
        }
        return {
            "info": info,
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }

    def dumps(self) -> bytes:
        return json.dumps(self.to_coco(), separators=(",", ":")).encode()


def compute_hash(images: list[ImageEntry], annotations: list[Annotation], categories: list[Category]) -> str:
    """Identical for the same images, tags and boxes, whatever their order: 'nothing changed' detection."""
    by_image: dict[int, list] = {}
    cat_tag = {c["id"]: c["tag_id"] for c in categories}
    for a in annotations:
        by_image.setdefault(a["image_id"], []).append(
            (cat_tag[a["category_id"]], tuple(round(v, 6) for v in a.get("bbox") or ()))
        )
    rows = sorted((im["image_id"], tuple(sorted(by_image.get(im["id"], [])))) for im in images)
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def loads(data: bytes | str) -> Manifest:
    """Parse and check a frozen manifest with cvcore.coco's shared rules (references, normalised boxes)
    plus its own (GUID image ids, the info block)."""
    report = coco.Report()
    body = coco.parse_json(data, report)
    lists = (
        coco.require_lists(body, ("images", "annotations", "categories"), report)
        if not report.problems
        else {}
    )
    if isinstance(body, dict) and not isinstance(body.get("info"), dict):
        report.add("info", coco.MISSING_FIELD, "the info object is missing or of the wrong type")
    if report.problems:
        raise ManifestError([str(p) for p in report.problems])
    info = body["info"]
    for i, im in enumerate(lists["images"]):
        try:
            layout.guid(im.get("image_id") if isinstance(im, dict) else None, f"images[{i}].image_id")
        except ValueError as exc:
            report.add(f"images[{i}].image_id", coco.WRONG_TYPE, str(exc))
    coco.check_references(
        lists["annotations"],
        {im.get("id") for im in lists["images"] if isinstance(im, dict)},
        {c.get("id") for c in lists["categories"] if isinstance(c, dict)},
        report,
    )
    for i, a in enumerate(lists["annotations"]):
        problem = (
            coco.normalised_box_problem(a["bbox"])
            if isinstance(a, dict) and a.get("bbox") is not None
            else None
        )
        if problem:
            report.add(f"annotations[{i}].bbox", coco.BBOX_OUT_OF_RANGE, problem)
    if report.problems:
        raise ManifestError([str(p) for p in report.problems])
    try:
        return Manifest(
            project_id=layout.guid(info.get("project_id"), "info.project_id"),
            iteration_id=layout.guid(info.get("iteration_id"), "info.iteration_id"),
            task=info.get("task"),
            classification_type=info.get("classification_type"),
            categories=lists["categories"],
            images=lists["images"],
            annotations=lists["annotations"],
            info=info,
        )
    except ValueError as exc:
        raise ManifestError([str(exc)]) from None
