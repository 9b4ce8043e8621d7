"""Region proposals (POST images/{imageId}/regionproposals) through the Training API's HTTP function on
in-memory fakes: a trained detector's detections (tiny real ONNX models), proposals from the image alone
on composed scenes with exact boxes, and the refusals."""

import io

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from cvcore import boxes as boxops
from cvcore import layout
from functions.training import projects, proposals, tags
from tests.integration.api import Api
from tests.support import scenes
from tests.support.tiny_models import DETECTION_DOMAIN, add_iteration, published_project, tiny_detector
from tests.unit import test_prediction_api as prediction_api
from tests.unit.test_prediction_api import colour

api = Api()
s = prediction_api.s  # the fixture: services on in-memory fakes
RED = (250, 10, 10)
# the detector below: (box ltwh, label, logit per unit of red); boxes 0 and 1 (different tags) overlap
DETECTIONS = [((0.1, 0.1, 0.4, 0.4), 0, 2.2), ((0.12, 0.1, 0.4, 0.4), 1, 0.9), ((0.6, 0.5, 0.3, 0.4), 1, 0.4)]


def overlapping_detector() -> bytes:
    """tiny_detector's graph with other constants: the three DETECTIONS, scored sigmoid(logit * mean red
    of the normalised image)."""
    model = onnx.load_from_string(tiny_detector())
    values = {
        "b": np.array([[box for box, _, _ in DETECTIONS]], dtype=np.float32),
        "l": np.array([[label for _, label, _ in DETECTIONS]], dtype=np.int64),
        "w": np.array([[x for _, _, x in DETECTIONS], [0.0] * 3, [0.0] * 3], dtype=np.float32),
    }
    for i, init in enumerate(model.graph.initializer):
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    return model.SerializeToString()


def upload(p, data: bytes) -> str:
    got = api.ok(
        "POST", f"projects/{p}/images", body=data, headers={"Content-Type": "application/octet-stream"}
    )
    return got["images"][0]["image"]["id"]


def png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def propose(p, image_id):
    return api.call("POST", f"projects/{p}/images/{image_id}/regionproposals")


def detection_project(s) -> str:
    return projects.create_project(s.repo, f"det-{layout.new_id()[:8]}", None, DETECTION_DOMAIN, None, [])[
        "id"
    ]


def boxes_of(got) -> np.ndarray:
    return np.array(
        [[r["boundingBox"][k] for k in ("left", "top", "width", "height")] for r in got["proposals"]]
    )


def check_shape(got, p, image_id):
    assert got["projectId"] == p and got["imageId"] == image_id
    conf = [r["confidence"] for r in got["proposals"]]
    b = boxes_of(got)
    assert 0 < len(conf) <= proposals.MAX_PROPOSALS
    assert conf == sorted(conf, reverse=True) and all(0 <= c <= 1 for c in conf)
    assert (b >= 0).all() and (b[:, 2:] > 0).all()
    assert (b[:, 0] + b[:, 2] <= 1 + 1e-9).all() and (b[:, 1] + b[:, 3] <= 1 + 1e-9).all()


def test_image_alone_recalls_the_objects_of_composed_scenes(s):
    p = detection_project(s)
    hits, total = {20: 0, 50: 0}, 0
    for seed in range(6):
        scene = scenes.scene(500 + seed, size=(320, 240))
        image_id = upload(p, png(scene.image))
        status, got = propose(p, image_id)
        assert status == 200, got
        check_shape(got, p, image_id)
        overlap = boxops.iou([b[1:] for b in scene.boxes], boxes_of(got))
        for top in hits:
            hits[top] += int((overlap[:, :top].max(1) >= 0.5).sum())
        total += len(overlap)
        assert propose(p, image_id)[1] == got  # deterministic
    assert hits[20] >= 0.8 * total and hits[50] >= 0.9 * total, (hits, total)  # at IoU >= 0.5


def test_trained_detector_proposes_its_detections_class_agnostic_then_fills(s):
    p = detection_project(s)
    for name in ("red", "blue"):
        tags.create_tag(s.repo, p, name, None, None)
    add_iteration(s.repo, s.blobs, p, overlapping_detector())
    image_id = upload(p, colour(RED, size=(96, 64)))
    status, got = propose(p, image_id)
    assert status == 200, got
    check_shape(got, p, image_id)
    red = (RED[0] / 255 - 0.5) / 0.5
    expected = [(1 / (1 + np.exp(-logit * red)), box) for box, _, logit in (DETECTIONS[0], DETECTIONS[2])]
    first = got["proposals"][:2]
    for (conf, box), r in zip(
        expected, first, strict=True
    ):  # box 1 merged into box 0 (IoU >= 0.5, less probable)
        assert r["confidence"] == pytest.approx(conf, abs=1e-4)
        assert [r["boundingBox"][k] for k in ("left", "top", "width", "height")] == pytest.approx(
            box, abs=1e-6
        )
    rest = got["proposals"][2:]
    assert rest and all(r["confidence"] < expected[1][0] for r in rest)  # the image alone fills the rest
    overlap = boxops.iou(boxes_of(got)[2:], [box for _, box in expected])
    assert (overlap < 0.5).all()


def test_classification_project_gets_proposals_from_the_image_alone(s):
    p, _, _ = published_project(s.repo, s.blobs)  # a Completed classifier: not a detector, not used
    scene = scenes.scene(501, size=(320, 240))
    image_id = upload(p, png(scene.image))
    status, got = propose(p, image_id)
    assert status == 200
    check_shape(got, p, image_id)
    det = detection_project(s)
    assert boxes_of(got) == pytest.approx(boxes_of(propose(det, upload(det, png(scene.image)))[1]))


def test_refusals(s):
    p, other = detection_project(s), detection_project(s)
    elsewhere = upload(other, colour(RED))
    status, got = propose(layout.new_id(), elsewhere)
    assert (status, got["code"]) == (404, "NotFoundProject")
    for image_id in ("not-a-guid", layout.new_id(), elsewhere):
        status, got = propose(p, image_id)
        assert (status, got["code"]) == (404, "NotFoundImage") and "imageId" in got["message"]


def test_unreadable_stored_image_is_refused(s):
    p = detection_project(s)
    image_id = upload(p, colour(RED))
    s.blobs.put(layout.IMAGES, layout.image_original(p, image_id), b"not an image", "image/png")
    status, got = propose(p, image_id)
    assert (status, got["code"]) == (404, "NotFoundImage")
