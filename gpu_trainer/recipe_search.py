"""The classifier's recipe search: which backbone, features, resolution and recipe (linear head or fine-tune)
a project trains with, chosen by cross-validation within the time budget.

One RecipeSearch per training holds what every candidate is scored against (the Problem, the folds, the
frozen embeddings, the budget clock) and what the search has found (the candidates, the best). Quick training
runs `quick` (or `reuse` for a retraining of a set that changed little); Advanced training then runs
`advanced` from Quick's choice. `completed` scores the chosen candidate on the folds it was not screened on,
so the evaluation covers every image.

One file because the searches are methods of one class: they share its budget
clock, folds and candidates; split apart, they would pass those back and forth as arguments.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import backbones, recipes
from .cv import Problem, score_gain
from .errors import TrainingDiverged
from .features import global_dim, images_to_tensor
from .finetune import (
    BackboneSplit,
    estimate_finetune_seconds,
    finetune_cv,
    finetune_step_seconds,
    prefix_views,
)
from .linear_head import linear_cv

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A recipe scored by cross-validation: its out-of-fold logits and gate similarities on the images it
    `evaluated`, and what the final fit needs to train it on every image."""

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
    y: np.ndarray | None = field(default=None, repr=False)  # multiclass targets, for describe()
    columns: slice | None = field(default=None, repr=False)  # linear: the embedding columns it reads
    screened: list[int] | None = field(default=None, repr=False)  # linear: the only folds scored so far
    views: tuple | None = field(
        default=None, repr=False
    )  # fine-tune: (BackboneSplit, views) for the final fit

    def describe(self) -> dict:
        idx = np.flatnonzero(self.evaluated)
        d = {
            "recipe": self.recipe,
            "backbone": self.backbone,
            "resolution": self.resolution,
            "c": self.c,
            "features": self.variant,
            "score": round(self.score, 5),
            "cv_top1": round(float(np.mean(self.logits[idx].argmax(axis=1) == self.y[idx])), 4)
            if self.y is not None and len(idx)
            else None,
            "seconds": round(self.seconds, 2),
        }
        if self.recipe == "finetune":
            d.update(epochs=self.epochs, unfreeze=self.unfreeze, lr=self.lr, folds_scored=self.compared_on)
        if self.scores:
            d["scores_by_c"] = {k: round(v, 5) for k, v in self.scores.items()}
        return d


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
    if not before or n > before * recipes.WARM_START_CHANGE or n * recipes.WARM_START_CHANGE < before:
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


class RecipeSearch:
    """Candidates scored on one set of folds against one budget clock; `best` is the one chosen so far.

    `emb` gives the frozen embeddings per (backbone, resolution) (classification._Embeddings); `started` (when
    the training began) and `deadline` (or None: no budget) are time.monotonic() values; `timings` collects
    each step's seconds for config.json."""

    def __init__(
        self,
        problem: Problem,
        examples,
        emb,
        folds: np.ndarray,
        k: int,
        *,
        device: str,
        seed: int,
        started: float,
        deadline: float | None,
        progress,
    ):
        self.problem, self.examples, self.emb, self.folds, self.k = problem, examples, emb, folds, k
        self.device, self.seed, self.progress = device, seed, progress
        self.started, self.deadline = started, deadline
        self.n = len(examples)
        self.candidates: list[Candidate] = []
        self.best: Candidate | None = None
        self.timings: dict[str, float] = {}
        # larger sets: candidates are compared on two folds, and only the chosen one is evaluated on all of them
        self.screen_folds = [0, 1] if self.n >= recipes.SCREEN_ABOVE and k > 2 else None
        self.export_reserve = (
            recipes.EXPORT_RESERVE_CPU_S if device == "cpu" else recipes.EXPORT_RESERVE_GPU_S
        )

    @property
    def chosen(self) -> Candidate:
        """The best candidate so far; a search starts with `quick` or `reuse`, which score the first."""
        if self.best is None:
            raise RuntimeError("no recipe scored yet: RecipeSearch.quick or .reuse comes first")
        return self.best

    def remaining(self) -> float:
        return (self.deadline - time.monotonic()) if self.deadline else float("inf")

    def _targets(self) -> np.ndarray | None:
        return None if self.problem.multilabel else self.problem.y

    # -- candidates -------------------------------------------------------------------------------------------

    def linear(self, name: str, resolution: int, only: str | None = None, grid=recipes.L2_GRID) -> Candidate:
        """Linear heads on the global features and on global + grid (or `only` one of them); returns the better
        candidate."""
        t = time.monotonic()
        feats = self.emb.get(name, resolution)
        self.timings[f"embed {name}@{resolution}"] = round(time.monotonic() - t, 3)
        gdim = global_dim(self.emb.backbone(name))
        found = []
        variants = [("global", slice(0, gdim))]
        if self.n <= recipes.GRID_MAX_IMAGES or self.device.startswith("cuda"):
            variants.append(("grid", slice(None)))
        if only is not None:
            variants = [v for v in variants if v[0] == only] or variants[:1]
        screen = self.screen_folds if only is None else None  # one candidate: no screening, all folds at once
        for variant, cols in variants:
            t = time.monotonic()
            r = linear_cv(
                feats[:, cols],
                self.problem,
                self.folds,
                self.k,
                grid=grid,
                seed=self.seed,
                gate_dims=gdim,
                fold_ids=screen,
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
                compared_on=len(screen) if screen is not None else self.k,
                y=self._targets(),
                columns=cols,
                screened=screen,
            )
            self.candidates.append(cand)
            found.append(cand)
            self.timings[f"cv linear {name}@{resolution} {variant}"] = round(cand.seconds, 3)
        return (
            found[-1]
            if len(found) > 1 and found[-1].score > found[0].score + recipes.FEATURE_VARIANT_MARGIN
            else found[0]
        )

    def finetune(
        self,
        name: str,
        resolution: int,
        unfreeze: int,
        epochs: int,
        lr: float,
        c: float,
        max_folds=None,
        reserve: float = 0.0,
    ) -> Candidate | None:
        """Score a fine-tune by CV (on at most `max_folds` folds); None when the measured cost of a training
        step says it cannot finish (CV plus the final fit) before the deadline less `reserve`."""
        t = time.monotonic()
        n, k = self.n, self.k
        b = self.emb.backbone(name)
        split = BackboneSplit(b, unfreeze)
        base = torch.cat(
            [
                images_to_tensor([self.examples[i].image for i in range(s, min(s + 64, n))], b, resolution)
                for s in range(0, n, 64)
            ]
        )
        views = prefix_views(split, base, recipes.FINETUNE_VIEWS, self.device, self.seed)
        folds_run = min(k, max_folds or k)
        per_step = finetune_step_seconds(split, views, self.problem, self.device)
        steps = epochs * math.ceil(n * (folds_run * (k - 1) / k + 1) / recipes.FINETUNE_BATCH)
        need = per_step * steps * recipes.FINETUNE_COST_FACTOR
        self.timings[f"finetune estimate {name}@{resolution} u{unfreeze} e{epochs}"] = round(need, 2)
        if self.deadline is not None and time.monotonic() + need > self.deadline - reserve:
            log.info("fine-tune %s@%d skipped: needs about %.0fs", name, resolution, need)
            return None
        r = finetune_cv(
            split,
            views,
            self.problem,
            self.folds,
            k,
            c=c,
            epochs=epochs,
            lr=lr,
            device=self.device,
            seed=self.seed,
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
            compared_on=int(len(np.unique(self.folds[r["evaluated"]]))),
            y=self._targets(),
            views=(split, views),
        )
        self.candidates.append(cand)
        self.timings[f"cv finetune {name}@{resolution} u{unfreeze} e{epochs}"] = round(cand.seconds, 3)
        return cand

    def gain(self, a: Candidate, b: Candidate) -> tuple[float, float]:
        """b's score minus a's on the images both evaluated, and its standard error (score_gain)."""
        both = np.flatnonzero(a.evaluated & b.evaluated)
        if not len(both):
            return -1e9, 0.0
        return score_gain(a.logits[both], b.logits[both], both, self.problem)

    # -- the searches -----------------------------------------------------------------------------------------

    def reuse(self, recipe: dict, note: str) -> Candidate:
        """A Quick retraining of a set that changed little: the previous iteration's recipe and C
        (reusable_recipe), scored on every fold."""
        best = self.best = self.linear(
            recipe["backbone"], recipe["resolution"], only=recipe["features"], grid=recipe["grid"]
        )
        self.progress(0.6, f"previous recipe ({note}): CV score {best.score:.3f}")
        return best

    def quick(self, backbone: str, resolution: int) -> Candidate:
        """Quick training's choice: a linear head on the project's backbone, on the other backbones where the
        budget allows (the project's own stays unless another is clearly better), then a fine-tune where the
        budget allows it (small sets, or a GPU). Advanced training starts from it and departs only beyond
        noise."""
        best = self.linear(backbone, resolution)
        self.best = best
        self.progress(0.45, f"linear head: CV score {best.score:.3f}")
        first_cost = time.monotonic() - self.started  # the training so far: statistics, embeddings, one CV
        for other in [name for name in backbones.names() if name != backbone]:
            remaining = self.remaining()
            if first_cost * recipes.BACKBONE_COST_FACTOR + self.export_reserve > remaining:
                log.info(
                    "backbone %s not tried: about %.0fs needed, %.0fs left",
                    other,
                    first_cost * recipes.BACKBONE_COST_FACTOR,
                    remaining,
                )
                break
            cand = self.linear(other, resolution)
            if self.gain(best, cand)[0] > recipes.BACKBONE_MARGIN:
                best = cand
                self.best = best
            self.progress(0.5, f"{other}: CV score {cand.score:.3f}")
        remaining = self.remaining()
        ft_res = (
            resolution if self.device.startswith("cuda") else min(resolution, recipes.FINETUNE_CPU_RESOLUTION)
        )
        unfreeze, epochs = recipes.FINETUNE_UNFREEZE, recipes.FINETUNE_EPOCHS
        est = estimate_finetune_seconds(
            self.n, ft_res, unfreeze, epochs, min(self.k, recipes.FINETUNE_QUICK_FOLDS), self.device
        )
        if self.k > 1 and est < remaining - self.export_reserve:
            tuned = self.finetune(
                best.backbone,
                ft_res,
                unfreeze,
                epochs,
                recipes.FINETUNE_LR,
                best.c,
                max_folds=recipes.FINETUNE_QUICK_FOLDS,
                reserve=self.export_reserve,
            )
            if tuned is not None:
                if self.gain(best, tuned)[0] > recipes.FINETUNE_MARGIN:
                    self.best = tuned
                self.progress(0.75, f"fine-tune: CV score {tuned.score:.3f}")
        else:
            log.info("fine-tune skipped: estimated %.0fs, %.0fs left", est, remaining)
        return self.chosen

    def advanced(self, backbone: str, patience: int = recipes.ADVANCED_PATIENCE) -> Candidate:
        """From Quick's choice (`best`), try the other backbones/resolutions (linear) and fine-tunes of growing
        depth/length not tried yet, until the budget runs out or `patience` candidates in a row do not improve
        it.

        A candidate replaces the best only when its gain exceeds one standard error of the paired per-image
        difference (and MIN_GAIN): the search compares a dozen candidates on ~100 images, and taking the
        highest score lets the noisiest win (measured on Fashion-MNIST 10/class: Advanced took a recipe 0.02
        better in CV and 0.03 worse on held-out images than Quick's). So the recipe it starts from stays unless
        another is better beyond noise: the one-standard-error rule of model selection."""
        best = self.chosen
        tried = {(c.recipe, c.backbone, c.resolution, c.unfreeze, c.epochs) for c in self.candidates}
        plan: list[tuple[str, str | None, int, int, int]] = []  # a fine-tune's backbone is the best's then
        for other in [backbone] + [b for b in backbones.names() if b != backbone]:
            for res in recipes.ADVANCED_RESOLUTIONS:
                if ("linear", other, res, 0, 0) not in tried:
                    plan.append(("linear", other, res, 0, 0))
        for unfreeze, epochs in recipes.ADVANCED_FINETUNES:
            if ("finetune", best.backbone, best.resolution, unfreeze, epochs) not in tried:
                # the resolution is the one the estimate assumes; the fine-tune runs at the best's own
                plan.append(("finetune", None, recipes.ADVANCED_RESOLUTIONS[0], unfreeze, epochs))
        stale = 0
        for i, (recipe, name, res, unfreeze, epochs) in enumerate(plan):
            if self.deadline is not None and time.monotonic() > self.deadline:
                break
            if stale >= patience:
                break
            cand: Candidate | None
            try:
                if recipe == "linear" and name is not None:
                    cand = self.linear(name, res)
                else:
                    if self.deadline is not None:
                        est = estimate_finetune_seconds(self.n, res, unfreeze, epochs, self.k, self.device)
                        if time.monotonic() + est > self.deadline:
                            continue
                    cand = self.finetune(
                        best.backbone, best.resolution, unfreeze, epochs, recipes.FINETUNE_LR, best.c
                    )
                    if cand is None:
                        continue
            except TrainingDiverged:
                stale += 1
                continue
            gain, se = self.gain(best, cand)
            if gain > max(recipes.MIN_GAIN, se):
                best, stale = cand, 0
            else:
                stale += 1
            self.progress(
                0.45 + 0.4 * (i + 1) / len(plan),
                f"search: best {best.recipe} {best.backbone}@{best.resolution} score {best.score:.3f}",
            )
        self.best = best
        return best

    def completed(self) -> Candidate:
        """The best candidate, scored on every fold: a linear head screened on two folds gets the others, at
        its chosen C, so the evaluation covers every image."""
        best = self.chosen
        if best.recipe != "linear" or best.screened is None:
            return best
        t = time.monotonic()
        r = linear_cv(
            self.emb.get(best.backbone, best.resolution)[:, best.columns or slice(None)],
            self.problem,
            self.folds,
            self.k,
            grid=(best.c,),
            seed=self.seed,
            gate_dims=global_dim(self.emb.backbone(best.backbone)),
            fold_ids=[f for f in range(self.k) if f not in best.screened],
        )
        rest = r["evaluated"]
        best.logits = np.where(rest[:, None], r["logits"], best.logits)
        best.similarity = np.where(rest, r["similarity"], best.similarity)
        best.evaluated = best.evaluated | rest
        best.compared_on = self.k
        best.screened = None
        self.timings["cv completion"] = round(time.monotonic() - t, 3)
        return best
