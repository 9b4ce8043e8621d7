"""What every check reads: the Evidence the classifier training hands over, the Finding each check returns,
and the cheap per-image statistics (a perceptual hash, a thumbnail, the border's colours, size and format)
with the slices that say where each sits in an image_stats vector.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

LISTED_IMAGES = 20  # image ids per finding
DOCTOR_STATS = "doctor-stats-v3"  # name of the per-image statistics in the feature cache
BORDER = 0.12  # the outer band (fraction of each side) taken as "background"
THUMB = 16
# Where each statistic sits in an image_stats vector.
HASH = slice(0, 64)
THUMBNAIL = slice(64, 64 + THUMB * THUMB)
_AFTER = 64 + THUMB * THUMB
BACKGROUND = slice(_AFTER, _AFTER + 6)  # border band RGB mean, std
COLOURS = slice(_AFTER + 6, _AFTER + 12)  # whole image RGB mean, std
FILE = slice(_AFTER + 12, _AFTER + 16)  # width, height, aspect, format code
SIDES = slice(_AFTER + 16, _AFTER + 28)  # RGB mean of the top, bottom, left and right border bands


@dataclass
class Finding:
    kind: str
    severity: str
    message: str
    tags: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    prediction_ids: list[str] = field(default_factory=list)  # stored predictions it is about (drift)


@dataclass
class Evidence:
    """What the classifier training hands the doctor (classification.train_classifier)."""

    features: np.ndarray  # [n, d] standardised global embeddings of the chosen backbone
    folds: np.ndarray  # fold per image (-1: training only)
    k: int
    y: np.ndarray  # multiclass: regular-tag position per image (R = none / Negative); multilabel: [n, R] 0/1
    regular_names: list[str]
    multilabel: bool
    oof: np.ndarray  # [n, R] out-of-fold probabilities of the regular tags (NaN rows: not evaluated)
    c: float  # the chosen L2 strength
    gate: tuple[float, float]  # (centre, width) of the familiarity gate
    gate_dims: int
    has_negative: bool
    stats: np.ndarray | None = None  # image_stats per image, when the training computed them
    folds_ungrouped: np.ndarray | None = (
        None  # the folds the training would have used without duplicate groups
    )
    # (image loader by index, keys) -> features like `features` (stored predictions' images)
    embed: Callable[[Callable[[int], Image.Image], list[str]], np.ndarray] | None = None


def image_stats(image: Image.Image, fmt: str | None = None) -> np.ndarray:
    """float32 [348]: 64 bits of difference hash, a 16x16 grey thumbnail (zero mean, unit norm), border colour
    mean/std (RGB), whole-image colour mean/std, width, height, aspect, a format code, and the colour of each
    side's border band: the object masked out and the rest blurred to four patches (see the slices)."""
    grey = image.convert("L")
    g = np.asarray(grey.resize((9, 8), Image.Resampling.BILINEAR), np.float32)
    bits = (g[:, 1:] > g[:, :-1]).reshape(-1).astype(np.float32)
    thumb = np.asarray(grey.resize((THUMB, THUMB), Image.Resampling.BILINEAR), np.float32).reshape(-1)
    thumb = thumb - thumb.mean()
    thumb = thumb / max(float(np.linalg.norm(thumb)), 1e-6)
    rgb = np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), np.float32) / 255.0
    b = max(1, int(round(64 * BORDER)))
    band = np.concatenate(
        [
            rgb[:b].reshape(-1, 3),
            rgb[-b:].reshape(-1, 3),
            rgb[b:-b, :b].reshape(-1, 3),
            rgb[b:-b, -b:].reshape(-1, 3),
        ]
    )
    whole = rgb.reshape(-1, 3)
    w, h = image.size
    code = format_code(fmt or image.format)
    sides = [
        rgb[:b].reshape(-1, 3).mean(0),
        rgb[-b:].reshape(-1, 3).mean(0),
        rgb[:, :b].reshape(-1, 3).mean(0),
        rgb[:, -b:].reshape(-1, 3).mean(0),
    ]
    return np.concatenate(
        [
            bits,
            thumb,
            band.mean(0),
            band.std(0),
            whole.mean(0),
            whole.std(0),
            [w, h, w / max(h, 1), code],
            *sides,
        ]
    ).astype(np.float32)


def format_code(fmt: str | None) -> float:
    return {"JPEG": 1.0, "PNG": 2.0, "BMP": 3.0, "GIF": 4.0, "WEBP": 5.0, "TIFF": 6.0}.get(
        (fmt or "").upper(), 0.0
    )


def stats_for(examples, cache=None, threads: int = 4) -> np.ndarray:
    """image_stats for each example, through the feature cache (a retraining does not load images again)."""

    def one(ex):
        key = (DOCTOR_STATS, 0, str(ex.key))
        found = cache.get(key) if cache is not None else None
        if found is not None:
            return found
        value = image_stats(ex.image)
        if cache is not None:
            cache.put(key, value)
        return value

    with ThreadPoolExecutor(threads) as pool:
        out = np.stack(list(pool.map(one, examples)))
    if cache is not None and hasattr(cache, "flush"):
        cache.flush()
    return out
