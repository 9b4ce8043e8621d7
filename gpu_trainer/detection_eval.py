"""The detector's evaluation, on out-of-fold detections: the folds (balanced by each image's first tag, or
one held-out split above HOLDOUT_ABOVE images), mAP@30/50/75 from pycocotools, the score calibration (Platt
scaling of the peak score, baked into the graph), the per-tag recommended thresholds (best F1 at IoU 0.5)
and evaluation.json with the sidecar's metrics (cvcore.boxes.detection_performance).
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from dataclasses import asdict

import numpy as np

from cvcore import artifacts
from cvcore import boxes as boxops

from .detection_model import TOP_K

HOLDOUT_ABOVE = 600  # more images than this: one held-out 20% instead of k folds


def assign_folds(examples, k: int, seed: int) -> np.ndarray:
    """k folds balanced by each image's first tag; above HOLDOUT_ABOVE images: -1 = train only,
    0..2 = the held-out 20% (spread over 3 pseudo-folds)."""
    rng = random.Random(f"folds:{seed}")
    order = sorted(
        range(len(examples)),
        key=lambda i: (examples[i].boxes[0][0] if examples[i].boxes else -1, rng.random()),
    )
    folds = np.empty(len(examples), dtype=np.int64)
    if len(examples) > HOLDOUT_ABOVE:
        for pos, i in enumerate(order):
            folds[i] = (pos // 5) % 3 if pos % 5 == 0 else -1
        return folds
    for pos, i in enumerate(order):
        folds[i] = pos % k
    return folds


def coco_maps(images: list[dict], num_labels: int) -> dict[str, float]:
    """mAP@30/50/75 with pycocotools (boxes converted to COCO pixel ltwh), over labels that have boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = [{"id": c + 1, "name": str(c)} for c in range(num_labels)]
    gt = {"images": [], "annotations": [], "categories": categories}
    dets = []
    for n, im in enumerate(images, start=1):
        w, h = im["width"], im["height"]
        gt["images"].append({"id": n, "width": w, "height": h})
        for label, *box in im["truth"]:
            px = boxops.to_pixels(box, w, h)[0].tolist()
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": n,
                    "category_id": int(label) + 1,
                    "bbox": px,
                    "area": px[2] * px[3],
                    "iscrowd": 0,
                }
            )
        for label, score, *box in im["detections"]:
            dets.append(
                {
                    "image_id": n,
                    "category_id": int(label) + 1,
                    "score": float(score),
                    "bbox": boxops.to_pixels(box, w, h)[0].tolist(),
                }
            )
    if not gt["annotations"] or not dets:
        return {"map30": 0.0, "map50": 0.0, "map75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = gt
        truth.createIndex()
        found = truth.loadRes(dets)
        ev = COCOeval(truth, found, "bbox")
        ev.params.iouThrs = np.array([0.3, 0.5, 0.75])
        ev.params.maxDets = [1, 10, TOP_K]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # [iou, recall, label] over all areas, max detections
    out = {}
    for t, name in enumerate(("map30", "map50", "map75")):
        p = precision[t]
        per_label = [p[:, c][p[:, c] > -1].mean() for c in range(p.shape[1]) if (p[:, c] > -1).any()]
        out[name] = float(np.mean(per_label)) if per_label else 0.0
    return out


def fit_calibration(images: list[dict], overlap: float = 0.5) -> tuple[float, float]:
    """Platt scaling of out-of-fold peak scores against 'this box is right' (label and IoU >= overlap):
    (a, b) with calibrated = sigmoid(a * logit(score) + b); identity when there is too little evidence."""
    xs: list[float] = []
    hit: list[bool] = []
    for im in images:
        for label in {int(d[0]) for d in im["detections"]}:
            dets = sorted((d for d in im["detections"] if int(d[0]) == label), key=lambda d: -d[1])
            truth = [t[1:5] for t in im["truth"] if int(t[0]) == label]
            hits = boxops.match(truth, [d[2:6] for d in dets], overlap)
            xs += [d[1] for d in dets]
            hit += hits.tolist()
    ys = np.asarray(hit, dtype=np.float64)
    if len(ys) < 20 or ys.sum() < 5 or (1 - ys).sum() < 5:
        return 1.0, 0.0
    x = np.clip(np.asarray(xs, dtype=np.float64), 1e-6, 1 - 1e-6)
    x = np.log(x) - np.log1p(-x)
    a, b = 1.0, 0.0
    for _ in range(50):  # Newton's method on the logistic log-likelihood, lightly regularised
        p = 1 / (1 + np.exp(-np.clip(a * x + b, -30, 30)))
        g = np.array([np.sum((p - ys) * x) + 1e-3 * (a - 1), np.sum(p - ys) + 1e-3 * b])
        wgt = p * (1 - p)
        hess = np.array(
            [[np.sum(wgt * x * x) + 1e-3, np.sum(wgt * x)], [np.sum(wgt * x), np.sum(wgt) + 1e-3]]
        )
        step = np.linalg.solve(hess, g)
        step *= min(1.0, 2.0 / max(1e-12, float(np.abs(step).max())))  # damped: separable data diverge
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-6:
            break
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0.05:
        return 1.0, 0.0
    return float(min(a, 8.0)), float(np.clip(b, -10.0, 10.0))


def calibrate_score(score: float, ab: tuple[float, float]) -> float:
    """A peak score through the Platt scaling `ab` (fit_calibration), as the exported graph applies it."""
    s = min(max(score, 1e-6), 1 - 1e-6)
    return float(1 / (1 + math.exp(-(ab[0] * (math.log(s) - math.log1p(-s)) + ab[1]))))


def best_thresholds(
    images: list[dict], labels: list[artifacts.Label], overlap: float = 0.5
) -> dict[str, float]:
    """Per tag, the probability threshold (0.05 steps) with the best F1 on the out-of-fold detections."""
    out = {}
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    for lab in labels:
        scores, hits, _, n_truth = boxops.scored(images, lab.index, overlap)
        best, best_t = -1.0, 0.5
        for t in grid:
            above = scores >= t
            tp = int(np.sum(hits & above))
            f1 = 2 * tp / max(1, tp + int(above.sum()) + n_truth)
            if f1 > best + 1e-9:
                best, best_t = f1, float(t)
        out[lab.tag_id] = best_t
    return out


def out_of_fold_report(
    images: list[dict], labels: list[artifacts.Label], maps: dict, k: int, n_images: int
) -> tuple[dict, tuple[float, float], dict[str, float], dict]:
    """The out-of-fold detections, calibrated and reported as Custom Vision does: (evaluation.json, the score
    calibration fit on them, the per-tag recommended thresholds, the sidecar's metrics). The detections'
    scores in `images` are replaced by the calibrated ones."""
    calibration = fit_calibration(images)
    for im in images:
        im["detections"] = [[d[0], calibrate_score(d[1], calibration), *d[2:]] for d in im["detections"]]
    held_out = n_images > HOLDOUT_ABOVE
    evaluation = {
        "task": artifacts.DETECTION,
        "labels": [asdict(lab) for lab in labels],
        "folds": 3 if held_out else k,
        "overlap_for_calibration": 0.5,
        "validation": "held-out 20%" if held_out else "k-fold",
        "images": images,
        **maps,
    }
    performance = boxops.detection_performance(evaluation, 0.5, 0.3)
    metrics = {
        "precision": performance["precision"],
        "recall": performance["recall"],
        "averagePrecision": performance["averagePrecision"],
        **maps,
    }
    return evaluation, calibration, best_thresholds(images, labels) if images else {}, metrics
