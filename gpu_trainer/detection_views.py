"""The detector's training views, computed once: a few box-preserving augmented views of every image (view 0
is the image exactly as `cvcore.artifacts.preprocess` feeds the exported graph), the frozen backbone's
stride-16 and stride-32 maps of each (float16, on the CPU) and their training targets, so every head
training (each fold, each recipe at this input size, the final model) reads them instead of the backbone.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from cvcore import artifacts

from .detection_augment import augment
from .detection_model import targets

if TYPE_CHECKING:
    from .detection import Recipe


class Cache:
    """Augmented views of every image, their backbone maps and their training targets."""

    def __init__(
        self,
        examples,
        sidecar,
        low,
        high,
        recipe: Recipe,
        num_labels: int,
        device: str,
        seed: int,
        progress,
        span: tuple[float, float],
    ):
        size = recipe.input_size
        per_image = max(1, min(recipe.views, recipe.max_views // max(1, len(examples))))
        rng = random.Random(f"views:{seed}")
        owner: list[int] = []  # the example each view comes from; an array once all are made
        self.boxes = []
        f16, f32 = [], []
        pending: list[np.ndarray] = []

        def flush():
            batch = torch.from_numpy(np.concatenate(pending)).to(device)
            pending.clear()
            with torch.inference_mode():
                c16 = low(batch)
                f16.append(c16.to(torch.float16).cpu())
                f32.append(high(c16).to(torch.float16).cpu())

        started = time.monotonic()
        for n, ex in enumerate(examples):
            work = ex.image if ex.image.mode == "RGB" else ex.image.convert("RGB")
            if max(work.size) > 2 * size:
                work = work.copy()
                work.thumbnail((2 * size, 2 * size), Image.Resampling.BILINEAR)
            for v in range(per_image):
                image, view_boxes = (ex.image, list(ex.boxes)) if v == 0 else augment(work, ex.boxes, rng)
                pending.append(artifacts.preprocess([image], sidecar))
                owner.append(n)
                self.boxes.append(view_boxes)
                if len(pending) == 16:
                    flush()
            if n % 8 == 7:
                progress(
                    span[0] + (span[1] - span[0]) * (n + 1) / len(examples),
                    f"backbone features: {n + 1}/{len(examples)} images",
                )
        if pending:
            flush()
        self.f16 = torch.cat(f16)
        self.f32 = torch.cat(f32)
        self.owner = np.asarray(owner)
        self.first_view = {n: int(np.flatnonzero(self.owner == n)[0]) for n in range(len(examples))}
        h, w = self.f16.shape[-2:]
        t = [targets(b, num_labels, h, w) for b in self.boxes]
        self.heat = torch.stack([x[0] for x in t])
        self.box_t = torch.stack([x[1] for x in t])
        self.weight = torch.stack([x[2] for x in t])
        self.per_image = per_image
        self.seconds = time.monotonic() - started
