"""cvcore.boxes: numpy-only box utilities and Custom Vision's detection performance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cvcore import boxes as B


def test_conversions_round_trip_and_pixels():
    ltwh = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]])
    xyxy = B.ltwh_to_xyxy(ltwh)
    assert np.allclose(xyxy[0], [0.1, 0.2, 0.4, 0.6])
    assert np.allclose(B.xyxy_to_ltwh(xyxy), ltwh)
    px = B.to_pixels(ltwh, 200, 100)
    assert np.allclose(px[0], [20, 20, 60, 40])
    assert np.allclose(B.to_normalised(px, 200, 100), ltwh)
    assert np.allclose(B.area(ltwh), [0.12, 1.0])


def test_clip01():
    clipped = B.clip01([[-0.2, 0.5, 0.5, 0.8], [1.2, 0.1, 0.2, 0.2]])
    assert np.allclose(clipped[0], [0.0, 0.5, 0.3, 0.5])
    assert clipped[1, 2] == 0.0  # wholly outside: empty


def test_iou():
    a = [[0.0, 0.0, 0.5, 0.5]]
    b = [[0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.5, 0.5], [0.6, 0.6, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]]
    got = B.iou(a, b)
    assert got.shape == (1, 4)
    assert np.allclose(got[0], [1.0, 1 / 3, 0.0, 0.0])
    assert np.allclose(B.iou(b, a)[:, 0], got[0])


def test_nms_is_class_wise_and_greedy():
    boxes = [[0.1, 0.1, 0.4, 0.4], [0.12, 0.1, 0.4, 0.4], [0.12, 0.1, 0.4, 0.4], [0.6, 0.6, 0.3, 0.3]]
    scores = [0.9, 0.8, 0.7, 0.6]
    labels = [0, 0, 1, 0]
    assert B.nms(boxes, scores, labels, 0.5).tolist() == [0, 2, 3]
    assert B.nms(boxes, scores, None, 0.5).tolist() == [0, 3]
    assert B.nms(boxes, scores, labels, 0.5, max_detections=2).tolist() == [0, 2]
    assert B.nms(boxes, scores, labels, 0.99).tolist() == [0, 1, 2, 3]
    assert B.nms(np.zeros((0, 4)), [], [], 0.5).tolist() == []


def test_postprocess_drops_padding_clips_and_sorts():
    boxes = np.array(
        [[0.5, 0.5, 0.7, 0.7], [0.1, 0.1, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2], [0, 0, 0, 0]], np.float32
    )
    scores = np.array([0.4, 0.9, 0.85, 0.0], np.float32)
    labels = np.array([2, 1, 1, 0])
    out = B.postprocess(boxes, scores, labels, nms_iou=0.5)
    assert [d[0] for d in out] == [1, 2]
    assert out[0][1] == pytest.approx(0.9)
    assert out[1][2:] == pytest.approx((0.5, 0.5, 0.5, 0.5))  # clipped to the image
    assert B.postprocess(boxes, scores, labels, nms_iou=0.5, min_score=0.5) == [out[0]]


def test_match_each_truth_once():
    truth = [[0.1, 0.1, 0.2, 0.2]]
    dets = [[0.1, 0.1, 0.2, 0.2], [0.11, 0.1, 0.2, 0.2], [0.6, 0.6, 0.2, 0.2]]
    assert B.match(truth, dets, 0.5).tolist() == [True, False, False]
    assert B.match([], dets, 0.5).tolist() == [False] * 3


def test_average_precision():
    assert B.average_precision([0.9, 0.8], [True, True], 2) == pytest.approx(1.0)
    # hit, miss, hit over 2 truths: precision envelope 1 up to recall .5, then 2/3 up to 1
    assert B.average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert B.average_precision([0.9], [True], 4) == pytest.approx(0.25)
    assert B.average_precision([], [], 0) == 0.0


def _evaluation():
    labels = [
        {"index": 0, "tag_id": "t0", "name": "cat", "type": "Regular"},
        {"index": 1, "tag_id": "t1", "name": "cup", "type": "Regular"},
    ]
    images = [
        {
            "key": "a",
            "fold": 0,
            "width": 100,
            "height": 100,
            "truth": [[0, 0.1, 0.1, 0.3, 0.3]],
            "detections": [[0, 0.9, 0.1, 0.1, 0.3, 0.3], [1, 0.6, 0.5, 0.5, 0.2, 0.2]],
        },  # hit, false cup
        {
            "key": "b",
            "fold": 1,
            "width": 100,
            "height": 100,
            "truth": [[0, 0.5, 0.5, 0.4, 0.4], [1, 0.0, 0.0, 0.2, 0.2]],
            # a hit below the threshold, a shifted cup
            "detections": [[0, 0.4, 0.52, 0.5, 0.4, 0.4], [1, 0.8, 0.05, 0.0, 0.2, 0.2]],
        },
    ]
    return {
        "task": "detection",
        "labels": labels,
        "folds": 2,
        "images": images,
        "map30": 0.7,
        "map50": 0.6,
        "map75": 0.5,
    }


def test_detection_performance_shape_and_values():
    perf = B.detection_performance(_evaluation(), threshold=0.5, overlap=0.3)
    assert set(perf) >= {
        "perTagPerformance",
        "precision",
        "precisionStdDeviation",
        "recall",
        "recallStdDeviation",
        "averagePrecision",
        "map30",
        "map50",
        "map75",
    }
    cat, cup = perf["perTagPerformance"]
    assert set(cat) == {
        "id",
        "name",
        "precision",
        "precisionStdDeviation",
        "recall",
        "recallStdDeviation",
        "averagePrecision",
    }
    assert (cat["id"], cat["name"]) == ("t0", "cat")
    assert cat["precision"] == 1.0 and cat["recall"] == 0.5  # the 0.4 detection is below the threshold
    assert cat["averagePrecision"] == pytest.approx(1.0)  # AP ignores the probability threshold
    assert cat["recallStdDeviation"] == pytest.approx(0.5)  # fold 0: 1.0, fold 1: 0.0
    # cup: IoU of the shifted box with its truth = 0.15/0.25 = 0.6 -> a hit at overlap 0.3; the other is false
    assert cup["precision"] == 0.5 and cup["recall"] == 1.0
    assert perf["precision"] == pytest.approx(2 / 3) and perf["recall"] == pytest.approx(2 / 3)
    assert perf["averagePrecision"] == pytest.approx((cat["averagePrecision"] + cup["averagePrecision"]) / 2)
    assert (perf["map30"], perf["map50"], perf["map75"]) == (0.7, 0.6, 0.5)
    assert (perf["threshold"], perf["overlapThreshold"], perf["imageCount"], perf["folds"]) == (
        0.5,
        0.3,
        2,
        2,
    )


def test_detection_performance_thresholds():
    ev = _evaluation()
    low = B.detection_performance(ev, threshold=0.3, overlap=0.3)
    assert low["perTagPerformance"][0]["recall"] == 1.0
    strict = B.detection_performance(ev, threshold=0.5, overlap=0.7)
    assert strict["perTagPerformance"][1]["recall"] == 0.0  # the shifted cup no longer counts
    none = B.detection_performance(ev, threshold=0.99, overlap=0.3)
    assert none["precision"] == 0.0 and none["recall"] == 0.0
    empty = B.detection_performance({"labels": ev["labels"], "images": []}, 0.5, 0.3)
    assert empty["perTagPerformance"][0]["averagePrecision"] == 0.0


def test_average_precision_agrees_with_pycocotools():
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    images, gt, dets = [], {"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}, []
    for n in range(40):
        truth = [[0, *rng.uniform(0, 0.5, 2), *rng.uniform(0.1, 0.5, 2)] for _ in range(rng.integers(1, 3))]
        found = [[0, float(rng.uniform(0.3, 1)), *(np.array(t[1:]) + rng.normal(0, 0.03, 4))] for t in truth]
        found += [[0, float(rng.uniform(0, 0.6)), *rng.uniform(0, 0.5, 2), *rng.uniform(0.1, 0.4, 2)]]
        images.append({"fold": 0, "truth": truth, "detections": found})
        gt["images"].append({"id": n + 1, "width": 100, "height": 100})
        for t in truth:
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": n + 1,
                    "category_id": 1,
                    "bbox": [v * 100 for v in t[1:]],
                    "area": t[3] * t[4] * 1e4,
                    "iscrowd": 0,
                }
            )
        dets += [
            {"image_id": n + 1, "category_id": 1, "score": d[1], "bbox": [v * 100 for v in d[2:]]}
            for d in found
        ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.evaluate()
        ev.accumulate()
    coco_ap = float(ev.eval["precision"][0, :, 0, 0, -1].mean())
    labels = [{"index": 0, "tag_id": "x", "name": "x"}]
    ours = B.detection_performance({"labels": labels, "images": images}, 0.5, 0.5)
    assert ours["averagePrecision"] == pytest.approx(coco_ap, abs=0.02)


def test_no_torch():
    code = "import sys, cvcore.boxes; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=str(root)).returncode == 0


def test_pr_curve():
    ev = _evaluation()
    precision, recall, thresholds = B.pr_curve(ev["images"], 0, 0.3)
    assert thresholds.tolist() == [0.9, 0.4]
    assert precision.tolist() == [1.0, 1.0] and recall.tolist() == [0.5, 1.0]
