"""cvcore.metrics: Custom Vision's iteration performance from out-of-fold scores, at any threshold."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from cvcore import metrics

LABELS = [
    {"index": 0, "tag_id": "t-cat", "name": "cat", "type": "Regular"},
    {"index": 1, "tag_id": "t-dog", "name": "dog", "type": "Regular"},
    {"index": 2, "tag_id": "t-neg", "name": "Negative", "type": "Negative"},
]


def _evaluation():
    images = [
        # fold 0
        {"key": "a", "fold": 0, "truth": [0], "scores": [0.9, 0.1, 0.0]},
        {"key": "b", "fold": 0, "truth": [0], "scores": [0.4, 0.6, 0.0]},
        {"key": "c", "fold": 0, "truth": [1], "scores": [0.2, 0.7, 0.1]},
        # fold 1
        {"key": "d", "fold": 1, "truth": [1], "scores": [0.3, 0.65, 0.05]},
        {"key": "e", "fold": 1, "truth": [0], "scores": [0.8, 0.2, 0.0]},
        {"key": "f", "fold": 1, "truth": [2], "scores": [0.55, 0.1, 0.35]},  # a Negative image
    ]
    return {
        "task": "classification",
        "classification_type": "Multiclass",
        "labels": LABELS,
        "folds": 2,
        "images": images,
    }


def _tag(perf, name):
    return next(t for t in perf["perTagPerformance"] if t["name"] == name)


def test_performance_at_half():
    perf = metrics.classification_performance(_evaluation(), 0.5)
    assert [t["name"] for t in perf["perTagPerformance"]] == ["cat", "dog"]  # Negative is not a tag row
    cat, dog = _tag(perf, "cat"), _tag(perf, "dog")
    # cat predicted for a, e, f (f is a Negative image): TP 2 of 3; recall 2 of 3 cats
    assert cat["precision"] == pytest.approx(2 / 3) and cat["recall"] == pytest.approx(2 / 3)
    # per fold: fold 0 precision 1/1, recall 1/2; fold 1 precision 1/2, recall 1/1
    assert cat["precisionStdDeviation"] == pytest.approx(np.std([1.0, 0.5]))
    assert cat["recallStdDeviation"] == pytest.approx(np.std([0.5, 1.0]))
    # dog predicted for b, c, d: TP c, d
    assert dog["precision"] == pytest.approx(2 / 3) and dog["recall"] == pytest.approx(1.0)
    assert perf["precision"] == pytest.approx(4 / 6) and perf["recall"] == pytest.approx(4 / 5)
    assert perf["top1"] == pytest.approx(4 / 5)  # b is wrong; the Negative image is not counted
    assert perf["top5"] == pytest.approx(1.0)
    assert perf["folds"] == 2 and perf["imageCount"] == 6


def test_average_precision_is_the_area_under_the_pr_curve():
    perf = metrics.classification_performance(_evaluation(), 0.5)
    # cat scores sorted: a .9 (T), e .8 (T), f .55 (F), b .4 (T), d .3, c .2 -> precisions at hits 1, 1, 3/4
    assert _tag(perf, "cat")["averagePrecision"] == pytest.approx((1 + 1 + 0.75) / 3)
    # dog: c .7 (T), d .65 (T), b .6 (F) ... -> 1, 1
    assert _tag(perf, "dog")["averagePrecision"] == pytest.approx(1.0)
    assert perf["averagePrecision"] == pytest.approx(((1 + 1 + 0.75) / 3 + 1) / 2)
    # AP does not depend on the threshold
    assert (
        metrics.classification_performance(_evaluation(), 0.9)["averagePrecision"] == perf["averagePrecision"]
    )


def test_threshold_moves_precision_and_recall():
    high = metrics.classification_performance(_evaluation(), 0.85)
    cat = _tag(high, "cat")
    assert cat["precision"] == 1.0 and cat["recall"] == pytest.approx(1 / 3)
    nothing = metrics.classification_performance(_evaluation(), 0.99)
    assert nothing["precision"] == 0.0 and nothing["recall"] == 0.0


def test_image_performances():
    rows = metrics.image_performances(_evaluation(), 0.5)
    by_key = {r["key"]: r for r in rows}
    assert by_key["a"]["correct"] and by_key["a"]["predicted"] == ["t-cat"]
    assert not by_key["b"]["correct"] and by_key["b"]["predicted"] == ["t-dog"]
    assert not by_key["f"]["correct"]  # a Negative image for which "cat" was predicted
    assert by_key["a"]["predictions"][0] == {"tagId": "t-cat", "tagName": "cat", "probability": 0.9}
    assert [p["probability"] for p in by_key["d"]["predictions"]] == sorted(
        [p["probability"] for p in by_key["d"]["predictions"]], reverse=True
    )
    assert metrics.image_performances(_evaluation(), 0.6)[5]["correct"]  # f: nothing predicted is right


def test_confusion_matrix_and_curves():
    names, matrix = metrics.confusion_matrix(_evaluation())
    assert names == ["cat", "dog", "(none)"]
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    recall, precision, thresholds = metrics.pr_curve(np.array([0.9, 0.8, 0.3]), np.array([True, False, True]))
    assert recall.tolist() == [0.5, 0.5, 1.0] and precision.tolist() == [1.0, 0.5, 2 / 3]


def test_best_f1_threshold():
    scores = np.array([0.95, 0.9, 0.7, 0.4, 0.3, 0.1])
    truth = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    t = metrics.best_f1_threshold(scores, truth)
    assert 0.4 < t < 0.7
    assert metrics.best_f1_threshold(scores, np.zeros(6, bool)) == 0.5


def test_single_held_out_split_has_zero_std_and_mismatched_scores_fail():
    ev = _evaluation()
    for im in ev["images"]:
        im["fold"] = 0
    ev["folds"] = 1
    perf = metrics.classification_performance(ev, 0.5)
    assert perf["precisionStdDeviation"] == 0.0 and _tag(perf, "cat")["recallStdDeviation"] == 0.0
    ev["images"][0]["scores"] = [0.1]
    with pytest.raises(ValueError):
        metrics.classification_performance(ev, 0.5)


def test_fast_for_ten_thousand_images():
    rng = np.random.default_rng(0)
    labels = [{"index": i, "tag_id": f"t{i}", "name": f"n{i}", "type": "Regular"} for i in range(10)]
    scores = rng.dirichlet(np.ones(10), 10_000)
    images = [
        {
            "key": str(i),
            "fold": i % 5,
            "truth": [int(np.argmax(s)) if i % 3 else int(i % 10)],
            "scores": s.tolist(),
        }
        for i, s in enumerate(scores)
    ]
    ev = {"task": "classification", "labels": labels, "folds": 5, "images": images}
    t = time.perf_counter()
    perf = metrics.classification_performance(ev, 0.3)
    assert time.perf_counter() - t < 2.0
    assert 0.6 < perf["top1"] < 0.75
    t = time.perf_counter()
    assert len(metrics.image_performances(ev, 0.3)) == 10_000
    assert time.perf_counter() - t < 3.0


def test_metrics_does_not_import_torch():
    code = "import sys; import cvcore.metrics; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert out.stdout.strip() == "False"
