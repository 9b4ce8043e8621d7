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
the best by CV score, stopping when several candidates in a row bring nothing (recipe_search.py; the recipes
in linear_head.py and finetune.py, calibration and evaluation in classification_eval.py).

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
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import nn

from cvcore import artifacts

from . import backbones, classification_eval, doctor
from .classifier_model import ClassifierModel, Standardiser
from .cv import Problem, assign_folds, feature_bank, has_regular, make_problem
from .errors import TrainingDiverged
from .features import MemoryFeatureCache, PooledFeatures, embed, feature_name, global_dim, grid_cells
from .finetune import finetune_fit, tail_features
from .linear_head import fit_linear
from .recipe_search import Candidate, RecipeSearch, reusable_recipe
from .recipes import GPU_BUDGET_S, QUICK_CPU_BUDGET_S

__all__ = ["ClassifierResult", "Example", "TrainingDiverged", "reusable_recipe", "train_classifier"]


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
    evidence: doctor.Evidence  # what the model doctor diagnoses the data from
    config: dict = field(default_factory=dict)
    advice: dict | None = None  # the model doctor's advice.json, added by job.train once diagnosed


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
        return self.features[key]


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
    `resolution` overrides the backbone's pretraining resolution for the Quick recipes (tests use it).

    The phases: the problem and its folds (near duplicates share one) -> the frozen embeddings -> the recipe
    search (recipe_search.RecipeSearch) -> the chosen recipe fit on every image -> calibration on its
    out-of-fold predictions -> the model, its evaluation, sidecar and config."""
    started = time.monotonic()
    examples = list(examples)
    if len(examples) < 2:
        raise ValueError("at least two images are needed to train")
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    backbone = (backbone or backbones.DEFAULT).strip().lower().replace("-", "_")
    if backbone not in backbones.names():
        raise ValueError(f"unknown backbone {backbone!r}; valid names: {', '.join(backbones.names())}")
    if budget_seconds is None and not advanced:
        budget_seconds = QUICK_CPU_BUDGET_S if device == "cpu" else GPU_BUDGET_S
    problem = make_problem(examples, labels, multilabel, negative_index)
    cache = cache if cache is not None else MemoryFeatureCache()
    stats = doctor.stats_for(examples, cache)  # per-image statistics: near duplicates share a fold
    groups = doctor.duplicate_groups(stats)
    folds, k = assign_folds(problem.strata, seed, groups)
    emb = _Embeddings(examples, cache, device, progress)
    n = len(examples)
    progress(0.05, f"{n} images, {len(problem.regular)} tags, {k if k > 1 else 'held-out'} folds")

    search = RecipeSearch(
        problem,
        examples,
        emb,
        folds,
        k,
        device=device,
        seed=seed,
        started=started,
        deadline=started + budget_seconds if budget_seconds else None,
        progress=progress,
    )
    reuse, reuse_note = reusable_recipe(
        warm_start, advanced=advanced, n=n, tags=len(problem.regular), multilabel=multilabel
    )
    resolution = int(resolution or emb.backbone(backbone).spec.input_size)
    if reuse is not None:
        search.reuse(reuse, reuse_note)
    else:
        search.quick(backbone, resolution)
        if advanced:
            search.advanced(backbone)
    best = search.completed()
    timings = search.timings

    t = time.monotonic()
    progress(0.85, f"final fit ({best.recipe}, {best.backbone}@{best.resolution})")
    b = emb.backbone(best.backbone)
    gdim = global_dim(b)
    extractor, feats = _final_features(best, emb, problem, device, seed)
    std = Standardiser.fit(feats)
    z = std(feats)
    head = fit_linear(z, problem.y, multilabel=problem.multilabel, classes=problem.classes, c=best.c)
    bank = feature_bank(z[:, :gdim], has_regular(problem, np.arange(n)), np.random.default_rng(seed))
    timings["final fit"] = round(time.monotonic() - t, 3)

    cal = classification_eval.Calibration.fit(best, problem)
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
        oof=cal.oof_regular,
        c=best.c,
        gate=(cal.gate_centre, cal.gate_width),
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
        temperature=cal.temperature,
        bank=torch.from_numpy(bank),
        gate_centre=cal.gate_centre,
        gate_width=cal.gate_width,
        gate_dims=gdim,
    ).eval()

    evaluation, summary = classification_eval.evaluation(examples, problem, folds, k, best, cal)
    res = int(best.resolution)
    sidecar = artifacts.ModelSidecar(
        task=artifacts.CLASSIFICATION,
        labels=list(problem.labels),
        input_size=(res, res),
        mean=tuple(b.spec.mean),
        std=tuple(b.spec.std),
        backbone=best.backbone,
        dataset_hash=dataset_hash,
        classification_type="Multilabel" if multilabel else "Multiclass",
        default_threshold=0.5,
        thresholds={
            lab.tag_id: round(float(t), 4) for lab, t in zip(problem.labels, cal.thresholds, strict=True)
        },
        temperature=float(cal.temperature),
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
        "temperature": cal.temperature,
        "gate": {"centre": cal.gate_centre, "width": cal.gate_width, "bank": int(len(bank))},
        "warm_start": {
            "iteration_id": (warm_start or {}).get("iteration_id"),
            "reused": reuse is not None,
            "note": reuse_note,
        },
        "candidates": [c.describe() for c in search.candidates],
        "embedded_images": emb.computed,
        "timings": timings,
        "near_duplicate_images_grouped": int(len(groups) - len(np.unique(groups))),
    }
    progress(0.95, "trained")
    return ClassifierResult(
        model=model, sidecar=sidecar, evaluation=evaluation, config=config, evidence=evidence
    )


def _final_features(best: Candidate, emb: _Embeddings, problem: Problem, device: str, seed: int):
    """(the network that computes the chosen recipe's features, those features for every training image): the
    pretrained backbone for a linear head (the cached embeddings), or the backbone with its tail fine-tuned
    on every image."""
    b = emb.backbone(best.backbone)
    if best.recipe == "linear":
        feats = emb.get(best.backbone, best.resolution)
        cells = grid_cells(best.resolution) if best.variant == "grid" else 0
        if not cells:
            feats = feats[:, : global_dim(b)]
        return PooledFeatures(copy.deepcopy(b).cpu(), grid=cells).eval(), feats
    if best.views is None:
        raise ValueError(f"the {best.recipe} candidate has no fine-tuning views to fit")
    split, views = best.views
    all_rows = np.arange(len(problem.y))
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
    tuned = copy.deepcopy(b).cpu()
    for j, stage in enumerate(tail):
        tuned.stages[split.split + j] = copy.deepcopy(stage).cpu()
    return PooledFeatures(tuned).eval(), tail_features(split, tail, views, all_rows, device)
