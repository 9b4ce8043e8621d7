"""The "finetune" recipe: the last stages of the backbone fine-tuned with augmentation from the linear head
(LP-FT), BatchNorm in eval mode, the frozen prefix's outputs for a few views computed once (prefix_views).
"""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import calibration
from .classifier_model import Standardiser, signed_sqrt
from .cv import Problem, cv_score, feature_bank, fit_targets, fold_splits, has_regular
from .errors import TrainingDiverged
from .features import DEFAULT_STAGES
from .linear_head import class_weights, fit_linear, head_logits
from .recipes import FINETUNE_BATCH, FINETUNE_VIEWS

log = logging.getLogger(__name__)


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


class BackboneSplit:
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

    def suffix(self, tail: nn.Sequential, h: Tensor, pooled: Tensor) -> Tensor:
        out = [pooled] if pooled.shape[1] else []
        for j, stage in enumerate(tail):
            h = stage(h)
            if self.split + j >= self.first:
                out.append(h.mean(dim=(2, 3)))
        return torch.cat(out, dim=1)


def prefix_views(split: BackboneSplit, base: Tensor, views: int, device: str, seed: int, batch: int = 32):
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
                maps.append(m.cpu())
                pooled.append(p.cpu())
            out.append((torch.cat(maps), torch.cat(pooled)))
    return out


def finetune_fit(
    split: BackboneSplit,
    views,
    train: np.ndarray,
    problem: Problem,
    *,
    c: float,
    epochs: int,
    lr: float,
    device: str,
    seed: int,
    batch_size: int = FINETUNE_BATCH,
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
        std(f0), fit_targets(problem, train), multilabel=problem.multilabel, classes=problem.classes, c=c
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
    y = torch.from_numpy(np.asarray(fit_targets(problem, train)))
    sw = (
        None
        if problem.multilabel
        else torch.from_numpy(
            class_weights(np.asarray(fit_targets(problem, train)), problem.classes).astype(np.float32)
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
            h = torch.stack([views[int(vi)][0][int(r)] for vi, r in zip(v, rows, strict=True)]).to(device)
            pooled = torch.stack([views[int(vi)][1][int(r)] for vi, r in zip(v, rows, strict=True)]).to(
                device
            )
            feats = split.suffix(tail, h, pooled)
            z = (signed_sqrt(feats) - mean) * scale
            logits = z @ w.t() + b
            if problem.multilabel or sw is None:  # sw is None exactly when multilabel
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


def finetune_step_seconds(
    split: BackboneSplit, views, problem: Problem, device: str, batch_size: int = FINETUNE_BATCH
) -> float:
    """Seconds one fine-tuning step (forward + backward through the tail, one batch) takes here, measured."""
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


def tail_features(
    split: BackboneSplit, tail: nn.Sequential, views, rows: np.ndarray, device: str, batch: int = 64
):
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            r = torch.from_numpy(rows[s : s + batch])
            out.append(split.suffix(tail, views[0][0][r].to(device), views[0][1][r].to(device)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def finetune_cv(
    split: BackboneSplit,
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
    for count, (f, train, test) in enumerate(fold_splits(folds, k)):
        if max_folds is not None and count >= max_folds:
            break
        tail = finetune_fit(
            split, views, train, problem, c=c, epochs=epochs, lr=lr, device=device, seed=seed + f
        )
        ftr, fte = (
            tail_features(split, tail, views, train, device),
            tail_features(split, tail, views, test, device),
        )
        std = Standardiser.fit(ftr)
        ztr, zte = std(ftr), std(fte)
        head = fit_linear(
            ztr, fit_targets(problem, train), multilabel=problem.multilabel, classes=problem.classes, c=c
        )
        logits[test] = head_logits(zte, head)
        sims[test] = calibration.max_similarity(
            calibration.l2_normalise(zte), feature_bank(ztr, has_regular(problem, train), rng)
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


def estimate_finetune_seconds(
    n: int, resolution: int, unfreeze: int, epochs: int, folds: int, device: str, views: int = FINETUNE_VIEWS
) -> float:
    """Rough CPU cost (2 cores): the prefix once per view, the tail per epoch; a GPU is ~30x faster. Used
    before anything is measured, to skip a fine-tune that cannot fit the budget at all."""
    px = (resolution / 224.0) ** 2
    prefix = n * views * 0.02 * px
    tail = n * epochs * 0.012 * px * (unfreeze / 5.0) * (folds + 1)
    total = prefix + tail
    return total / 30.0 if device.startswith("cuda") else total
