"""An evaluation (the trainer's out-of-fold evaluation.json, or a run on a test dataset, same format; see
cvcore.metrics and cvcore.boxes) -> the Image Analysis ModelPerformance object (numpy only).

Classification: accuracyTop1, accuracyTop5, averagePrecision (mean over tags, cvcore.metrics), calibrationECE
(expected calibration error of the top-1 probability over 10 equal bins), and per tag `accuracy` (the share of
the tag's images whose top-1 tag it is) and `averagePrecision`.
Detection: meanAveragePrecision30/50/75 (COCO-style: 101-point interpolated precision, per tag, then the mean
over tags with boxes; the trainer's own figures come from pycocotools and are used when the evaluation has
them) and per tag `averagePrecision50` and `accuracy` (recall at IoU 0.5 for boxes scored 0.5 or more).
"""

from __future__ import annotations

import numpy as np

from cvcore import boxes, metrics

RECALL_POINTS = np.linspace(0.0, 1.0, 101)
OVERLAPS = {"map30": 0.3, "map50": 0.5, "map75": 0.75}
ECE_BINS = 10


def coco_average_precision(scores, hits, n_truth: int) -> float:
    """COCO's AP of one tag at one overlap: the precision envelope sampled at 101 recall points."""
    if n_truth <= 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(hits, dtype=bool)[order]
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    recall = tp / n_truth
    precision = np.maximum.accumulate((tp / np.maximum(tp + fp, 1))[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")  # the first rank reaching each recall point
    sampled = np.zeros_like(RECALL_POINTS)
    sampled[at < len(precision)] = precision[at[at < len(precision)]]
    return float(sampled.mean())


def _detection_aps(evaluation: dict, overlap: float) -> dict[int, float]:
    """AP per tag index (tags with at least one truth box) at this overlap."""
    out = {}
    for lab in evaluation.get("labels", []):
        scores, hits, _, n_truth = boxes.scored(evaluation.get("images", []), int(lab["index"]), overlap)
        if n_truth:
            out[int(lab["index"])] = coco_average_precision(scores, hits, n_truth)
    return out


def mean_average_precisions(evaluation: dict) -> dict[str, float]:
    maps = {}
    for key, overlap in OVERLAPS.items():
        aps = _detection_aps(evaluation, overlap)
        maps[key] = float(np.mean(list(aps.values()))) if aps else 0.0
    return maps


def detection(evaluation: dict) -> dict:
    maps = (
        {k: float(evaluation[k]) for k in OVERLAPS}
        if all(k in evaluation for k in OVERLAPS)
        else mean_average_precisions(evaluation)
    )
    aps = _detection_aps(evaluation, 0.5)
    at_half = boxes.detection_performance(evaluation, 0.5, 0.5)["perTagPerformance"]
    recall = {t["id"]: t["recall"] for t in at_half}
    tags = {
        lab["name"]: {
            "accuracy": recall.get(lab["tag_id"], 0.0),
            "averagePrecision50": aps.get(int(lab["index"]), 0.0),
        }
        for lab in evaluation.get("labels", [])
    }
    return {
        "meanAveragePrecision30": maps["map30"],
        "meanAveragePrecision50": maps["map50"],
        "meanAveragePrecision75": maps["map75"],
        "tagPerformance": tags,
    }


def classification(evaluation: dict) -> dict:
    perf = metrics.classification_performance(evaluation, 0.5)
    labels = evaluation.get("labels", [])
    regular = [j for j, lab in enumerate(labels) if lab.get("type", "Regular") != metrics.NEGATIVE]
    images = evaluation.get("images", [])
    scores = np.array([im["scores"] for im in images], dtype=np.float64).reshape(-1, len(labels))
    truths = [{int(t) for t in im.get("truth") or []} for im in images]
    best = [regular[int(np.argmax(row[regular]))] if regular else -1 for row in scores]
    tags = {}
    ap = {t["id"]: t["averagePrecision"] for t in perf["perTagPerformance"]}
    for j in regular:
        mine = [k for k, truth in enumerate(truths) if j in truth]
        tags[labels[j]["name"]] = {
            "accuracy": float(np.mean([best[k] == j for k in mine])) if mine else 0.0,
            "averagePrecision": ap.get(labels[j].get("tag_id"), 0.0),
        }
    return {
        "accuracyTop1": perf["top1"],
        "accuracyTop5": perf["top5"],
        "averagePrecision": perf["averagePrecision"],
        "calibrationECE": calibration_error(scores, truths, best),
        "tagPerformance": tags,
    }


def calibration_error(scores: np.ndarray, truths: list[set], best: list[int]) -> float:
    """Expected calibration error of the top-1 probability (ECE_BINS equal-width bins)."""
    if not len(best):
        return 0.0
    confidence = np.array([scores[k, j] if j >= 0 else 0.0 for k, j in enumerate(best)])
    correct = np.array([j in truth for j, truth in zip(best, truths, strict=True)], dtype=np.float64)
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    return float(
        sum(
            abs(correct[bins == b].mean() - confidence[bins == b].mean()) * np.sum(bins == b)
            for b in range(ECE_BINS)
            if np.any(bins == b)
        )
        / len(best)
    )


def model_performance(evaluation: dict) -> dict:
    return detection(evaluation) if evaluation.get("task") == "detection" else classification(evaluation)
