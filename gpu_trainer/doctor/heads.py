"""The doctor's own small models, shared by its checks: a linear head on the frozen embeddings (as the
training's linear recipe fits it) and a closed-form linear discriminant on a few values (the shortcut views).
The trainer's modules are imported where used: the statistics and count checks need no torch.
"""

from __future__ import annotations

import numpy as np

from .evidence import Evidence


def fit_head(features, y, classes: int, c: float, multilabel: bool):
    from ..classifier_model import Standardiser
    from ..linear_head import fit_linear

    std = Standardiser.fit(features)
    head = fit_linear(std(features), y, multilabel=multilabel, classes=classes, c=c)
    return std, head


def head_probabilities(std, head, features, multilabel: bool) -> np.ndarray:
    from ..cv import sigmoid_rows, softmax_rows
    from ..linear_head import head_logits

    z = head_logits(std(features), head)
    return sigmoid_rows(z) if multilabel else softmax_rows(z)


def cv_predict(x: np.ndarray, y: np.ndarray, folds: np.ndarray, k: int) -> np.ndarray:
    """Out-of-fold class predictions of a shrunk linear discriminant (closed form) on the few values in `x`."""
    pred = np.full(len(y), -1)
    for f in range(k):
        test, train = folds == f, (folds != f)
        classes = np.unique(y[train])
        if not test.any() or len(classes) < 2:
            continue
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        xt = (x[train] - mu) / sd
        means = np.stack([xt[y[train] == c].mean(0) for c in classes])
        centred = xt - means[np.searchsorted(classes, y[train])]
        cov = centred.T @ centred / max(len(xt) - len(classes), 1)
        cov = 0.9 * cov + 0.1 * np.eye(len(cov)) * np.trace(cov) / len(cov)
        w = np.linalg.solve(cov, means.T)  # [d, classes]
        bias = -0.5 * np.sum(means.T * w, axis=0) + np.log(
            np.bincount(np.searchsorted(classes, y[train])) / len(xt)
        )
        pred[test] = classes[np.argmax(((x[test] - mu) / sd) @ w + bias, axis=1)]
    return pred


def linear_cv_top1(ev: Evidence, folds: np.ndarray) -> float | None:
    R = len(ev.regular_names)
    rows = np.flatnonzero((folds >= 0) & (ev.y < R))
    right = []
    for f in range(ev.k):
        test, train = rows[folds[rows] == f], rows[folds[rows] != f]
        if not len(test) or len(np.unique(ev.y[train])) < R:
            continue
        std, head = fit_head(ev.features[train], ev.y[train], R, ev.c, False)
        right.extend(head_probabilities(std, head, ev.features[test], False).argmax(1) == ev.y[test])
    return float(np.mean(right)) if right else None
