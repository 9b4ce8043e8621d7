"""Image classification training: multiclass (softmax) and multilabel (sigmoid), with a Negative tag.

Recipes (no single one wins on few images; each project picks by stratified k-fold cross-validation):
- "linear": a linear head on frozen, cached backbone embeddings (pooled outputs of the last stages, power-
  and z-normalised); L2 strength chosen by CV. Fast: retraining after adding images only embeds new ones.
- "finetune": the last stages of the backbone are fine-tuned with augmentation (flips, crops, scale,
  brightness/contrast), BatchNorm kept in eval mode (its ImageNet statistics stay sane on tiny batches),
  starting from the linear head (LP-FT); the head is refit on the fine-tuned features afterwards. The frozen
  part's outputs for a few augmented views are computed once, so epochs only run the trainable stages.
  It runs only where the time budget allows it (small sets / on a GPU).
Quick (Regular) training compares the linear recipe over an L2 grid and, when affordable, a fine-tune;
Advanced spends `budget_seconds` on a recipe search (backbone, resolution, epochs, unfrozen depth) and keeps
the best by CV score, stopping when several candidates in a row bring nothing.

The Negative tag ("none of the others"): images of it train every regular tag towards 0. For multiclass an
implicit background class is added to the softmax when such images exist; its probability is what the
Negative output reports (and without a Negative tag it is dropped at export, so regular probabilities may
sum to less than 1). Independently, an "unlike anything seen" gate (see calibration.fit_gate) scales all
regular tags down for images far from every training image in feature space, so a shoe shown to a
grape-vs-banana model scores low for both even when no negative images were given.

Calibration: one temperature on out-of-fold logits; a recommended threshold per tag maximising F1 on
out-of-fold probabilities. Evaluation: out-of-fold probabilities per image (cvcore.metrics reads them).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional as F

from cvcore import artifacts, metrics

from . import backbones, calibration, doctor
from .features import (
    DEFAULT_STAGES,
    MemoryFeatureCache,
    PooledFeatures,
    embed,
    feature_name,
    global_dim,
    grid_cells,
    images_to_tensor,
)

log = logging.getLogger(__name__)

QUICK_CPU_BUDGET_S = 45.0  # Quick on the CPU: 10 tags x 50 images train, evaluate and export within a minute
HELD_OUT_ABOVE = 3000  # more images than this: one stratified held-out split instead of k folds
HELD_OUT_FRACTION = 0.2
MAX_FOLDS = 5
L2_GRID = (0.003, 0.01, 0.03, 0.1)  # sklearn-style C per image: penalty = 1 / (2 C n) * |W|^2
SHRINK = 0.1  # variance shrinkage in the standardiser (fraction of the mean variance)
BANK_MAX = 512  # training embeddings kept in the graph for the "unlike anything seen" gate
FINETUNE_VIEWS = 4
SCREEN_ABOVE = 200  # from this many images, candidates are screened on 2 folds before the winner's full CV
GRID_MAX_IMAGES = 5000  # above this (on a CPU) only the global features are tried: the grid ones are 3x wider


class TrainingDiverged(RuntimeError):
    """The loss became non-finite (the job reports 'diverged')."""


class Example:
    """A training image: `image` is an RGB PIL image, or a callable that loads it on first use (a retraining
    whose embeddings are cached never needs most images) and keeps it, unless the callable is marked
    `streamed` (a dataset too large to hold decoded: loaded on every use, never kept); `labels` are indices
    into the labels, () for a Negative-tag image (none of the regular tags); `key` is the content-addressed
    image id (the cache key)."""

    __slots__ = ("_image", "labels", "key")

    def __init__(self, image, labels: tuple[int, ...], key: str):
        self._image, self.labels, self.key = image, tuple(labels), key

    @property
    def image(self) -> Image.Image:
        if callable(self._image):
            if getattr(self._image, "streamed", False):
                return self._image()
            self._image = self._image()
        return self._image

    def __repr__(self) -> str:
        return f"Example(key={self.key!r}, labels={self.labels!r})"


@dataclass
class ClassifierResult:
    model: nn.Module  # normalised NCHW float32 -> probabilities per label (temperature and gate applied)
    sidecar: artifacts.ModelSidecar
    evaluation: dict
    config: dict = field(default_factory=dict)
    evidence: object = None  # doctor.Evidence: what the model doctor diagnoses the data from


# --- the exported model ---------------------------------------------------------------------------------------

POWER_EPS = 1e-4


def signed_sqrt(x: Tensor) -> Tensor:
    """Power normalisation sign(x) * (sqrt(|x| + eps) - sqrt(eps)): smooth at 0, so fine-tuning can backprop."""
    return torch.sign(x) * (torch.sqrt(torch.abs(x) + POWER_EPS) - math.sqrt(POWER_EPS))


def signed_sqrt_np(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * (np.sqrt(np.abs(x) + POWER_EPS) - math.sqrt(POWER_EPS))


class ClassifierModel(nn.Module):
    """extractor -> signed sqrt -> standardise -> linear -> /T -> softmax|sigmoid -> x gate -> label order."""

    def __init__(
        self,
        extractor: nn.Module,
        mean: Tensor,
        scale: Tensor,
        weight: Tensor,
        bias: Tensor,
        *,
        multilabel: bool,
        regular: int,
        out_index: list[int],
        temperature: float = 1.0,
        bank: Tensor | None = None,
        gate_centre: float = -1.0,
        gate_width: float = 0.05,
        gate_dims: int | None = None,
    ):
        super().__init__()
        self.extractor = extractor
        self.multilabel, self.regular = bool(multilabel), int(regular)
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("scale", scale.float().clone())
        self.register_buffer("weight", weight.float().clone())
        self.register_buffer("bias", bias.float().clone())
        self.register_buffer("inv_temperature", torch.tensor(1.0 / float(temperature)))
        self.register_buffer("out_index", torch.tensor(out_index, dtype=torch.long))
        self.use_gate = bank is not None and len(bank) > 0
        self.gate_dims = int(gate_dims or weight.shape[1])  # the leading (globally pooled) values it compares
        self.register_buffer(
            "bank", (bank if self.use_gate else torch.zeros(1, self.gate_dims)).float().clone()
        )
        self.register_buffer("gate_centre", torch.tensor(float(gate_centre)))
        self.register_buffer("gate_width", torch.tensor(float(gate_width)))

    def standardised(self, features: Tensor) -> Tensor:
        return (signed_sqrt(features) - self.mean) * self.scale

    def from_features(self, features: Tensor) -> Tensor:
        z = self.standardised(features)
        logits = (z @ self.weight.t() + self.bias) * self.inv_temperature
        if self.multilabel:
            p = torch.sigmoid(logits)
        else:
            p = torch.softmax(logits, dim=1)[:, : self.regular]  # an implicit background column is dropped
        if self.use_gate:
            zg = z[:, : self.gate_dims]
            zn = zg / zg.norm(dim=1, keepdim=True).clamp_min(1e-8)
            sim = (zn @ self.bank.t()).max(dim=1).values
            p = p * torch.sigmoid((sim - self.gate_centre) / self.gate_width).unsqueeze(1)
        if self.multilabel:
            none = torch.prod(1 - p, dim=1, keepdim=True)
        else:
            none = (1 - p.sum(dim=1, keepdim=True)).clamp_min(0)
        return torch.cat([p, none], dim=1).index_select(1, self.out_index)

    def forward(self, x: Tensor) -> Tensor:
        return self.from_features(self.extractor(x))


# --- linear heads -----------------------------------------------------------------------------------------------


@dataclass
class Standardiser:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Standardiser:
        f = signed_sqrt_np(features.astype(np.float64))
        mean = f.mean(axis=0)
        std = f.std(axis=0)
        # shrink tiny variances towards the average one: near-constant dimensions of a small set would
        # otherwise be blown up into noise (for the head and for the gate similarity alike)
        var = std**2 + SHRINK * float(np.mean(std**2)) + 1e-12
        return cls(mean.astype(np.float32), (1.0 / np.sqrt(var)).astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((signed_sqrt_np(features.astype(np.float64)) - self.mean) * self.scale).astype(np.float32)


def _class_weights(y: np.ndarray, classes: int) -> np.ndarray:
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
        sw = torch.from_numpy(_class_weights(np.asarray(targets), classes).astype(np.float32))
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


def _logits(z: np.ndarray, head) -> np.ndarray:
    return z @ head[0].T + head[1]


# --- problem setup ----------------------------------------------------------------------------------------------


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


def _splits(folds: np.ndarray, k: int):
    for f in range(k):
        test = np.flatnonzero(folds == f)
        train = np.flatnonzero(folds != f)
        if len(test) and len(train):
            yield f, train, test


# --- scoring ----------------------------------------------------------------------------------------------------


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def regular_probabilities(logits: np.ndarray, problem: Problem, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    if problem.multilabel:
        return _sigmoid(z)
    return _softmax(z)[:, : len(problem.regular)]


def cv_score(logits: np.ndarray, idx: np.ndarray, problem: Problem) -> float:
    """Higher is better. Multiclass: minus the out-of-fold log-loss after temperature calibration, a smooth
    criterion (on ~100 images accuracy differences between candidates are mostly noise; measured on
    Fashion-MNIST it picked the recipe that was best on held-out data far more often). Multilabel: macro AP."""
    if problem.multilabel:
        p = _sigmoid(logits)
        y = problem.y[idx]
        aps = [metrics.average_precision(p[:, j], y[:, j] > 0) for j in range(y.shape[1]) if y[:, j].any()]
        return float(np.mean(aps)) if aps else 0.0
    return float(np.mean(_log_likelihoods(logits, idx, problem)))


def _log_likelihoods(logits: np.ndarray, idx: np.ndarray, problem: Problem) -> np.ndarray:
    """Multiclass: each image's log-probability of its true class after temperature calibration."""
    y = problem.y[idx]
    t = calibration.fit_temperature(logits, y, False)
    p = _softmax(logits / t)
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


# --- recipe (a): linear head on frozen embeddings ---------------------------------------------------------------


def _bank(z: np.ndarray, keep: np.ndarray, rng) -> np.ndarray:
    rows = np.flatnonzero(keep)
    if len(rows) > BANK_MAX:
        rows = np.sort(rng.choice(rows, BANK_MAX, replace=False))
    return calibration.l2_normalise(z[rows])


def _has_regular(problem: Problem, idx: np.ndarray) -> np.ndarray:
    return problem.y[idx].sum(axis=1) > 0 if problem.multilabel else problem.y[idx] < len(problem.regular)


def _targets(problem: Problem, idx: np.ndarray):
    return problem.y[idx]


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
    finished = []

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
                _targets(problem, train),
                multilabel=problem.multilabel,
                classes=problem.classes,
                c=c,
                init=init,
                reduction=reduction,
            )
            init = head
            results[c][test] = _logits(zte, head)
        g = gate_dims or ztr.shape[1]
        bank = _bank(ztr[:, :g], _has_regular(problem, train), np.random.default_rng([seed, f]))
        sims[test] = calibration.max_similarity(calibration.l2_normalise(zte[:, :g]), bank)
        done[test] = True
        finished.append(f)

    splits = [s for s in _splits(folds, k) if fold_ids is None or s[0] in fold_ids]
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


# --- recipe (b): fine-tune the last stages ----------------------------------------------------------------------


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random scale/crop (0.75-1), translation, horizontal flip, brightness and contrast on a normalised batch."""
    n = x.shape[0]
    r = lambda *shape: torch.rand(*shape, generator=generator)
    s = 0.75 + 0.25 * r(n)
    flip = torch.where(r(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = s * flip, s
    theta[:, 0, 2], theta[:, 1, 2] = (1 - s) * (2 * r(n) - 1), (1 - s) * (2 * r(n) - 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="reflection")
    contrast = (0.8 + 0.4 * r(n)).view(n, 1, 1, 1)
    shift = (0.4 * r(n) - 0.2).view(n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return (out - mean) * contrast + mean + shift


def _bn_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class _Split:
    """A backbone cut after `split` stages: the frozen prefix is run once per augmented view."""

    def __init__(self, backbone, unfreeze: int, stages: int = DEFAULT_STAGES):
        self.backbone = backbone
        total = backbone.stage_count()
        self.split = max(1, total - int(unfreeze))
        self.first = max(0, total - int(stages))

    def prefix(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pooled = []
        for i, stage in enumerate(list(self.backbone.stages)[: self.split]):
            x = stage(x)
            if i >= self.first:
                pooled.append(x.mean(dim=(2, 3)))
        return x, (torch.cat(pooled, dim=1) if pooled else x.new_zeros(x.shape[0], 0))

    def suffix(self, tail: nn.Module, h: Tensor, pooled: Tensor) -> Tensor:
        out = [pooled] if pooled.shape[1] else []
        for j, stage in enumerate(tail):
            h = stage(h)
            if self.split + j >= self.first:
                out.append(h.mean(dim=(2, 3)))
        return torch.cat(out, dim=1)


def _prefix_views(split: _Split, base: Tensor, views: int, device: str, seed: int, batch: int = 32):
    """[views] of (maps, pooled) for all images; view 0 is un-augmented."""
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for v in range(views):
            maps, pooled = [], []
            for s in range(0, len(base), batch):
                x = base[s : s + batch]
                if v:
                    x = augment(x, g)
                m, p = split.prefix(x.to(device))
                maps.append(m.cpu()), pooled.append(p.cpu())
            out.append((torch.cat(maps), torch.cat(pooled)))
    return out


def finetune_fit(
    split: _Split,
    views,
    train: np.ndarray,
    problem: Problem,
    *,
    c: float,
    epochs: int,
    lr: float,
    device: str,
    seed: int,
    batch_size: int = 16,
    deadline: float | None = None,
):
    """Fine-tune a copy of the backbone's tail on the training images' cached views; returns the tail."""
    torch.manual_seed(seed)
    tail = copy.deepcopy(nn.Sequential(*list(split.backbone.stages)[split.split :])).to(device)
    # LP-FT: start the head from a linear probe on the frozen features of the un-augmented view
    with torch.no_grad():
        f0 = split.suffix(tail, views[0][0][train].to(device), views[0][1][train].to(device)).cpu().numpy()
    std = Standardiser.fit(f0)
    head = fit_linear(
        std(f0), _targets(problem, train), multilabel=problem.multilabel, classes=problem.classes, c=c
    )
    mean, scale = torch.from_numpy(std.mean).to(device), torch.from_numpy(std.scale).to(device)
    w = torch.from_numpy(head[0]).to(device).requires_grad_(True)
    b = torch.from_numpy(head[1]).to(device).requires_grad_(True)
    params = [p for p in tail.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        [
            {"params": params, "lr": lr, "weight_decay": 1e-4},
            {"params": [w, b], "lr": lr * 3, "weight_decay": 0.0},
        ]
    )
    steps_per_epoch = max(1, math.ceil(len(train) / batch_size))
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr, lr * 3], total_steps=total, pct_start=0.2)
    y = torch.from_numpy(np.asarray(_targets(problem, train)))
    sw = (
        None
        if problem.multilabel
        else torch.from_numpy(
            _class_weights(np.asarray(_targets(problem, train)), problem.classes).astype(np.float32)
        )
    )
    g = torch.Generator().manual_seed(seed)
    nviews = len(views)
    step = 0
    for epoch in range(epochs):
        tail.train()
        _bn_eval(tail)
        order = torch.randperm(len(train), generator=g)
        for s in range(0, len(train), batch_size):
            j = order[s : s + batch_size]
            rows = torch.from_numpy(train)[j]
            v = torch.randint(0, nviews, (len(j),), generator=g)
            h = torch.stack([views[int(vi)][0][int(r)] for vi, r in zip(v, rows)]).to(device)
            pooled = torch.stack([views[int(vi)][1][int(r)] for vi, r in zip(v, rows)]).to(device)
            feats = split.suffix(tail, h, pooled)
            z = (signed_sqrt(feats) - mean) * scale
            logits = z @ w.t() + b
            if problem.multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, y[j].float().to(device))
            else:
                loss = (
                    F.cross_entropy(logits, y[j].to(device), reduction="none", label_smoothing=0.1)
                    * sw[j].to(device)
                ).mean()
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"fine-tuning loss is {loss.item()} at epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params + [w, b], 5.0)
            opt.step()
            if step < total - 1:
                sched.step()
            step += 1
        if deadline is not None and time.monotonic() > deadline:
            log.info("fine-tune stopped after %d/%d epochs (budget)", epoch + 1, epochs)
            break
    tail.eval()
    for p in params:
        p.requires_grad_(False)
    return tail


def _step_seconds(split: _Split, views, problem: Problem, device: str, batch_size: int = 16) -> float:
    """Seconds one fine-tuning step (forward + backward through the tail, batch 16) takes here, measured."""
    tail = copy.deepcopy(nn.Sequential(*list(split.backbone.stages)[split.split :])).to(device)
    tail.train()
    _bn_eval(tail)
    rows = torch.arange(min(batch_size, len(views[0][0])))
    h, pooled = views[0][0][rows].to(device), views[0][1][rows].to(device)
    best = float("inf")
    for _ in range(2):
        t = time.monotonic()
        out = split.suffix(tail, h, pooled)
        out.square().mean().backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.monotonic() - t)
    return best * batch_size / max(len(rows), 1)


def _tail_features(split: _Split, tail: nn.Module, views, rows: np.ndarray, device: str, batch: int = 64):
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            r = torch.from_numpy(rows[s : s + batch])
            out.append(split.suffix(tail, views[0][0][r].to(device), views[0][1][r].to(device)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def finetune_cv(
    split: _Split,
    views,
    problem: Problem,
    folds: np.ndarray,
    k: int,
    *,
    c: float,
    epochs: int,
    lr: float,
    device: str,
    seed: int,
    deadline: float | None = None,
    max_folds: int | None = None,
):
    n = len(problem.y)
    logits = np.zeros((n, problem.classes))
    sims = np.full(n, np.nan)
    done = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed)
    for count, (f, train, test) in enumerate(_splits(folds, k)):
        if max_folds is not None and count >= max_folds:
            break
        tail = finetune_fit(
            split, views, train, problem, c=c, epochs=epochs, lr=lr, device=device, seed=seed + f
        )
        ftr, fte = (
            _tail_features(split, tail, views, train, device),
            _tail_features(split, tail, views, test, device),
        )
        std = Standardiser.fit(ftr)
        ztr, zte = std(ftr), std(fte)
        head = fit_linear(
            ztr, _targets(problem, train), multilabel=problem.multilabel, classes=problem.classes, c=c
        )
        logits[test] = _logits(zte, head)
        sims[test] = calibration.max_similarity(
            calibration.l2_normalise(zte), _bank(ztr, _has_regular(problem, train), rng)
        )
        done[test] = True
        if deadline is not None and time.monotonic() > deadline:
            break
    idx = np.flatnonzero(done)
    return {
        "score": cv_score(logits[idx], idx, problem) if len(idx) else -1e9,
        "logits": logits,
        "similarity": sims,
        "evaluated": done,
    }


# --- the whole training -----------------------------------------------------------------------------------------


@dataclass
class Candidate:
    recipe: str
    backbone: str
    resolution: int
    c: float
    score: float
    logits: np.ndarray
    similarity: np.ndarray
    evaluated: np.ndarray
    seconds: float
    epochs: int = 0
    unfreeze: int = 0
    lr: float = 0.0
    scores: dict = field(default_factory=dict)
    compared_on: int = 0  # folds used to score it (fine-tunes may be scored on fewer folds)
    variant: str = "global"  # "global": pooled stages only; "grid": plus the stride-16 grid
    _y: np.ndarray | None = None  # multiclass targets, for describe()

    def describe(self) -> dict:
        idx = np.flatnonzero(self.evaluated)
        d = {
            "recipe": self.recipe,
            "backbone": self.backbone,
            "resolution": self.resolution,
            "c": self.c,
            "features": self.variant,
            "score": round(self.score, 5),
            "cv_top1": round(float(np.mean(self.logits[idx].argmax(axis=1) == self._y[idx])), 4)
            if self._y is not None and len(idx)
            else None,
            "seconds": round(self.seconds, 2),
        }
        if self.recipe == "finetune":
            d.update(epochs=self.epochs, unfreeze=self.unfreeze, lr=self.lr, folds_scored=self.compared_on)
        if self.scores:
            d["scores_by_c"] = {k: round(v, 5) for k, v in self.scores.items()}
        return d


_PRETRAINED: dict[tuple[str, str], backbones.Backbone] = {}
_PRETRAINED_LOCK = threading.Lock()


def _pretrained(name: str, device: str) -> backbones.Backbone:
    """The pretrained backbone, created once per worker process: trainings only read it (fine-tunes copy it),
    so a retraining also reuses its compiled embedding session (features._onnx_extractor)."""
    with _PRETRAINED_LOCK:
        key = (name, device)
        if key not in _PRETRAINED:
            _PRETRAINED[key] = backbones.create(name).to(device)
        return _PRETRAINED[key].eval()


class _Embeddings:
    """Frozen embeddings per (backbone, resolution), through the cache; backbones created once."""

    def __init__(self, examples, cache, device: str, progress):
        self.examples, self.cache, self.device, self.progress = examples, cache, device, progress
        self.backbones: dict[str, backbones.Backbone] = {}
        self.features: dict[tuple[str, int], np.ndarray] = {}
        self.computed = 0

    def backbone(self, name: str):
        if name not in self.backbones:
            self.backbones[name] = _pretrained(name, self.device)
        return self.backbones[name]

    def get(self, name: str, resolution: int) -> np.ndarray:
        key = (name, resolution)
        if key not in self.features:
            b = self.backbone(name)
            before = getattr(self.cache, "misses", None)
            counter = {"n": 0}

            def report(done, total):
                counter["n"] = total
                self.progress(0.05 + 0.35 * done / max(total, 1), f"embedding {done}/{total} images ({name})")

            self.features[key] = embed(
                b,
                lambda i: self.examples[i].image,
                [ex.key for ex in self.examples],
                self.cache,
                resolution,
                self.device,
                batch_size=32,
                progress=report,
            )
            self.computed += counter["n"]
            del before
        return self.features[key]


WARM_START_CHANGE = (
    1.5  # Quick retraining reuses the previous recipe while the set grew or shrank by less than this
)


def reusable_recipe(previous: dict | None, *, advanced: bool, n: int, tags: int, multilabel: bool):
    """(the previous iteration's linear recipe to reuse, why) or (None, why not). A Quick retraining after a
    few images were added keeps the backbone, features and resolution that cross-validation chose last time
    and its regularisation C, so it costs the new images' embeddings and one cross-validation."""
    if previous is None:
        return None, "no previous iteration"
    if advanced:
        return None, "Advanced training searches again"
    if previous.get("recipe") != "linear":
        return None, f"the previous recipe was {previous.get('recipe')!r}"
    if previous.get("tags") != tags or bool(previous.get("multilabel")) != bool(multilabel):
        return None, "the tags changed"
    before = int(previous.get("images") or 0)
    if not before or n > before * WARM_START_CHANGE or n * WARM_START_CHANGE < before:
        return None, f"the set changed from {before} to {n} images"
    if previous.get("backbone") not in backbones.names() or previous.get("features") not in (
        "global",
        "grid",
    ):
        return None, "the previous backbone or features are not available"
    c = float(previous.get("c") or 0)
    if not c > 0:
        return None, "the previous C is missing"
    return (
        {
            "backbone": previous["backbone"],
            "resolution": int(previous["resolution"]),
            "features": previous["features"],
            "grid": (c,),
        },
        f"iteration {previous.get('iteration_id')}: {previous['backbone']} {previous['features']}, {before} -> {n} images",
    )


def _estimate_finetune_seconds(
    n: int, resolution: int, unfreeze: int, epochs: int, folds: int, device: str, views: int = FINETUNE_VIEWS
) -> float:
    """Rough CPU cost (2 cores): the prefix once per view, the tail per epoch; a GPU is ~30x faster."""
    px = (resolution / 224.0) ** 2
    prefix = n * views * 0.02 * px
    tail = n * epochs * 0.012 * px * (unfreeze / 5.0) * (folds + 1)
    total = prefix + tail
    return total / 30.0 if device.startswith("cuda") else total


def train_classifier(
    examples,
    labels,
    *,
    multilabel: bool,
    negative_index: int | None,
    backbone="mobilenet_v2",
    advanced=False,
    budget_seconds: float | None = None,
    device="cpu",
    cache=None,
    progress=lambda fraction, message: None,
    seed=0,
    dataset_hash="",
    resolution: int | None = None,
    warm_start: dict | None = None,
) -> ClassifierResult:
    """Train, cross-validate, calibrate; returns the model to export, its sidecar, evaluation and config.
    `resolution` overrides the backbone's pretraining resolution for the Quick recipes (tests use it)."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    examples = list(examples)
    if len(examples) < 2:
        raise ValueError("at least two images are needed to train")
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    backbone = (backbone or backbones.DEFAULT).strip().lower().replace("-", "_")
    if backbone not in backbones.names():
        raise ValueError(f"unknown backbone {backbone!r}; valid names: {', '.join(backbones.names())}")
    if budget_seconds is None and not advanced:
        budget_seconds = QUICK_CPU_BUDGET_S if device == "cpu" else 600.0
    deadline = started + budget_seconds if budget_seconds else None
    problem = make_problem(examples, labels, multilabel, negative_index)
    cache = cache if cache is not None else MemoryFeatureCache()
    stats = doctor.stats_for(examples, cache)  # per-image statistics: near duplicates share a fold
    groups = doctor.duplicate_groups(stats)
    folds, k = assign_folds(problem.strata, seed, groups)
    emb = _Embeddings(examples, cache, device, progress)
    n = len(examples)
    progress(0.05, f"{n} images, {len(problem.regular)} tags, {k if k > 1 else 'held-out'} folds")

    candidates: list[Candidate] = []
    # larger sets: candidates are compared on two folds, and only the chosen one is evaluated on all of them
    screen_folds = [0, 1] if n >= SCREEN_ABOVE and k > 2 else None

    def add_linear(name: str, resolution: int, only: str | None = None, grid=L2_GRID):
        """Linear heads on the global features and on global + grid (or `only` one of them); returns the better
        candidate."""
        t = time.monotonic()
        feats = emb.get(name, resolution)
        timings[f"embed {name}@{resolution}"] = round(time.monotonic() - t, 3)
        gdim = global_dim(emb.backbone(name))
        found = []
        variants = [("global", slice(0, gdim))]
        if n <= GRID_MAX_IMAGES or device.startswith("cuda"):
            variants.append(("grid", slice(None)))
        if only is not None:
            variants = [v for v in variants if v[0] == only] or variants[:1]
        screen = screen_folds if only is None else None  # one candidate: no screening, all folds at once
        for variant, cols in variants:
            t = time.monotonic()
            r = linear_cv(
                feats[:, cols], problem, folds, k, grid=grid, seed=seed, gate_dims=gdim, fold_ids=screen
            )
            cand = Candidate(
                "linear",
                name,
                resolution,
                r["c"],
                r["score"],
                r["logits"],
                r["similarity"],
                r["evaluated"],
                time.monotonic() - t,
                scores=r["scores"],
                variant=variant,
                compared_on=len(screen) if screen is not None else k,
            )
            if screen is not None:
                cand._complete = lambda c_, cols_=cols, cand_=cand, screen_=screen: linear_cv(
                    emb.get(cand_.backbone, cand_.resolution)[:, cols_],
                    problem,
                    folds,
                    k,
                    grid=(c_,),
                    seed=seed,
                    gate_dims=gdim,
                    fold_ids=[f for f in range(k) if f not in screen_],
                )
            cand._y = None if problem.multilabel else problem.y
            candidates.append(cand)
            found.append(cand)
            timings[f"cv linear {name}@{resolution} {variant}"] = round(cand.seconds, 3)
        return found[-1] if len(found) > 1 and found[-1].score > found[0].score + 0.002 else found[0]

    def add_finetune(
        name: str,
        resolution: int,
        unfreeze: int,
        epochs: int,
        lr: float,
        c: float,
        max_folds=None,
        reserve: float = 0.0,
    ):
        """Score a fine-tune by CV (on at most `max_folds` folds); None when the measured cost of a training
        step says it cannot finish (CV plus the final fit) before the deadline less `reserve`."""
        t = time.monotonic()
        b = emb.backbone(name)
        split = _Split(b, unfreeze)
        base = torch.cat(
            [
                images_to_tensor([examples[i].image for i in range(s, min(s + 64, n))], b, resolution)
                for s in range(0, n, 64)
            ]
        )
        views = _prefix_views(split, base, FINETUNE_VIEWS, device, seed)
        folds_run = min(k, max_folds or k)
        per_step = _step_seconds(split, views, problem, device)
        steps = epochs * math.ceil(n * (folds_run * (k - 1) / k + 1) / 16)
        need = per_step * steps * 1.15
        timings[f"finetune estimate {name}@{resolution} u{unfreeze} e{epochs}"] = round(need, 2)
        if deadline is not None and time.monotonic() + need > deadline - reserve:
            log.info("fine-tune %s@%d skipped: needs about %.0fs", name, resolution, need)
            return None
        r = finetune_cv(
            split,
            views,
            problem,
            folds,
            k,
            c=c,
            epochs=epochs,
            lr=lr,
            device=device,
            seed=seed,
            max_folds=max_folds,
        )
        cand = Candidate(
            "finetune",
            name,
            resolution,
            c,
            r["score"],
            r["logits"],
            r["similarity"],
            r["evaluated"],
            time.monotonic() - t,
            epochs=epochs,
            unfreeze=unfreeze,
            lr=lr,
            compared_on=int(len(np.unique(folds[r["evaluated"]]))),
        )
        cand._views = (split, views)  # reused for the final fit
        cand._y = None if problem.multilabel else problem.y
        candidates.append(cand)
        timings[f"cv finetune {name}@{resolution} u{unfreeze} e{epochs}"] = round(cand.seconds, 3)
        return cand

    def comparable(a: Candidate, b: Candidate) -> tuple[float, float]:
        """b's score minus a's on the images both evaluated, and its standard error (score_gain)."""
        both = np.flatnonzero(a.evaluated & b.evaluated)
        if not len(both):
            return -1e9, 0.0
        return score_gain(a.logits[both], b.logits[both], both, problem)

    reuse, reuse_note = reusable_recipe(
        warm_start, advanced=advanced, n=n, tags=len(problem.regular), multilabel=multilabel
    )
    resolution = int(resolution or emb.backbone(backbone).spec.input_size)
    if reuse is not None:
        # a Quick retraining of a set that changed little: the previous iteration's recipe and C
        best = add_linear(reuse["backbone"], reuse["resolution"], only=reuse["features"], grid=reuse["grid"])
        progress(0.6, f"previous recipe ({reuse_note}): CV score {best.score:.3f}")
    else:
        best = add_linear(backbone, resolution)
        progress(0.45, f"linear head: CV score {best.score:.3f}")
        # Quick's search; Advanced training starts from its choice and departs only beyond noise
        export_reserve = 12.0 if device == "cpu" else 5.0
        # the other backbones' frozen features, where the budget allows: a linear head on each, by CV; the
        # project's own backbone stays unless another is clearly better
        first_cost = time.monotonic() - started
        for other in [name for name in backbones.names() if name != backbone]:
            remaining = (deadline - time.monotonic()) if deadline else float("inf")
            if first_cost * 1.5 + export_reserve > remaining:
                log.info(
                    "backbone %s not tried: about %.0fs needed, %.0fs left",
                    other,
                    first_cost * 1.5,
                    remaining,
                )
                break
            cand = add_linear(other, resolution)
            if comparable(best, cand)[0] > 0.01:
                best = cand
            progress(0.5, f"{other}: CV score {cand.score:.3f}")
        # a fine-tune only where the budget allows it (small sets, or a GPU)
        remaining = (deadline - time.monotonic()) if deadline else float("inf")
        ft_res = resolution if device.startswith("cuda") else min(resolution, 160)
        unfreeze, epochs = 5, 20
        est = _estimate_finetune_seconds(n, ft_res, unfreeze, epochs, min(k, 2), device)
        if k > 1 and est < remaining - export_reserve:
            cand = add_finetune(
                best.backbone, ft_res, unfreeze, epochs, 3e-4, best.c, max_folds=2, reserve=export_reserve
            )
            if cand is not None:
                if comparable(best, cand)[0] > 0.02:
                    best = cand
                progress(0.75, f"fine-tune: CV score {cand.score:.3f}")
        else:
            log.info("fine-tune skipped: estimated %.0fs, %.0fs left", est, remaining)
        if advanced:
            best = _advanced_search(
                best,
                candidates,
                add_linear,
                add_finetune,
                comparable,
                backbone,
                deadline,
                progress,
                n,
                k,
                device,
            )

    # --- the chosen candidate's remaining folds, so the evaluation covers every image ------------------------------
    if best.recipe == "linear" and getattr(best, "_complete", None) is not None:
        t = time.monotonic()
        r = best._complete(best.c)
        rest = r["evaluated"]
        best.logits = np.where(rest[:, None], r["logits"], best.logits)
        best.similarity = np.where(rest, r["similarity"], best.similarity)
        best.evaluated = best.evaluated | rest
        best.compared_on = k
        timings["cv completion"] = round(time.monotonic() - t, 3)

    # --- final fit on every image ------------------------------------------------------------------------------
    t = time.monotonic()
    progress(0.85, f"final fit ({best.recipe}, {best.backbone}@{best.resolution})")
    rng = np.random.default_rng(seed)
    b = emb.backbone(best.backbone)
    gdim = global_dim(b)
    if best.recipe == "linear":
        feats = emb.get(best.backbone, best.resolution)
        cells = grid_cells(best.resolution) if best.variant == "grid" else 0
        if not cells:
            feats = feats[:, :gdim]
        extractor = PooledFeatures(copy.deepcopy(b).cpu(), grid=cells).eval()
    else:
        split, views = best._views
        all_rows = np.arange(n)
        tail = finetune_fit(
            split,
            views,
            all_rows,
            problem,
            c=best.c,
            epochs=best.epochs,
            lr=best.lr,
            device=device,
            seed=seed + 1000,
        )
        feats = _tail_features(split, tail, views, all_rows, device)
        tuned = copy.deepcopy(b).cpu()
        for j, stage in enumerate(tail):
            tuned.stages[split.split + j] = copy.deepcopy(stage).cpu()
        extractor = PooledFeatures(tuned).eval()
    training_rows = np.arange(n)
    std = Standardiser.fit(feats[training_rows])
    z = std(feats)
    head = fit_linear(z, problem.y, multilabel=problem.multilabel, classes=problem.classes, c=best.c)
    bank = _bank(z[:, :gdim], _has_regular(problem, np.arange(n)), rng)
    timings["final fit"] = round(time.monotonic() - t, 3)

    # --- calibration on out-of-fold predictions ----------------------------------------------------------------
    evaluated = np.flatnonzero(best.evaluated)
    oof_logits = best.logits[evaluated]
    temperature = calibration.fit_temperature(oof_logits, problem.y[evaluated], problem.multilabel)
    known = evaluated[_has_regular(problem, evaluated)]
    gate_centre, gate_width = calibration.fit_gate(best.similarity[known])
    probs_regular = regular_probabilities(oof_logits, problem, temperature)
    gate_values = calibration.gate(best.similarity[evaluated], gate_centre, gate_width)
    probs_regular = probs_regular * gate_values[:, None]
    none = (
        np.prod(1 - probs_regular, axis=1) if problem.multilabel else np.clip(1 - probs_regular.sum(1), 0, 1)
    )
    full = np.concatenate([probs_regular, none[:, None]], axis=1)[:, problem.out_index()]
    truth_matrix = np.zeros((len(evaluated), len(problem.labels)), dtype=bool)
    for row, i in enumerate(evaluated):
        truth_matrix[row, problem.truth[i]] = True
        if not problem.truth[i] and problem.negative_index is not None:
            truth_matrix[row, problem.negative_index] = True
    per_label_thresholds = calibration.thresholds(full, truth_matrix)
    oof_regular = np.full((n, len(problem.regular)), np.nan)
    oof_regular[evaluated] = regular_probabilities(oof_logits, problem, temperature)
    frozen = emb.get(best.backbone, best.resolution)[:, :gdim]
    frozen_std = Standardiser.fit(frozen)

    def embed_more(images, keys):  # other images (stored predictions) in the same embedding space
        more = embed(emb.backbone(best.backbone), images, keys, cache, best.resolution, device, batch_size=32)
        return frozen_std(more[:, :gdim])

    evidence = doctor.Evidence(
        features=frozen_std(frozen),
        embed=embed_more,
        folds=folds,
        k=k,
        y=problem.y,
        stats=stats,
        folds_ungrouped=assign_folds(problem.strata, seed)[0],
        regular_names=[problem.labels[j].name for j in problem.regular],
        multilabel=problem.multilabel,
        oof=oof_regular,
        c=best.c,
        gate=(gate_centre, gate_width),
        gate_dims=gdim,
        has_negative=any(not t for t in problem.truth),
    )

    model = ClassifierModel(
        extractor,
        torch.from_numpy(std.mean),
        torch.from_numpy(std.scale),
        torch.from_numpy(head[0]),
        torch.from_numpy(head[1]),
        multilabel=problem.multilabel,
        regular=len(problem.regular),
        out_index=problem.out_index(),
        temperature=temperature,
        bank=torch.from_numpy(bank),
        gate_centre=gate_centre,
        gate_width=gate_width,
        gate_dims=gdim,
    ).eval()

    labels_sorted = problem.labels
    evaluation = {
        "task": artifacts.CLASSIFICATION,
        "classification_type": "Multilabel" if multilabel else "Multiclass",
        "labels": [
            {"index": lab.index, "tag_id": lab.tag_id, "name": lab.name, "type": lab.type}
            for lab in labels_sorted
        ],
        "folds": k,
        "images": [
            {
                "key": examples[i].key,
                "fold": int(folds[i]),
                "truth": (
                    [*problem.truth[i]]
                    or ([problem.negative_index] if problem.negative_index is not None else [])
                ),
                "scores": [round(float(v), 6) for v in full[row]],
            }
            for row, i in enumerate(evaluated)
        ],
        "recipe": best.describe(),
    }
    performance = metrics.classification_performance(evaluation, 0.5)
    summary = {
        key: performance[key]
        for key in (
            "precision",
            "precisionStdDeviation",
            "recall",
            "recallStdDeviation",
            "averagePrecision",
            "top1",
            "top5",
        )
    }
    summary["perTagPerformance"] = performance["perTagPerformance"]
    evaluation["performance_at_0.5"] = summary

    res = int(best.resolution)
    spec = b.spec
    sidecar = artifacts.ModelSidecar(
        task=artifacts.CLASSIFICATION,
        labels=list(labels_sorted),
        input_size=(res, res),
        mean=tuple(spec.mean),
        std=tuple(spec.std),
        backbone=best.backbone,
        dataset_hash=dataset_hash,
        classification_type="Multilabel" if multilabel else "Multiclass",
        default_threshold=0.5,
        thresholds={lab.tag_id: round(float(t), 4) for lab, t in zip(labels_sorted, per_label_thresholds)},
        temperature=float(temperature),
        metrics=summary,
    )
    timings["total"] = round(time.monotonic() - started, 3)
    config = {
        "recipe": best.recipe,
        "backbone": best.backbone,
        "resolution": res,
        "c": best.c,
        "feature": feature_name(b, grid=best.variant == "grid"),
        "features": best.variant,
        "epochs": best.epochs,
        "unfrozen_stages": best.unfreeze,
        "lr": best.lr,
        "folds": k,
        "training_type": "Advanced" if advanced else "Regular",
        "budget_seconds": budget_seconds,
        "device": device,
        "seed": seed,
        "images": n,
        "tags": len(problem.regular),
        "multilabel": bool(multilabel),
        "background_class": problem.background,
        "temperature": temperature,
        "gate": {"centre": gate_centre, "width": gate_width, "bank": int(len(bank))},
        "warm_start": {
            "iteration_id": (warm_start or {}).get("iteration_id"),
            "reused": reuse is not None,
            "note": reuse_note,
        },
        "candidates": [c.describe() for c in candidates],
        "embedded_images": emb.computed,
        "timings": timings,
        "near_duplicate_images_grouped": int(len(groups) - len(np.unique(groups))),
    }
    progress(0.95, "trained")
    return ClassifierResult(
        model=model, sidecar=sidecar, evaluation=evaluation, config=config, evidence=evidence
    )


MIN_GAIN = 0.002  # the smallest CV log-likelihood gain for which Advanced training changes its recipe


def _advanced_search(
    best,
    candidates,
    add_linear,
    add_finetune,
    comparable,
    backbone,
    deadline,
    progress,
    n,
    k,
    device,
    patience: int = 3,
):
    """From Quick's choice (`best`), try the other backbones/resolutions (linear) and fine-tunes of growing
    depth/length not tried yet, until the budget runs out or `patience` candidates in a row do not improve it.

    A candidate replaces the best only when its gain exceeds one standard error of the paired per-image
    difference (and MIN_GAIN): the search compares a dozen candidates on ~100 images, and taking the highest
    score lets the noisiest win (measured on Fashion-MNIST 10/class: Advanced took a recipe 0.02 better in CV
    and 0.03 worse on held-out images than Quick's). So the recipe it starts from stays unless another is
    better beyond noise: the one-standard-error rule of model selection."""
    tried = {(c.recipe, c.backbone, c.resolution, c.unfreeze, c.epochs) for c in candidates}
    plan = []
    for name in [backbone] + [b for b in backbones.names() if b != backbone]:
        for res in (224, 288, 160):
            if ("linear", name, res, 0, 0) not in tried:
                plan.append(("linear", name, res, 0, 0))
    for unfreeze, epochs in ((5, 20), (8, 30), (12, 40)):
        if ("finetune", best.backbone, best.resolution, unfreeze, epochs) not in tried:
            plan.append(("finetune", None, 224, unfreeze, epochs))
    stale = 0
    for i, (recipe, name, res, unfreeze, epochs) in enumerate(plan):
        if deadline is not None and time.monotonic() > deadline:
            break
        if stale >= patience:
            break
        try:
            if recipe == "linear":
                cand = add_linear(name, res)
            else:
                if deadline is not None:
                    est = _estimate_finetune_seconds(n, res, unfreeze, epochs, k, device)
                    if time.monotonic() + est > deadline:
                        continue
                cand = add_finetune(best.backbone, best.resolution, unfreeze, epochs, 3e-4, best.c)
                if cand is None:
                    continue
        except TrainingDiverged:
            stale += 1
            continue
        gain, se = comparable(best, cand)
        if gain > max(MIN_GAIN, se):
            best, stale = cand, 0
        else:
            stale += 1
        progress(
            0.45 + 0.4 * (i + 1) / len(plan),
            f"search: best {best.recipe} {best.backbone}@{best.resolution} score {best.score:.3f}",
        )
    return best
