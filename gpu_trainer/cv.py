"""Folds and scores, shared by the recipes: the Problem (targets, Negative handling), stratified folds (or one
held-out split for large sets), probabilities from logits, and the CV scores a recipe is chosen by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cvcore import artifacts, metrics

from . import calibration
from .recipes import HELD_OUT_ABOVE, HELD_OUT_FRACTION, MAX_FOLDS

BANK_MAX = 512  # training embeddings kept in the graph for the "unlike anything seen" gate


@dataclass
class Problem:
    labels: list[artifacts.Label]
    multilabel: bool
    negative_index: int | None
    regular: list[int]  # label indices of the regular tags, in output order of the head
    y: np.ndarray  # multiclass: class per image (len(regular) = background); multilabel: [n, K] {0,1}
    truth: list[list[int]]  # label indices per image (empty = negative / none)
    background: bool  # multiclass with negative images: an extra softmax class

    @property
    def classes(self) -> int:
        return len(self.regular) + (1 if self.background else 0)

    @property
    def strata(self) -> np.ndarray:
        """A stratum per image for fold assignment (rarest tag for multilabel, K for none)."""
        k = len(self.regular)
        if not self.multilabel:
            return self.y.copy()
        counts = self.y.sum(axis=0)
        out = np.full(len(self.y), k)
        for i, row in enumerate(self.y):
            tags = np.flatnonzero(row)
            if len(tags):
                out[i] = tags[np.argmin(counts[tags])]
        return out

    def out_index(self) -> list[int]:
        """Exported column j -> index into [regular probabilities..., none]."""
        pos = {lab: r for r, lab in enumerate(self.regular)}
        return [pos.get(lab.index, len(self.regular)) for lab in self.labels]


def make_problem(examples, labels, multilabel: bool, negative_index: int | None) -> Problem:
    labels = sorted(labels, key=lambda lab: lab.index)
    if [lab.index for lab in labels] != list(range(len(labels))):
        raise ValueError("labels must be indexed 0..n-1")
    negatives = {lab.index for lab in labels if lab.type == "Negative"}
    if negative_index is not None:
        negatives.add(int(negative_index))
    regular = [lab.index for lab in labels if lab.index not in negatives]
    if not regular:
        raise ValueError("at least one regular (non-Negative) tag is needed")
    pos = {lab: r for r, lab in enumerate(regular)}
    truth = [sorted({int(t) for t in ex.labels if int(t) in pos}) for ex in examples]
    k = len(regular)
    if multilabel:
        y = np.zeros((len(examples), k), dtype=np.float32)
        for i, t in enumerate(truth):
            y[i, [pos[j] for j in t]] = 1
        background = False
    else:
        y = np.array([pos[t[0]] if t else k for t in truth], dtype=np.int64)
        background = bool((y == k).any())
    return Problem(labels, multilabel, negative_index, regular, y, truth, background)


def assign_folds(strata: np.ndarray, seed: int, groups: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Stratified folds: fold id per image and the fold count. k = min(5, the smallest stratum with at least
    two images), at least 2; above HELD_OUT_ABOVE images: fold 0 is a 20% held-out split (k=1) and the rest
    are -1 (training only). Images of one `groups` id (near duplicates) all take the fold of the group's
    first image, so a copy is never tested against its original."""
    folds, k = _stratified_folds(strata, seed)
    if groups is not None:
        first: dict[int, int] = {}
        for i, g in enumerate(groups):
            folds[i] = folds[first.setdefault(int(g), i)]
    return folds, k


def _stratified_folds(strata: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    n = len(strata)
    rng = np.random.default_rng(seed)
    folds = np.zeros(n, dtype=np.int64)
    if n > HELD_OUT_ABOVE:
        folds[:] = -1
        for s in np.unique(strata):
            idx = rng.permutation(np.flatnonzero(strata == s))
            folds[idx[: max(1, int(round(len(idx) * HELD_OUT_FRACTION)))] if len(idx) > 1 else []] = 0
        return folds, 1
    counts = np.bincount(strata)
    usable = counts[counts >= 2]
    k = int(min(MAX_FOLDS, usable.min() if len(usable) else 2))
    k = max(2, min(k, n))
    offset = 0
    for s in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == s))
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return folds, k


def fold_splits(folds: np.ndarray, k: int):
    for f in range(k):
        test = np.flatnonzero(folds == f)
        train = np.flatnonzero(folds != f)
        if len(test) and len(train):
            yield f, train, test


def softmax_rows(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid_rows(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def regular_probabilities(logits: np.ndarray, problem: Problem, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    if problem.multilabel:
        return sigmoid_rows(z)
    return softmax_rows(z)[:, : len(problem.regular)]


def cv_score(logits: np.ndarray, idx: np.ndarray, problem: Problem) -> float:
    """Higher is better. Multiclass: minus the out-of-fold log-loss after temperature calibration, a smooth
    criterion (on ~100 images accuracy differences between candidates are mostly noise; measured on
    Fashion-MNIST it picked the recipe that was best on held-out data far more often). Multilabel: macro AP."""
    if problem.multilabel:
        p = sigmoid_rows(logits)
        y = problem.y[idx]
        aps = [metrics.average_precision(p[:, j], y[:, j] > 0) for j in range(y.shape[1]) if y[:, j].any()]
        return float(np.mean(aps)) if aps else 0.0
    return float(np.mean(_log_likelihoods(logits, idx, problem)))


def _log_likelihoods(logits: np.ndarray, idx: np.ndarray, problem: Problem) -> np.ndarray:
    """Multiclass: each image's log-probability of its true class after temperature calibration."""
    y = problem.y[idx]
    t = calibration.fit_temperature(logits, y, False)
    p = softmax_rows(logits / t)
    return np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1))


def score_gain(
    a_logits: np.ndarray, b_logits: np.ndarray, idx: np.ndarray, problem: Problem
) -> tuple[float, float]:
    """(b's CV score minus a's on the images `idx`, the standard error of that difference). Multiclass: the
    images' paired log-likelihood differences, so the error shrinks with more images and with candidates that
    agree; multilabel (macro AP is not a mean over images): no error estimate, 0."""
    if problem.multilabel:
        return cv_score(b_logits, idx, problem) - cv_score(a_logits, idx, problem), 0.0
    d = _log_likelihoods(b_logits, idx, problem) - _log_likelihoods(a_logits, idx, problem)
    return float(d.mean()), (float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0)


def top1(logits: np.ndarray, idx: np.ndarray, problem: Problem) -> float:
    if problem.multilabel:
        y = problem.y[idx]
        return float(np.mean(y[np.arange(len(idx)), logits.argmax(axis=1)] > 0))
    return float(np.mean(logits.argmax(axis=1) == problem.y[idx]))


def feature_bank(z: np.ndarray, keep: np.ndarray, rng) -> np.ndarray:
    rows = np.flatnonzero(keep)
    if len(rows) > BANK_MAX:
        rows = np.sort(rng.choice(rows, BANK_MAX, replace=False))
    return calibration.l2_normalise(z[rows])


def has_regular(problem: Problem, idx: np.ndarray) -> np.ndarray:
    return problem.y[idx].sum(axis=1) > 0 if problem.multilabel else problem.y[idx] < len(problem.regular)


def fit_targets(problem: Problem, idx: np.ndarray):
    return problem.y[idx]
