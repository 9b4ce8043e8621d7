"""Region proposals for a training image (POST /projects/{projectId}/images/{imageId}/regionproposals):
class-agnostic boxes around likely objects, to help a person label an object-detection image.

- With a trained detector (the project's newest Completed detection iteration): its detections on the
  stored image, through the prediction route's model cache and predict_image, class-agnostic: boxes of
  different tags that overlap by IoU >= 0.5 merge into the most probable one; confidence = probability;
  below scoring.REGION_FLOOR dropped. The slots left up to MAX_PROPOSALS are filled with proposals from the
  image alone that overlap no detection (IoU >= 0.5), their confidence scaled below the weakest detection,
  so objects the model was never taught still get boxes.
- Otherwise (no detector yet, a classification project, or a model that cannot be loaded): proposals from
  the image alone (proposal_search.py: numpy and Pillow, no model).

Boxes are normalised (0..1), best first. Refusals: NotFoundProject, NotFoundImage (not a GUID, not in
the project, or its stored bytes unreadable).
"""

from __future__ import annotations

import logging

import numpy as np

from cvcore import artifacts, layout
from cvcore import boxes as boxops
from cvcore.errors import NotFound

from ..domain.ports import BlobStore, MetadataRepository
from ..domain.records import Project
from ..prediction import scoring, service
from ..prediction.predict import predict_image
from ..prediction.published import Published
from .projects import require_project
from .proposal_search import SIDE, propose, scored_boxes
from .quicktest import latest_completed
from .smart_labeler import read_original

log = logging.getLogger(__name__)
MAX_PROPOSALS = 50
MERGE_IOU = 0.5
_ABOVE = float(np.nextafter(MERGE_IOU, 0.0))  # boxops.nms drops overlaps strictly above its threshold


def region_proposals(
    repo: MetadataRepository, blobs: BlobStore, predictor: service.Predictor, project_id: str, image_id: str
) -> dict:
    project = require_project(repo, project_id)
    image_id = _require_image(repo, project, image_id)
    detector = latest_completed(repo, project, artifacts.DETECTION)
    image = _decode(blobs, project.id, image_id, full=detector is not None)
    found: list[tuple[float, float, float, float, float]] = []
    if detector is not None:
        try:
            found = _detections(
                service.load_model(predictor.models, Published(project, detector, artifacts.DETECTION)), image
            )
        except NotFound as exc:  # the model cannot serve: the image alone still helps the labeller
            log.warning(
                "region proposals for project %s fall back to the image alone: %s", project.id, exc.message
            )
    if len(found) < MAX_PROPOSALS:
        found += _fill(found, propose(image, MAX_PROPOSALS))
    return {
        "projectId": project.id,
        "imageId": image_id,
        "proposals": [
            {"confidence": c, "boundingBox": {"left": x, "top": y, "width": w, "height": h}}
            for c, x, y, w, h in found[:MAX_PROPOSALS]
        ],
    }


def _require_image(repo: MetadataRepository, project: Project, image_id: str) -> str:
    checked: str | None  # None (and so "image None" below) when it is not a GUID
    try:
        checked = layout.guid(image_id, "imageId")
    except ValueError:
        checked = None
    if checked is None or checked not in repo.get_images(project.id, [checked]):
        raise NotFound("NotFoundImage", f"imageId: image {checked} does not exist in this project")
    return checked


def _decode(blobs: BlobStore, project_id: str, image_id: str, *, full: bool):
    """The stored original, upright; a JPEG decodes at a reduced scale when only the image-alone proposals
    need it."""
    image = read_original(blobs, project_id, image_id, draft_size=None if full else (SIDE, SIDE))
    if image is None:
        raise NotFound("NotFoundImage", f"imageId: image {image_id} cannot be read")
    return image


def _detections(model, image) -> list[tuple[float, float, float, float, float]]:
    """The detector's regions, class-agnostic: (confidence, left, top, width, height), best first."""
    regions = [p for p in predict_image(model, image) if p["probability"] >= scoring.REGION_FLOOR]
    if not regions:
        return []
    box = boxops.clip01([[p["boundingBox"][k] for k in ("left", "top", "width", "height")] for p in regions])
    score = np.array([p["probability"] for p in regions], dtype=np.float64)
    keep = boxops.nms(box, score, iou_threshold=_ABOVE, max_detections=MAX_PROPOSALS)
    return scored_boxes(score, box, keep)


def _fill(detections: list, generic: list) -> list:
    """Image-alone proposals that overlap no detection by IoU >= MERGE_IOU, ranked after every detection."""
    if not detections or not generic:
        return generic
    overlap = boxops.iou([g[1:] for g in generic], [d[1:] for d in detections]).max(1)
    weakest = min(d[0] for d in detections)
    return [
        (c * weakest * 0.999, *box) for (c, *box), o in zip(generic, overlap, strict=True) if o < MERGE_IOU
    ]
