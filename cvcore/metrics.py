"""Classification metrics from out-of-fold scores, at any probability threshold (numpy only, no torch).

The trainer stores an `evaluation` dict (evaluation.json) beside each iteration:

    {"task": "classification", "classification_type": "Multiclass" | "Multilabel",
     "labels": [{"index", "tag_id", "name", "type"}],         # the model's outputs, in order
     "folds": k,                                               # 1 = a held-out split
     "images": [{"key": imageId, "fold": f, "truth": [label index, ...], "scores": [p per label]}],
     ...}                                                      # the trainer may add more (recipe, thresholds)

`scores` are each image's probabilities from the model trained without that image's fold, so any threshold
can be re-evaluated later exactly as Custom Vision's get_iteration_performance does. A label of type
"Negative" ("none of the others") is left out of the per-tag figures; its images still count as false
positives when a regular tag is predicted for them.
"""

from __future__ import annotations

import math

import numpy as np

NEGATIVE = "Negative"


def _arrays(evaluation: dict):
    labels = evaluation.get("labels") or []
    images = evaluation.get("images") or []
    n, width = len(images), len(labels)
    scores = np.zeros((n, width), dtype=np.float64)
    truth = np.zeros((n, width), dtype=bool)
    folds = np.zeros(n, dtype=np.int64)
    for i, im in enumerate(images):
        row = im.get("scores") or []
        if len(row) != width:
            raise ValueError(f"images[{i}].scores has {len(row)} values for {width} labels")
        scores[i] = row
        for t in im.get("truth") or []:
            truth[i, int(t)] = True
        folds[i] = int(im.get("fold", 0))
    regular = np.array([lab.get("type", "Regular") != NEGATIVE for lab in labels], dtype=bool)
    return labels, images, scores, truth, folds, regular


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the precision-recall curve (non-interpolated: the mean precision at each positive's
    rank, ties broken pessimistically). 0 when there are no positives."""
    npos = int(positives.sum())
    if npos == 0:
        return 0.0
    order = np.lexsort((positives.astype(np.int8), -scores))  # by score desc; within ties, negatives first
    hits = positives[order]
    ranks = np.arange(1, len(hits) + 1)
    precision_at = np.cumsum(hits) / ranks
    return float(precision_at[hits].sum() / npos)


def pr_curve(scores: np.ndarray, positives: np.ndarray):
    """(recall, precision, thresholds) at every distinct score, highest threshold first."""
    order = np.argsort(-scores, kind="mergesort")
    s, hits = scores[order], positives[order].astype(np.float64)
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.array([], dtype=int)
    npos = max(hits.sum(), 1.0)
    return tp[last] / npos, tp[last] / np.maximum(tp[last] + fp[last], 1), s[last]


def _ratio(num, den):
    return float(num) / float(den) if den else 0.0


def _std(values: list[float]) -> float:
    return float(np.std(values)) if len(values) > 1 else 0.0


def _per_fold(pred: np.ndarray, truth: np.ndarray, folds: np.ndarray):
    """Per-fold precision and recall lists (a fold counts only where the figure is defined)."""
    precisions, recalls = [], []
    for f in np.unique(folds):
        m = folds == f
        p, t = pred[m], truth[m]
        tp, npred, npos = int((p & t).sum()), int(p.sum()), int(t.sum())
        if npred:
            precisions.append(tp / npred)
        if npos:
            recalls.append(tp / npos)
    return precisions, recalls


def classification_performance(evaluation: dict, threshold: float = 0.5) -> dict:
    """Custom Vision's IterationPerformance at this probability threshold, plus top1/top5."""
    threshold = float(threshold)
    labels, images, scores, truth, folds, regular = _arrays(evaluation)
    pred = scores >= threshold
    per_tag, aps = [], []
    for j, lab in enumerate(labels):
        if not regular[j]:
            continue
        p, t = pred[:, j], truth[:, j]
        precs, recs = _per_fold(p, t, folds)
        ap = average_precision(scores[:, j], t)
        if t.any():
            aps.append(ap)
        per_tag.append(
            {
                "id": lab.get("tag_id"),
                "name": lab.get("name"),
                "precision": _ratio((p & t).sum(), p.sum()),
                "precisionStdDeviation": _std(precs),
                "recall": _ratio((p & t).sum(), t.sum()),
                "recallStdDeviation": _std(recs),
                "averagePrecision": ap,
            }
        )
    rp, rt = pred[:, regular], truth[:, regular]
    precs, recs = _per_fold(rp.ravel(), rt.ravel(), np.repeat(folds, rp.shape[1]))
    top1, top5 = topk_accuracy(scores, truth, regular)
    return {
        "perTagPerformance": per_tag,
        "precision": _ratio((rp & rt).sum(), rp.sum()),
        "precisionStdDeviation": _std(precs),
        "recall": _ratio((rp & rt).sum(), rt.sum()),
        "recallStdDeviation": _std(recs),
        "averagePrecision": float(np.mean(aps)) if aps else 0.0,
        "threshold": threshold,
        "top1": top1,
        "top5": top5,
        "imageCount": len(images),
        "folds": int(evaluation.get("folds", len(np.unique(folds)) if len(folds) else 0)),
    }


def topk_accuracy(scores: np.ndarray, truth: np.ndarray, regular: np.ndarray) -> tuple[float, float]:
    """Share of images with at least one regular tag whose best (best five) regular score is a true tag."""
    s, t = scores[:, regular], truth[:, regular]
    has = t.any(axis=1)
    if not has.any() or s.shape[1] == 0:
        return 0.0, 0.0
    s, t = s[has], t[has]
    order = np.argsort(-s, axis=1, kind="mergesort")
    hit = np.take_along_axis(t, order, axis=1)
    return float(hit[:, :1].any(axis=1).mean()), float(hit[:, :5].any(axis=1).mean())


def image_performances(evaluation: dict, threshold: float = 0.5) -> list[dict]:
    """Per image: its truth, every label's out-of-fold probability (highest first), the regular tags at or
    above the threshold, and whether that set is exactly the truth."""
    labels, images, scores, truth, folds, regular = _arrays(evaluation)
    threshold = float(threshold)
    out = []
    order = np.argsort(-scores, axis=1, kind="mergesort")
    for i, im in enumerate(images):
        predicted = [j for j in order[i] if regular[j] and scores[i, j] >= threshold]
        truth_set = {int(t) for t in im.get("truth") or []}
        out.append(
            {
                "key": im.get("key"),
                "fold": int(folds[i]),
                "truth": [
                    {"tagId": labels[t]["tag_id"], "tagName": labels[t]["name"]} for t in sorted(truth_set)
                ],
                "predictions": [
                    {
                        "tagId": labels[j]["tag_id"],
                        "tagName": labels[j]["name"],
                        "probability": float(scores[i, j]),
                    }
                    for j in order[i]
                ],
                "predicted": [labels[j]["tag_id"] for j in predicted],
                "correct": set(int(j) for j in predicted) == {t for t in truth_set if regular[t]},
            }
        )
    return out


def confusion_matrix(evaluation: dict) -> tuple[list[str], np.ndarray]:
    """Multiclass-style confusion over argmax: rows = truth, columns = prediction. Images without a regular
    tag and the negative output share a last row/column "(none)" when there are any."""
    labels, images, scores, truth, folds, regular = _arrays(evaluation)
    idx = np.flatnonzero(regular)
    names = [labels[j]["name"] for j in idx]
    none = len(idx)
    neg_cols = np.flatnonzero(~regular)
    matrix = np.zeros((none + 1, none + 1), dtype=np.int64)
    for i in range(len(images)):
        t = [k for k, j in enumerate(idx) if truth[i, j]]
        row = t[0] if t else none
        s = scores[i, idx]
        col = int(np.argmax(s)) if len(s) else none
        if len(neg_cols) and scores[i, neg_cols].max() > (s.max() if len(s) else -1):
            col = none
        matrix[row, col] += 1
    if matrix[none].sum() == 0 and matrix[:, none].sum() == 0:
        return names, matrix[:none, :none]
    return names + ["(none)"], matrix


def best_f1_threshold(scores: np.ndarray, positives: np.ndarray, default: float = 0.5) -> float:
    """The probability threshold maximising F1 on these (out-of-fold) scores; `default` without positives.
    Picks the midpoint between the chosen score and the next lower one so it generalises a little."""
    positives = positives.astype(bool)
    if not positives.any() or positives.all():
        return default
    order = np.argsort(-scores, kind="mergesort")
    s, hits = scores[order], positives[order]
    tp = np.cumsum(hits)
    k = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (k + positives.sum())
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # only cut between distinct scores
    best = last[int(np.argmax(f1[last]))]
    lower = s[best + 1] if best + 1 < len(s) else 0.0
    value = (s[best] + lower) / 2
    return float(min(max(value, 1e-4), 0.9999)) if math.isfinite(value) else default
