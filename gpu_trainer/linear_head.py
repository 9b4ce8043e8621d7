"""The "linear" recipe: an L2-regularised logistic head (softmax or sigmoid) on standardised frozen embeddings,
fitted by L-BFGS, its strength chosen by cross-validation (linear_cv).
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from . import calibration
from .classifier_model import Standardiser
from .cv import Problem, cv_score, feature_bank, fit_targets, fold_splits, has_regular
from .errors import TrainingDiverged
from .recipes import L2_GRID

log = logging.getLogger(__name__)


def class_weights(y: np.ndarray, classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return w[y]


def span_reduction(z: np.ndarray):
    """(images in an orthonormal basis of their span [n, r], the basis [d, r]) when n < d, else None."""
    n, d = z.shape
    if not np.isfinite(z).all():
        raise TrainingDiverged("the features are not finite")
    if n >= d:
        return None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x64 = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))
        evals, evecs = torch.linalg.eigh(x64 @ x64.t())
        keep = evals > evals.max().clamp_min(1e-30) * 1e-9
        evals, evecs = evals[keep], evecs[:, keep]
        basis = ((x64.t() @ evecs) / evals.sqrt()).float()  # [d, r] orthonormal columns spanning the images
        return (evecs * evals.sqrt()).float(), basis
    finally:
        torch.set_num_threads(threads)


def fit_linear(
    z: np.ndarray,
    targets: np.ndarray,
    *,
    multilabel: bool,
    classes: int,
    c: float,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 100,
    reduction="auto",
):
    """L2-regularised logistic regression (full-batch L-BFGS): softmax over `classes` with balanced class
    weights, or independent sigmoids. Returns (W [classes, d], b [classes]).

    With fewer images than dimensions it is solved exactly in the span of the images (the L2 optimum lies
    there), which makes each fit several times cheaper."""
    n, d = z.shape
    if not np.isfinite(z).all():
        raise TrainingDiverged("the features are not finite")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: extra threads only spin (70x slower on a busy 2-core box)
    try:
        if isinstance(reduction, str):
            reduction = span_reduction(z)
        if reduction is not None:
            x, basis = reduction
        else:
            x, basis = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)), None
        init_r = None
        if init is not None:
            w0 = torch.from_numpy(init[0]).float()
            init_r = (w0 @ basis if basis is not None else w0, torch.from_numpy(init[1]).float())
        w, b = _lbfgs_logistic(
            x,
            targets,
            multilabel=multilabel,
            classes=classes,
            lam=1.0 / (2.0 * c * max(n, 1)),
            init=init_r,
            max_iter=max_iter,
        )
        if basis is not None:
            w = w @ basis.t()
    finally:
        torch.set_num_threads(threads)
    return w.numpy().copy(), b.numpy().copy()


def _lbfgs_logistic(x: Tensor, targets, *, multilabel: bool, classes: int, lam: float, init, max_iter: int):
    w = torch.zeros(classes, x.shape[1], dtype=torch.float32)
    b = torch.zeros(classes, dtype=torch.float32)
    if init is not None:
        w.copy_(init[0]), b.copy_(init[1])
    w.requires_grad_(True), b.requires_grad_(True)
    if multilabel:
        y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        sw = None
    else:
        y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        sw = torch.from_numpy(class_weights(np.asarray(targets), classes).astype(np.float32))
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        logits = x @ w.t() + b
        if multilabel:
            loss = F.binary_cross_entropy_with_logits(logits, y)
        else:
            loss = (F.cross_entropy(logits, y, reduction="none") * sw).mean()
        loss = loss + lam * (w * w).sum()
        loss.backward()
        return loss

    try:
        loss = opt.step(closure)
    except RuntimeError as exc:  # L-BFGS overflows on a diverging objective
        raise TrainingDiverged(f"the linear head diverged: {exc}") from None
    if loss is None or not torch.isfinite(loss) or not torch.isfinite(w).all():
        raise TrainingDiverged(
            f"the linear head's loss is {float(loss) if loss is not None else 'undefined'}"
        )
    return w.detach(), b.detach()


def head_logits(z: np.ndarray, head) -> np.ndarray:
    return z @ head[0].T + head[1]


def linear_cv(
    features: np.ndarray,
    problem: Problem,
    folds: np.ndarray,
    k: int,
    grid=L2_GRID,
    seed: int = 0,
    deadline: float | None = None,
    gate_dims: int | None = None,
    fold_ids=None,
) -> dict:
    """Out-of-fold logits and gate similarities for each C in `grid` (on the folds in `fold_ids`, default all);
    returns the best C's."""
    n = len(features)
    results = {c: np.zeros((n, problem.classes), dtype=np.float64) for c in grid}
    sims = np.full(n, np.nan)
    done = np.zeros(n, dtype=bool)
    finished: list[int] = []  # folds done (the first always runs, whatever the deadline)

    def one_fold(f, train, test):
        if deadline is not None and finished and time.monotonic() > deadline:
            log.info("linear CV fold %d skipped (budget)", f)
            return
        std = Standardiser.fit(features[train])
        ztr, zte = std(features[train]), std(features[test])
        init = None
        reduction = span_reduction(ztr)  # once per fold, shared by every C
        for c in grid:
            head = fit_linear(
                ztr,
                fit_targets(problem, train),
                multilabel=problem.multilabel,
                classes=problem.classes,
                c=c,
                init=init,
                reduction=reduction,
            )
            init = head
            results[c][test] = head_logits(zte, head)
        g = gate_dims or ztr.shape[1]
        bank = feature_bank(ztr[:, :g], has_regular(problem, train), np.random.default_rng([seed, f]))
        sims[test] = calibration.max_similarity(calibration.l2_normalise(zte[:, :g]), bank)
        done[test] = True
        finished.append(f)

    splits = [s for s in fold_splits(folds, k) if fold_ids is None or s[0] in fold_ids]
    # the folds are independent and each fit is single-threaded: run them side by side, one per core (torch's
    # thread count is set once around them, so the fits' own set/restore cannot race)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(1, min(len(splits), threads))) as pool:
            for future in [pool.submit(one_fold, *split) for split in splits]:
                future.result()
    finally:
        torch.set_num_threads(threads)
    idx = np.flatnonzero(done)
    scores = {c: cv_score(results[c][idx], idx, problem) for c in grid}
    best = max(grid, key=lambda c: (round(scores[c], 6), -abs(math.log(c / 0.03))))
    return {
        "recipe": "linear",
        "c": best,
        "score": scores[best],
        "scores": {str(c): s for c, s in scores.items()},
        "logits": results[best],
        "similarity": sims,
        "evaluated": done,
    }
