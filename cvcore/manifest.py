"""The frozen dataset of an iteration: a COCO file (`models/{project}/{iteration}/dataset.json`).

Boxes are Custom Vision's normalised [left, top, width, height] in 0..1; classification tags are
annotations without a bbox. `file_name` is the image's id: the trainer derives the blob path from it
through cvcore.layout, never from the file name as a path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from . import layout


class ManifestError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Manifest:
    project_id: str
    iteration_id: str
    task: str  # classification / detection
    classification_type: str | None
    categories: list[dict]  # {id, name, tag_id, type}
    images: list[dict]  # {id, file_name (= image id), image_id, width, height}
    annotations: list[dict]  # {id, image_id, category_id, bbox?: [l, t, w, h] normalised}
    info: dict = field(default_factory=dict)

    @property
    def dataset_hash(self) -> str:
        return self.info.get("dataset_hash") or compute_hash(self.images, self.annotations, self.categories)

    def to_coco(self) -> dict:
        info = {**self.info, "project_id": self.project_id, "iteration_id": self.iteration_id, "task": self.task,
                "classification_type": self.classification_type, "bbox_format": "normalized_ltwh",
                "dataset_hash": self.dataset_hash}
        return {"info": info, "images": self.images, "annotations": self.annotations, "categories": self.categories}

    def dumps(self) -> bytes:
        return json.dumps(self.to_coco(), separators=(",", ":")).encode()


def compute_hash(images: list[dict], annotations: list[dict], categories: list[dict]) -> str:
    """Identical for the same images, tags and boxes, whatever their order: 'nothing changed' detection."""
    by_image: dict[int, list] = {}
    cat_tag = {c["id"]: c["tag_id"] for c in categories}
    for a in annotations:
        by_image.setdefault(a["image_id"], []).append(
            (cat_tag[a["category_id"]], tuple(round(v, 6) for v in a.get("bbox") or ())))
    rows = sorted((im["image_id"], tuple(sorted(by_image.get(im["id"], [])))) for im in images)
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def loads(data: bytes | str) -> Manifest:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError([f"not JSON: {exc}"]) from None
    problems = []
    if not isinstance(body, dict):
        raise ManifestError(["the manifest must be a JSON object"])
    for key in ("info", "images", "annotations", "categories"):
        if not isinstance(body.get(key), dict if key == "info" else list):
            problems.append(f"{key}: missing or of the wrong type")
    if problems:
        raise ManifestError(problems)
    info = body["info"]
    image_ids = {im.get("id") for im in body["images"]}
    category_ids = {c.get("id") for c in body["categories"]}
    for i, im in enumerate(body["images"]):
        try:
            layout.guid(im.get("image_id"), f"images[{i}].image_id")
        except ValueError as exc:
            problems.append(str(exc))
    for i, a in enumerate(body["annotations"]):
        if a.get("image_id") not in image_ids:
            problems.append(f"annotations[{i}].image_id: {a.get('image_id')!r} is not an image")
        if a.get("category_id") not in category_ids:
            problems.append(f"annotations[{i}].category_id: {a.get('category_id')!r} is not a category")
        box = a.get("bbox")
        if box is not None and (len(box) != 4 or not all(0 <= v <= 1 for v in box)
                                or box[0] + box[2] > 1 + 1e-6 or box[1] + box[3] > 1 + 1e-6):
            problems.append(f"annotations[{i}].bbox: {box!r} is not a normalised [left, top, width, height]")
    if problems:
        raise ManifestError(problems)
    try:
        return Manifest(project_id=layout.guid(info.get("project_id"), "info.project_id"),
                        iteration_id=layout.guid(info.get("iteration_id"), "info.iteration_id"),
                        task=info.get("task"), classification_type=info.get("classification_type"),
                        categories=body["categories"], images=body["images"], annotations=body["annotations"],
                        info=info)
    except ValueError as exc:
        raise ManifestError([str(exc)]) from None
