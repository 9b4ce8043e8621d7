"""One image through an ONNX session -> Custom Vision's predictions, most probable first.

The one definition of "run the model on an image", used by the cloud prediction route (functions/prediction)
and by the edge container an export ships (cvcore/edge): preprocessing is cvcore.artifacts.preprocess (the
one the trainer checked its export with) and detection post-processing is cvcore.boxes.postprocess (the one
the trainer evaluated with), so the cloud, the edge and the evaluation agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import artifacts
from .boxes import postprocess
from .errors import BadRequest
from .imaging import MAX_PREDICTION_IMAGE_BYTES, ImageError, ImageStatus, decode_rgb
from .urlfetch import UrlFetchError, fetch

MAX_REGIONS = 200
# A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps it at least DRAFT_FACTOR times the
# network input on each side, then resized by preprocess as any image. At 2 this moves a probability less
# than re-saving the photo as a quality-80 JPEG does, and keeps the top tag (tests/trainer/test_export.py
# measures it against a full decode; at 1 the change was twice that of the re-save); a 12 MP phone photo
# decodes at 1/4 or 1/8 of the work.
DRAFT_FACTOR = 2


def open_session(model, threads: int):
    """An onnxruntime CPU session for a model (bytes or a path) as the prediction route runs it: `threads`
    intra-op threads, one inter-op, every graph optimisation, and idle pool threads that sleep instead of
    spinning (the host shares its cores with request handling and storage calls)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def host_cpus() -> int:
    """The CPUs this process may run on (a container's affinity, not the machine's count)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def decode(data: bytes, sidecar: artifacts.ModelSidecar):
    """A prediction request's image, upright RGB, checked as any image (up to the 4 MB prediction limit),
    decoded no larger than the model needs (DRAFT_FACTOR). Its size is not the upload's: read that from
    cvcore.imaging.check_image."""
    height, width = sidecar.input_size
    return decode_rgb(
        data, max_bytes=MAX_PREDICTION_IMAGE_BYTES, draft_size=(width * DRAFT_FACTOR, height * DRAFT_FACTOR)
    )


def predict(session, sidecar: artifacts.ModelSidecar, image) -> list[dict]:
    """Predictions for an RGB PIL image from an onnxruntime-like session (`run(names, feeds)`)."""
    batch = artifacts.preprocess([image], sidecar)
    labels = {lab.index: lab for lab in sidecar.labels}
    if sidecar.task == artifacts.DETECTION:
        boxes, scores, classes = session.run(["boxes", "scores", "labels"], {"image": batch})
        found = postprocess(
            boxes[0],
            scores[0],
            classes[0],
            nms_iou=sidecar.nms_iou,
            max_detections=min(MAX_REGIONS, sidecar.max_detections),
        )
        return [
            {
                "probability": score,
                "tagId": labels[label].tag_id,
                "tagName": labels[label].name,
                "tagType": labels[label].type,
                "boundingBox": {"left": left, "top": top, "width": width, "height": height},
            }
            for label, score, left, top, width, height in found
        ]
    (probabilities,) = session.run(["probabilities"], {"image": batch})
    out = [
        {
            "probability": float(p),
            "tagId": labels[i].tag_id,
            "tagName": labels[i].name,
            "tagType": labels[i].type,
            "boundingBox": None,
        }
        for i, p in enumerate(probabilities[0])
    ]
    return sorted(out, key=lambda p: -p["probability"])


URL_TIMEOUT_S = 10.0
_IMAGE_CODES = {
    ImageStatus.ERROR_IMAGE_SIZE: "BadRequestImageSizeBytes",
    ImageStatus.ERROR_IMAGE_DIMENSIONS: "BadRequestImageDimensions",
}


def image_error(exc: ImageError) -> BadRequest:
    """A refused prediction image as the Prediction API's error."""
    return BadRequest(_IMAGE_CODES.get(exc.status, "BadRequestImageFormat"), exc.message)


def fetch_image(url, allow_origins: Iterable[str] = ()) -> bytes:
    """The bytes at a client's URL, through the SSRF-safe fetcher, up to the prediction image limit."""
    if not isinstance(url, str) or not url.strip():
        raise BadRequest("BadRequestImageUrl", "url: a URL string is required")
    try:
        return fetch(
            url.strip(),
            max_bytes=MAX_PREDICTION_IMAGE_BYTES,
            timeout=URL_TIMEOUT_S,
            allow_origins=tuple(allow_origins),
        ).data
    except UrlFetchError as exc:
        code = "BadRequestImageSizeBytes" if exc.reason == "too-large" else "BadRequestImageUrl"
        raise BadRequest(code, f"url: {exc.message}") from None
