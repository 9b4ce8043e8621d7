"""Image Analysis ModelPerformance from an evaluation: COCO-style mAP (checked against pycocotools, the trainer's
figures), top-1/top-5, per-tag accuracy and the calibration error."""

import random

import numpy as np
import pytest

from functions.vision import performance

LABELS = [
    {"index": 0, "tag_id": "t0", "name": "cat", "type": "Regular"},
    {"index": 1, "tag_id": "t1", "name": "cup", "type": "Regular"},
]


def test_coco_average_precision():
    assert performance.coco_average_precision([0.9, 0.8], [True, True], 2) == 1.0
    assert performance.coco_average_precision([], [], 3) == 0.0
    assert performance.coco_average_precision([0.9], [True], 0) == 0.0
    # one of two boxes found first, then a miss: precision 1 up to recall 0.5, nothing beyond
    assert performance.coco_average_precision([0.9, 0.5], [True, False], 2) == pytest.approx(51 / 101)


def _random_detection_evaluation(seed: int) -> dict:
    rng = random.Random(seed)
    images = []
    for k in range(12):
        truth = []
        for _ in range(rng.randint(1, 3)):
            left, top = rng.uniform(0, 0.6), rng.uniform(0, 0.6)
            truth.append([rng.randrange(2), left, top, rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.35)])
        detections = []
        for label, left, top, w, h in truth:
            if rng.random() < 0.8:
                jitter = rng.uniform(-0.08, 0.08)
                detections.append(
                    [
                        label if rng.random() < 0.9 else 1 - label,
                        rng.random(),
                        left + jitter,
                        top,
                        w,
                        h * rng.uniform(0.6, 1.1),
                    ]
                )
        detections += [
            [rng.randrange(2), rng.random() * 0.5, rng.uniform(0, 0.7), rng.uniform(0, 0.7), 0.2, 0.2]
            for _ in range(rng.randint(0, 2))
        ]
        images.append(
            {"key": str(k), "fold": 0, "width": 320, "height": 240, "truth": truth, "detections": detections}
        )
    return {"task": "detection", "labels": LABELS, "folds": 1, "images": images}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_map_matches_pycocotools(seed):
    pytest.importorskip("pycocotools")
    pytest.importorskip("torch")
    from gpu_trainer.detection import coco_maps

    evaluation = _random_detection_evaluation(seed)
    ours = performance.mean_average_precisions(evaluation)
    theirs = coco_maps(evaluation["images"], len(LABELS))
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert 0 < ours["map75"] <= ours["map50"] <= ours["map30"] < 1


def test_detection_performance_prefers_the_trainers_figures():
    evaluation = _random_detection_evaluation(4)
    computed = performance.detection(evaluation)
    assert computed["meanAveragePrecision50"] == performance.mean_average_precisions(evaluation)["map50"]
    assert set(computed["tagPerformance"]) == {"cat", "cup"}
    given = performance.detection({**evaluation, "map30": 0.7, "map50": 0.6, "map75": 0.5})
    assert (given["meanAveragePrecision30"], given["meanAveragePrecision75"]) == (0.7, 0.5)


def test_classification_performance():
    images = [
        {"key": "a", "truth": [0], "scores": [0.9, 0.1]},
        {"key": "b", "truth": [0], "scores": [0.4, 0.6]},
        {"key": "c", "truth": [1], "scores": [0.2, 0.8]},
        {"key": "d", "truth": [1], "scores": [0.3, 0.7]},
    ]
    perf = performance.classification(
        {
            "task": "classification",
            "classification_type": "Multiclass",
            "labels": LABELS,
            "folds": 1,
            "images": images,
        }
    )
    assert perf["accuracyTop1"] == 0.75 and perf["accuracyTop5"] == 1.0
    assert perf["tagPerformance"] == {
        "cat": {"accuracy": 0.5, "averagePrecision": 1.0},
        "cup": {"accuracy": 1.0, "averagePrecision": 1.0},
    }
    # top-1 confidences 0.9 (right), 0.6 (wrong), 0.8 (right), 0.7 (right): |1-.9| + |0-.6| + |1-.8| + |1-.7|
    assert perf["calibrationECE"] == pytest.approx((0.1 + 0.6 + 0.2 + 0.3) / 4)


def test_calibration_error_of_a_perfectly_calibrated_model_is_zero():
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert performance.calibration_error(scores, [{0}, {1}], [0, 1]) == 0.0
    assert performance.calibration_error(np.zeros((0, 2)), [], []) == 0.0
