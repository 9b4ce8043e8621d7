"""POST /computervision/imageanalysis:analyze?model-name={model}&api-version=...: a trained model on one image,
sent as bytes (octet-stream, image/*, multipart) or named by JSON {"url": ...} (fetched with the prediction
route's SSRF guards), through the prediction route's lazy ONNX cache and post-processing. Nothing is stored.

api-version 2023-02-01-preview and 2023-04-01-preview answer

    {"modelVersion": model name, "metadata": {"width", "height"},
     "customModelResult": {"tagsResult": {"values": [{"name", "confidence"}]},            (a classifier)
                           "objectsResult": {"values": [{"boundingBox": {"x", "y", "w", "h"},   (a detector)
                                                         "tags": [{"name", "confidence"}]}]}}}

with boxes in pixels of the upright image, most confident first, every tag (classifier) or every detection
up to 200 (detector). 2022-10-12-preview answers its documented shape: {"kind": "imageAnalysisResult",
"metadata", "customModelResult": {"classifications": [{"confidence", "label"}], "objects", "imageMetadata"}}.
"""

from __future__ import annotations

from cvcore.imaging import MAX_PREDICTION_IMAGE_BYTES, ImageError, decode_rgb

from ..prediction import service
from ..prediction.predict import predict_image
from ..web.http import ApiRequest
from ..web.images import image_bytes, image_url
from . import errors, evaluate, model_resources
from .ports import VisionServices

LEGACY_VERSION = "2022-10-12-preview"


def _box(box: dict, width: int, height: int) -> dict:
    x, y = round(box["left"] * width), round(box["top"] * height)
    return {
        "x": x,
        "y": y,
        "w": max(1, min(width - x, round(box["width"] * width))),
        "h": max(1, min(height - y, round(box["height"] * height))),
    }


def result(found: list[dict], width: int, height: int, model_name: str, version: str | None) -> dict:
    """Predictions (Custom Vision's shape, normalised boxes) -> the Image Analysis result."""
    found = sorted(found, key=lambda p: -p["probability"])
    tags = [
        {"name": p["tagName"], "confidence": p["probability"]} for p in found if p.get("boundingBox") is None
    ]
    objects = [
        {
            "boundingBox": _box(p["boundingBox"], width, height),
            "tags": [{"name": p["tagName"], "confidence": p["probability"]}],
        }
        for p in found
        if p.get("boundingBox") is not None
    ]
    metadata = {"width": width, "height": height}
    if version == LEGACY_VERSION:
        return {
            "kind": "imageAnalysisResult",
            "metadata": metadata,
            "customModelResult": {
                "classifications": [{"confidence": t["confidence"], "label": t["name"]} for t in tags],
                "objects": objects,
                "imageMetadata": metadata,
            },
        }
    return {
        "modelVersion": model_name,
        "metadata": metadata,
        "customModelResult": {"tagsResult": {"values": tags}, "objectsResult": {"values": objects}},
    }


def analyze(s: VisionServices, r: ApiRequest) -> dict:
    name = r.query("model-name")
    if not name:
        raise errors.bad_request(
            "Either 'features' or 'model-name' needs to be specified in the query "
            "parameter; this service answers custom models (model-name) only",
            "NotSupportedVisualFeature",
        )
    model = model_resources.require(s, name)
    state = model_resources.status(s.repo.get_iteration(model["projectId"], model["iterationId"]))[0]
    if state != "succeeded":
        raise errors.bad_request(
            f"model {name!r} is {state}; only a trained model can analyze", "ModelNotTrained"
        )
    if r.content_type == "application/json":
        data = service.fetch_image(image_url(r), s.url_allow_origins)
    else:
        data = image_bytes(r)
    if not data:
        raise errors.bad_request("The image size is not allowed to be zero", "InvalidImageSize")
    loaded = evaluate.load(s, model)
    try:
        image = decode_rgb(data, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
    except ImageError as exc:
        raise service.image_error(exc) from None
    return result(predict_image(loaded, image), image.width, image.height, name, r.query("api-version"))
