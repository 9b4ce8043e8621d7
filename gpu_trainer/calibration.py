"""Probability calibration on out-of-fold predictions.

- `fit_temperature`: one temperature T for logits/T minimising the out-of-fold log-loss (softmax or sigmoid).
- `thresholds`: per tag, the probability threshold maximising F1 on out-of-fold probabilities.
- `fit_gate`: the "is this like anything I was trained on" gate. Each image's largest cosine similarity to
  the training images (in the head's standardised feature space) is compared with how similar held-out
  training images were to the other folds; far below that range every regular tag is scaled towards 0, so a
  shoe shown to a grape-vs-banana model scores low for both.
"""

from __future__ import annotations

import math

import numpy as np

from cvcore.metrics import best_f1_threshold

T_MIN, T_MAX = 0.3, 10.0  # a narrower range: tiny, separable sets must not give 0/1 probabilities


def _nll(logits: np.ndarray, targets: np.ndarray, multilabel: bool, t: float) -> float:
    z = logits / t
    if multilabel:  # targets: {0,1} [N, K]
        return float(np.mean(np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z)))))
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(targets)), targets]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, multilabel: bool) -> float:
    """Temperature minimising the log-loss of logits/T (golden-section search on log T). targets: class
    indices [N] (softmax) or a {0,1} matrix [N, K] (sigmoid). 1.0 when there is nothing to fit."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0 or not np.isfinite(logits).all():
        return 1.0
    targets = np.asarray(targets)
    a, b = math.log(T_MIN), math.log(T_MAX)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = _nll(logits, targets, multilabel, math.exp(c)), _nll(logits, targets, multilabel, math.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = _nll(logits, targets, multilabel, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = _nll(logits, targets, multilabel, math.exp(d))
    t = math.exp((a + b) / 2)
    # keep T=1 unless calibration clearly helps (tiny sets: do not trust a noisy optimum)
    if _nll(logits, targets, multilabel, t) > _nll(logits, targets, multilabel, 1.0) - 1e-6:
        return 1.0
    return float(t)


def thresholds(probabilities: np.ndarray, truth: np.ndarray, default: float = 0.5) -> list[float]:
    """Per column, the F1-maximising threshold on out-of-fold probabilities (`default` without positives)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    return [
        best_f1_threshold(probabilities[:, j], truth[:, j], default) for j in range(probabilities.shape[1])
    ]


def max_similarity(queries: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Largest cosine similarity of each (already L2-normalised) query row to the bank rows."""
    if len(bank) == 0:
        return np.ones(len(queries), dtype=np.float64)
    out = np.empty(len(queries), dtype=np.float64)
    for s in range(0, len(queries), chunk):
        out[s : s + chunk] = (queries[s : s + chunk] @ bank.T).max(axis=1)
    return out


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


GATE_CAP = 0.3  # in the standardised pooled-feature space: unrelated photos sit near 0.1-0.3, related above


def fit_gate(oof_similarity: np.ndarray) -> tuple[float, float]:
    """(centre, width) of the gate sigmoid((s - centre) / width), from the held-out similarities of known
    images: the centre sits a little below their 2% quantile, but never above GATE_CAP (near-duplicate
    training images would otherwise make every new view of a tag look unfamiliar)."""
    s = np.asarray(oof_similarity, dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) < 4:
        return -1.0, 0.05  # nothing to go on: effectively no gate
    spread = float(np.quantile(s, 0.5) - np.quantile(s, 0.1))
    centre = min(float(np.quantile(s, 0.02)) - 0.25 * spread, GATE_CAP)
    width = float(np.clip(spread / 6.0, 0.02, 0.05))
    return centre, width


def gate(similarity: np.ndarray, centre: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(np.asarray(similarity, dtype=np.float64) - centre) / width))
