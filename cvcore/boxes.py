"""Box utilities shared by the trainer's evaluation and the prediction route (numpy only, no torch).

Boxes are Custom Vision's normalised [left, top, width, height] in 0..1 ("ltwh") unless a name says
otherwise ("xyxy": left, top, right, bottom).

The detection graph (cvcore/artifacts.py) already ends with peak extraction, top-K and a class-wise
suppression at the sidecar's `nms_iou`; `postprocess` applies the exact greedy class-wise NMS at the same
IoU after the graph (a no-op on the trainer's own graphs, a safeguard for any other), clips to the image
and drops padded rows. Evaluation and the prediction route both call it, so both see the same boxes.

`detection_performance` re-scores a trainer's `evaluation.json` (out-of-fold detections per image) at
any probability threshold and overlap (IoU) threshold, in Custom Vision's IterationPerformance shape.
"""

from __future__ import annotations

import numpy as np

# -- conversions --------------------------------------------------------------------------------------


def ltwh_to_xyxy(boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_ltwh(boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def clip01(boxes) -> np.ndarray:
    """ltwh boxes clipped to the unit square (a box wholly outside gets zero width or height)."""
    xyxy = np.clip(ltwh_to_xyxy(boxes), 0.0, 1.0)
    return xyxy_to_ltwh(xyxy)


def to_pixels(boxes, width: int, height: int) -> np.ndarray:
    """Normalised ltwh -> pixel ltwh (COCO's bbox) for an image of width x height."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b * np.array([width, height, width, height], dtype=np.float64)


def to_normalised(boxes, width: int, height: int) -> np.ndarray:
    """Pixel ltwh -> normalised ltwh."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b / np.array([width, height, width, height], dtype=np.float64)


def area(boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)


# -- overlap and suppression --------------------------------------------------------------------------


def iou(a, b) -> np.ndarray:
    """Pairwise IoU of ltwh boxes: [N, 4] x [M, 4] -> [N, M]."""
    a, b = ltwh_to_xyxy(a), ltwh_to_xyxy(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def nms(
    boxes, scores, labels=None, iou_threshold: float = 0.5, max_detections: int | None = None
) -> np.ndarray:
    """Greedy NMS, class-wise when `labels` is given: indices of the kept boxes, best score first.

    A box is dropped when a better-scored kept box of the same label overlaps it by more than
    `iou_threshold`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.zeros(len(scores), dtype=np.int64) if labels is None else np.asarray(labels).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0:
        return order.astype(np.int64)
    overlaps = iou(boxes, boxes)
    same = labels[:, None] == labels[None, :]
    suppressed = np.zeros(len(scores), dtype=bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        if max_detections is not None and len(keep) >= max_detections:
            break
        suppressed |= same[i] & (overlaps[i] > iou_threshold)
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    boxes, scores, labels, *, nms_iou: float = 0.5, min_score: float = 0.0, max_detections: int | None = None
) -> list[tuple[int, float, float, float, float, float]]:
    """One image's graph outputs ([K, 4] ltwh, [K], [K]) -> [(label, score, left, top, width, height)],
    best first: padded rows (score 0) and scores below `min_score` dropped, boxes clipped to 0..1
    (empty ones dropped), class-wise greedy NMS at `nms_iou`."""
    boxes = clip01(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    ok = (scores > 0) & (scores >= min_score) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & np.isfinite(scores)
    idx = np.flatnonzero(ok)
    keep = idx[nms(boxes[idx], scores[idx], labels[idx], nms_iou, max_detections)]
    return [
        (
            int(labels[i]),
            float(scores[i]),
            float(boxes[i, 0]),
            float(boxes[i, 1]),
            float(boxes[i, 2]),
            float(boxes[i, 3]),
        )
        for i in keep
    ]


# -- evaluation ---------------------------------------------------------------------------------------


def match(truth, detections, overlap: float) -> np.ndarray:
    """Greedy matching of one image's one-label detections (best score first) to its truth boxes:
    each truth box is taken by at most one detection with IoU >= overlap (the best-overlapping free
    one, as COCO does). Returns a bool per detection (in the given order): true positive or not."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 4)
    hit = np.zeros(len(detections), dtype=bool)
    if not len(truth) or not len(detections):
        return hit
    overlaps = iou(detections, truth)
    taken = np.zeros(len(truth), dtype=bool)
    for d in range(len(detections)):
        candidates = np.where(taken, -1.0, overlaps[d])
        g = int(np.argmax(candidates))
        if candidates[g] >= overlap:
            taken[g] = True
            hit[d] = True
    return hit


def scored(images: list[dict], label: int, overlap: float):
    """All detections of `label` over evaluation `images`: (scores, true-positive flags at `overlap`,
    index of the image) and the number of truth boxes. Matching is greedy by score within each image,
    so the flags of the detections above any threshold do not depend on the ones below it."""
    scores, hits, owners, n_truth = [], [], [], 0
    for k, im in enumerate(images):
        truth = [t[1:5] for t in im.get("truth", []) if int(t[0]) == label]
        dets = sorted((d for d in im.get("detections", []) if int(d[0]) == label), key=lambda d: -d[1])
        n_truth += len(truth)
        if dets:
            hits.append(match(truth, [d[2:6] for d in dets], overlap))
            scores.append(np.array([d[1] for d in dets], dtype=np.float64))
            owners.append(np.full(len(dets), k))
    if scores:
        return np.concatenate(scores), np.concatenate(hits), np.concatenate(owners), n_truth
    return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=int), n_truth


def average_precision(scores, hits, n_truth: int) -> float:
    """Area under the precision envelope over recall (all points, as Pascal VOC 2010+)."""
    if n_truth == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(hits, dtype=np.float64)[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(1 - hits)
    recall = np.concatenate([[0.0], tp / n_truth, [tp[-1] / n_truth if len(tp) else 0.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1e-12), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def pr_curve(images: list[dict], label: int, overlap: float = 0.5):
    """Precision-recall curve of one label over evaluation images (for report plots): (precision,
    recall, score thresholds), one point per detection from the best score down."""
    scores, hits, _, n_truth = scored(images, label, overlap)
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / n_truth if n_truth else np.zeros(len(order))
    return precision, recall, scores[order]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def detection_performance(evaluation: dict, threshold: float = 0.5, overlap: float = 0.3) -> dict:
    """Custom Vision's IterationPerformance for a detection evaluation at a probability threshold and an
    overlap threshold: per tag precision and recall (detections with score >= threshold, matched at
    IoU >= overlap) with their standard deviations across the evaluation's folds, average precision
    (independent of the threshold); overall precision and recall pooled over tags, overall average
    precision the mean over tags that have boxes; plus the evaluation's mAP@30/50/75 (pycocotools), the
    thresholds used, and the numbers of images and folds."""
    labels = sorted(evaluation.get("labels", []), key=lambda lab: int(lab["index"]))
    images = evaluation.get("images", [])
    folds = sorted({int(im.get("fold", 0)) for im in images})
    per_tag = []
    totals = {f: np.zeros(3) for f in [None, *folds]}  # tp, predicted, truth
    aps = []
    for lab in labels:
        index = int(lab["index"])
        scores, hits, owners, n_truth = scored(images, index, overlap)
        above = scores >= threshold
        tp, predicted = float(np.sum(hits & above)), float(np.sum(above))
        totals[None] += (tp, predicted, n_truth)
        fold_p, fold_r = [], []
        for f in folds:
            members = np.array([int(im.get("fold", 0)) == f for im in images], dtype=bool)
            mine = members[owners] if len(owners) else np.zeros(0, dtype=bool)
            f_truth = sum(
                1
                for im, m in zip(images, members, strict=True)
                if m
                for t in im.get("truth", [])
                if int(t[0]) == index
            )
            f_tp, f_pred = float(np.sum(hits & above & mine)), float(np.sum(above & mine))
            totals[f] += (f_tp, f_pred, f_truth)
            if f_pred > 0:
                fold_p.append(f_tp / f_pred)
            if f_truth > 0:
                fold_r.append(f_tp / f_truth)
        ap = average_precision(scores, hits, n_truth)
        if n_truth > 0:
            aps.append(ap)
        per_tag.append(
            {
                "id": lab["tag_id"],
                "name": lab["name"],
                "precision": _ratio(tp, predicted),
                "precisionStdDeviation": float(np.std(fold_p)) if len(fold_p) > 1 else 0.0,
                "recall": _ratio(tp, n_truth),
                "recallStdDeviation": float(np.std(fold_r)) if len(fold_r) > 1 else 0.0,
                "averagePrecision": ap,
            }
        )
    fold_p = [_ratio(t[0], t[1]) for f, t in totals.items() if f is not None and t[1] > 0]
    fold_r = [_ratio(t[0], t[2]) for f, t in totals.items() if f is not None and t[2] > 0]
    tp, predicted, n_truth = totals[None]
    return {
        "perTagPerformance": per_tag,
        "precision": _ratio(tp, predicted),
        "precisionStdDeviation": float(np.std(fold_p)) if len(fold_p) > 1 else 0.0,
        "recall": _ratio(tp, n_truth),
        "recallStdDeviation": float(np.std(fold_r)) if len(fold_r) > 1 else 0.0,
        "averagePrecision": float(np.mean(aps)) if aps else 0.0,
        "map30": float(evaluation.get("map30", 0.0)),
        "map50": float(evaluation.get("map50", 0.0)),
        "map75": float(evaluation.get("map75", 0.0)),
        "threshold": float(threshold),
        "overlapThreshold": float(overlap),
        "imageCount": len(images),
        "folds": int(evaluation.get("folds", len(folds))),
    }
