"""Object detection training: a light CenterNet-style head (gpu_trainer/detection_model.py) on an ImageNet
backbone, trained on Custom Vision's normalised regions, evaluated as Custom Vision reports it.

Recipe (Quick): the backbone is frozen; every image is turned into a few box-preserving augmented views
(mirror, zoom in/out, aspect and colour jitter; view 0 is the image exactly as `cvcore.artifacts.preprocess`
feeds the exported graph) and the backbone's stride-16 and stride-32 maps of each view are computed once
and cached (detection_views.Cache), so the head trains in seconds per fold on a CPU. On a CPU, Quick caps
the views (720 in all) and fits the head trainings into recipes.DETECTION_QUICK_CPU_BUDGET_S (the step time
is measured, and re-measured after each training); on a GPU it trains longer on more views. Advanced also
tries training the backbone's stride-32 stages on top of the cached stride-16 maps (at 320 and 416 px) and
keeps the recipe with the best cross-validated mAP@50 within its budget (the grid is in recipes.py).

Evaluation (detection_eval.py): k-fold cross-validation (k = 3 for Quick, 5 for Advanced, fewer with fewer
images; folds balanced by each image's first tag); every image is scored by the model that did not see it.
Above HOLDOUT_ABOVE images one held-out split (20%) replaces the k folds; its images are then spread over 3
pseudo-folds for the standard deviations. Out-of-fold detections fit the score calibration (Platt scaling
of the peak logit, baked into the graph) and the per-tag recommended thresholds (best F1 at IoU 0.5);
mAP@30/50/75 come from pycocotools; per-tag precision / recall / average precision at any threshold from
cvcore.boxes.detection_performance.

NMS: the graph does 3x3 max-pool peak extraction, top-100 and a class-wise fast NMS at NMS_IOU (the
sidecar's `nms_iou`); cvcore.boxes.postprocess applies greedy class-wise NMS at the same IoU after the
graph, in the evaluation here and in the prediction route.

One file because what is left is the head's training and the recipe choice around it
(train_head, the step planner, the cross-validation loop, train_detector), which all read one Recipe and
one Cache; the model, the views and the evaluation are their own modules.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from cvcore import artifacts
from cvcore import boxes as boxops

from . import backbones
from .detection_eval import HOLDOUT_ABOVE, assign_folds, coco_maps, out_of_fold_report
from .detection_model import (
    STRIDE,
    TOP_K,
    Decode,
    Detector,
    Head,
    channels,
    focal_loss,
    giou_loss,
    split_trunk,
)
from .detection_views import Cache
from .errors import TrainingDiverged  # the one class job.py catches
from .recipes import (
    DETECTION_ADVANCED_FOLDS,
    DETECTION_INPUT_SIZE,
    DETECTION_LARGE_INPUT_SIZE,
    DETECTION_LONG_SCHEDULE,
    DETECTION_QUICK_CPU_BUDGET_S,
    DETECTION_QUICK_CPU_MAX_VIEWS,
)

OUTPUT_NAMES = ("boxes", "scores", "labels")  # the graph's outputs (cvcore/artifacts.py), for export_onnx
NMS_IOU = 0.5
MIN_SCORE = 0.01  # out-of-fold detections kept in evaluation.json
GIOU_WEIGHT = 5.0
MIN_STEPS = 100  # under time pressure a training still gets this many (fewer localise boxes badly)


@dataclass
class DetExample:
    image: Image.Image  # RGB
    boxes: list[tuple[int, float, float, float, float]]  # (label index, left, top, width, height), 0..1
    key: str = ""


@dataclass
class DetectorResult:
    model: torch.nn.Module
    sidecar: artifacts.ModelSidecar
    evaluation: dict
    config: dict
    advice: dict | None = None  # the model doctor's advice.json, added by job.train once diagnosed


@dataclass
class Recipe:
    input_size: int = 320
    views: int = 6  # per image, view 0 unaugmented
    max_views: int = 4000  # in all (memory; on CPU also time: about 40 ms of backbone per view at 320 px)
    trainable: str = "head"  # "head": frozen backbone; "high": also the backbone's stride-32 stages
    width: int = 96
    epochs: int = 25
    min_steps: int = 150
    max_steps: int = 500
    batch: int = 16
    lr: float = 2e-3
    backbone_lr: float = 3e-4
    weight_decay: float = 1e-4
    folds: int = 3

    def name(self) -> str:
        return f"{self.trainable}@{self.input_size}"


# -- training -----------------------------------------------------------------------------------------


def _fresh_high(high: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(high)


def train_head(
    cache: Cache,
    views: np.ndarray,
    high,
    recipe: Recipe,
    num_labels: int,
    steps: int,
    device: str,
    seed: int,
    c16: int,
    c32: int,
):
    """Train a fresh head (and for "high" a copy of the stride-32 stages) on the cached views `views`."""
    torch.manual_seed(seed)
    head = Head(c16, c32, num_labels, recipe.width).to(device)
    params = [{"params": head.parameters(), "lr": recipe.lr}]
    tuned = None
    if recipe.trainable == "high":
        tuned = _fresh_high(high).to(device)
        tuned.eval()  # BatchNorm keeps its ImageNet statistics; only the weights move
        for p in tuned.parameters():
            p.requires_grad_(True)
        params.append({"params": tuned.parameters(), "lr": recipe.backbone_lr})
    opt = torch.optim.AdamW(params, weight_decay=recipe.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    warm = max(1, min(30, steps // 10))
    rng = np.random.default_rng(seed)
    order: list[int] = []
    head.train()
    for step in range(steps):
        if step < warm:
            scale = (step + 1) / warm
        else:
            scale = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * max(scale, 0.02)
        if len(order) < recipe.batch:
            order.extend(rng.permutation(views).tolist())
        idx, order = order[: recipe.batch], order[recipe.batch :]
        f16 = cache.f16[idx].to(device).float()
        f32 = cache.f32[idx].to(device).float() if tuned is None else tuned(f16)
        heat_logits, reg = head(f16, f32)
        loss = focal_loss(heat_logits, cache.heat[idx].to(device)) + GIOU_WEIGHT * giou_loss(
            reg, cache.box_t[idx].to(device), cache.weight[idx].to(device)
        )
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"detection loss {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 10.0)
        opt.step()
    head.eval()
    return head, tuned


@torch.inference_mode()
def predict_cached(cache: Cache, head, tuned, views: list[int], device: str, decode: Decode) -> list[list]:
    """Decoded, post-processed detections for the given cached views (raw scores when decode is identity)."""
    out = []
    for start in range(0, len(views), 32):
        idx = views[start : start + 32]
        f16 = cache.f16[idx].to(device).float()
        f32 = cache.f32[idx].to(device).float() if tuned is None else tuned(f16)
        b, s, lab = decode(*head(f16, f32))
        for i in range(len(idx)):
            out.append(
                boxops.postprocess(
                    b[i].cpu().numpy(),
                    s[i].cpu().numpy(),
                    lab[i].cpu().numpy(),
                    nms_iou=decode.nms_iou,
                    min_score=MIN_SCORE,
                    max_detections=TOP_K,
                )
            )
    return out


# -- the entry point ----------------------------------------------------------------------------------


class StepPlanner:
    """Steps for each training so that the trainings left fit before `end`, at most the recipe's wish and
    at least MIN_STEPS; the step time is re-measured after every training (other work shares the CPU)."""

    def __init__(self, recipe: Recipe, per_step: float, end: float, fixed: int | None = None):
        self.recipe, self.per_step, self.end, self.fixed = recipe, per_step, end, fixed

    def __call__(self, n_views: int, trainings_left: int) -> int:
        wanted = self.fixed if self.fixed is not None else _steps(self.recipe, n_views)
        if self.fixed is not None or not math.isfinite(self.end):
            return wanted
        affordable = (self.end - time.monotonic()) / max(1, trainings_left) / self.per_step
        return int(max(MIN_STEPS, min(wanted, affordable)))

    def record(self, steps: int, seconds: float) -> None:
        if steps > 0:
            self.per_step = max(1e-4, seconds / steps)


def step_seconds(
    cache: Cache, high, recipe: Recipe, num_labels: int, device: str, c16: int, c32: int
) -> float:
    """Seconds per training step of this recipe here (a few throwaway steps, timed)."""
    views = np.arange(min(len(cache.owner), recipe.batch))
    train_head(cache, views, high, recipe, num_labels, 1, device, 0, c16, c32)  # warm-up
    t = time.monotonic()
    train_head(cache, views, high, recipe, num_labels, 3, device, 0, c16, c32)
    return max(1e-4, (time.monotonic() - t) / 3)


def _recipes(advanced: bool, device: str, input_size: int | None) -> list[Recipe]:
    size = input_size or DETECTION_INPUT_SIZE
    if not advanced:
        if device == "cpu":
            return [Recipe(input_size=size, max_views=DETECTION_QUICK_CPU_MAX_VIEWS)]
        return [Recipe(input_size=size, **DETECTION_LONG_SCHEDULE)]
    long = dict(DETECTION_LONG_SCHEDULE, folds=DETECTION_ADVANCED_FOLDS)
    tried = [
        Recipe(input_size=size, **long),
        Recipe(input_size=size, trainable="high", **long),
        Recipe(input_size=input_size or DETECTION_LARGE_INPUT_SIZE, trainable="high", **long),
    ]
    return list({r.name(): r for r in tried}.values())


def _steps(recipe: Recipe, n_views: int) -> int:
    return int(min(recipe.max_steps, max(recipe.min_steps, recipe.epochs * n_views / recipe.batch)))


def _evaluate(
    examples,
    cache: Cache,
    folds: np.ndarray,
    high,
    recipe: Recipe,
    labels,
    device,
    seed,
    c16,
    c32,
    step_plan,
    progress,
    span,
) -> tuple[list[dict], dict]:
    """Out-of-fold detections (raw scores) for every evaluated image."""
    fold_ids = sorted({int(f) for f in folds if f >= 0})
    train_groups = [[f] for f in fold_ids] if len(examples) <= HOLDOUT_ABOVE else [fold_ids]
    identity = Decode(TOP_K, NMS_IOU).to(device)
    detections: dict[int, list] = {}
    steps_used = []
    for g, held in enumerate(train_groups):
        held_out = np.isin(folds, held)
        train_views = np.flatnonzero(~held_out[cache.owner])
        if not len(train_views) or not held_out.any():
            continue
        steps = step_plan(len(train_views), len(train_groups) - g + 1)
        t = time.monotonic()
        head, tuned = train_head(
            cache, train_views, high, recipe, len(labels), steps, device, seed + 1 + g, c16, c32
        )
        step_plan.record(steps, time.monotonic() - t)
        steps_used.append(steps)
        members = np.flatnonzero(held_out)
        views = [cache.first_view[int(n)] for n in members]
        found = predict_cached(cache, head, tuned, views, device, identity)
        detections.update(zip(members.tolist(), found, strict=True))
        progress(
            span[0] + (span[1] - span[0]) * (g + 1) / len(train_groups),
            f"cross-validation: fold {g + 1}/{len(train_groups)} ({recipe.name()})",
        )
    images = []
    for n in sorted(detections):
        ex = examples[n]
        images.append(
            {
                "key": ex.key,
                "fold": int(folds[n]),
                "width": ex.image.width,
                "height": ex.image.height,
                "truth": [[int(b[0]), *map(float, b[1:])] for b in ex.boxes],
                "detections": [[d[0], d[1], *d[2:]] for d in detections[n]],
            }
        )
    return images, {"steps_per_fold": steps_used}


def train_detector(
    examples,
    labels: list[artifacts.Label],
    *,
    backbone: str = "mobilenet_v2",
    advanced: bool = False,
    budget_seconds: float | None = None,
    device: str = "cpu",
    progress=lambda fraction, message: None,
    seed: int = 0,
    dataset_hash: str = "",
    input_size: int | None = None,
    steps: int | None = None,
) -> DetectorResult:
    """Train a detector on `examples` (boxes normalised ltwh with label indices into `labels`).

    `input_size` (square side, a multiple of 16) and `steps` (head steps per training) override the
    recipe; tests use them to stay small."""
    started = time.monotonic()
    if input_size is not None and input_size % STRIDE:
        raise ValueError(f"input_size must be a multiple of {STRIDE}")
    examples = list(examples)
    if not examples:
        raise ValueError("no images to train on")
    torch.manual_seed(seed)
    budget = budget_seconds if budget_seconds else (DETECTION_QUICK_CPU_BUDGET_S if device == "cpu" else None)
    deadline = started + budget if budget else math.inf
    net = backbones.create(backbone, pretrained=True).to(device)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    low, high = split_trunk(net)
    c16 = channels(low, 3)
    c32 = channels(high, c16)
    candidates = _recipes(advanced, device, input_size)
    if steps is not None:
        for r in candidates:
            r.min_steps = r.max_steps = steps
    results = []
    caches: dict[int, Cache] = {}
    plan_of: dict[str, StepPlanner] = {}
    for ci, recipe in enumerate(candidates):
        if ci and time.monotonic() > started + 0.5 * (deadline - started):
            break  # keep at least half the budget for what was found so far and the final training
        sidecar = artifacts.ModelSidecar(
            task=artifacts.DETECTION,
            labels=list(labels),
            input_size=(recipe.input_size, recipe.input_size),
            mean=tuple(net.spec.mean),
            std=tuple(net.spec.std),
            backbone=net.spec.name,
            dataset_hash=dataset_hash,
            max_detections=TOP_K,
            nms_iou=NMS_IOU,
        )
        share = 1.0 / len(candidates)
        span = (0.05 + 0.85 * ci * share, 0.05 + 0.85 * (ci + 0.3) * share)
        if recipe.input_size not in caches:
            caches[recipe.input_size] = Cache(
                examples, sidecar, low, high, recipe, len(labels), device, seed, progress, span
            )
        cache = caches[recipe.input_size]
        k = max(2, min(recipe.folds, len(examples))) if len(examples) >= 2 else 0
        folds = assign_folds(examples, k, seed) if k else np.zeros(len(examples), dtype=np.int64)
        per_step = step_seconds(cache, high, recipe, len(labels), device, c16, c32)
        # this candidate's share of the budget; later candidates are skipped when time runs short
        end = deadline
        if math.isfinite(deadline):
            end = started + (deadline - started) * (ci + 1) / len(candidates)
        plan = StepPlanner(recipe, per_step, end, fixed=steps)
        images, info = (
            ([], {})
            if not k
            else _evaluate(
                examples,
                cache,
                folds,
                high,
                recipe,
                labels,
                device,
                seed,
                c16,
                c32,
                plan,
                progress,
                (span[1], 0.05 + 0.85 * (ci + 0.9) * share),
            )
        )
        info["step_seconds"] = plan.per_step
        maps = coco_maps(images, len(labels)) if images else {"map30": 0.0, "map50": 0.0, "map75": 0.0}
        results.append((recipe, sidecar, images, maps, k, info))
        plan_of[recipe.name()] = plan
    recipe, sidecar, images, maps, k, info = max(results, key=lambda r: r[3]["map50"])
    cache = caches[recipe.input_size]

    progress(0.9, f"training the final model ({recipe.name()})")
    all_views = np.arange(len(cache.owner))
    final_plan = plan_of[recipe.name()]
    final_plan.end = deadline  # the final model may use all that is left; it never trains less than a fold
    final_steps = max(final_plan(len(all_views), 1), max(info.get("steps_per_fold") or [0]))
    head, tuned = train_head(cache, all_views, high, recipe, len(labels), final_steps, device, seed, c16, c32)

    evaluation, calibration, sidecar.thresholds, sidecar.metrics = out_of_fold_report(
        images, labels, maps, k, len(examples)
    )
    sidecar.default_threshold = 0.5
    model = Detector(low, tuned if tuned is not None else high, head, Decode(TOP_K, NMS_IOU, calibration))
    model = model.cpu().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    config = {
        "task": artifacts.DETECTION,
        "recipe": asdict(recipe),
        "backbone": net.spec.name,
        "head": "CenterNet-style (TTFNet gaussian targets, GIoU) on stride 16 + stride 32 (FPN step)",
        "nms": f"3x3 max-pool peaks, top-{TOP_K}, class-wise fast NMS at IoU {NMS_IOU} in the graph; "
        "greedy class-wise NMS at the same IoU after it (cvcore.boxes.postprocess)",
        "calibration": list(calibration),
        "views_per_image": cache.per_image,
        "feature_seconds": cache.seconds,
        "final_steps": final_steps,
        **info,
        "candidates": [{"recipe": r[0].name(), **r[3]} for r in results],
        "validation": evaluation["validation"],
        "folds": evaluation["folds"],
        "seconds": time.monotonic() - started,
        "device": device,
    }
    progress(1.0, "detector trained")
    return DetectorResult(model=model, sidecar=sidecar, evaluation=evaluation, config=config)
