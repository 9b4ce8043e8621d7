"""One image through a loaded model -> Custom Vision's predictions, most probable first.

Decoding and normalisation are cvcore.imaging's, preprocessing is cvcore.artifacts.preprocess (the one
the trainer checked its export with), and detection post-processing is cvcore.boxes.postprocess (the one
the trainer evaluated with): what the API answers is what the evaluation measured.
"""

from __future__ import annotations

from cvcore import artifacts
from cvcore.boxes import postprocess
from cvcore.imaging import MAX_PREDICTION_IMAGE_BYTES, decode_rgb

from .models import LoadedModel

MAX_REGIONS = 200


def predict_image(model: LoadedModel, image) -> list[dict]:
    """Predictions for an RGB PIL image."""
    sidecar = model.sidecar
    batch = artifacts.preprocess([image], sidecar)
    labels = {lab.index: lab for lab in sidecar.labels}
    if sidecar.task == artifacts.DETECTION:
        boxes, scores, classes = model.session.run(["boxes", "scores", "labels"], {"image": batch})
        found = postprocess(boxes[0], scores[0], classes[0], nms_iou=sidecar.nms_iou,
                            max_detections=min(MAX_REGIONS, sidecar.max_detections))
        return [{"probability": score, "tagId": labels[label].tag_id, "tagName": labels[label].name,
                 "tagType": labels[label].type,
                 "boundingBox": {"left": left, "top": top, "width": width, "height": height}}
                for label, score, left, top, width, height in found]
    (probabilities,) = model.session.run(["probabilities"], {"image": batch})
    out = [{"probability": float(p), "tagId": labels[i].tag_id, "tagName": labels[i].name,
            "tagType": labels[i].type, "boundingBox": None} for i, p in enumerate(probabilities[0])]
    return sorted(out, key=lambda p: -p["probability"])


def predict_bytes(model: LoadedModel, data: bytes) -> list[dict]:
    """Predictions for uploaded bytes (checked like any image, up to the 4 MB prediction limit)."""
    return predict_image(model, decode_rgb(data, max_bytes=MAX_PREDICTION_IMAGE_BYTES))
