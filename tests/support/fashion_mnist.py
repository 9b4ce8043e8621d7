"""Fashion-MNIST from Debian's dataset-fashion-mnist (real product photos, 28x28 grey, 10 classes)."""

from __future__ import annotations

import gzip
import io
import os
from functools import lru_cache

import numpy as np
from PIL import Image

ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def available() -> bool:
    return os.path.exists(os.path.join(ROOT, "train-images-idx3-ubyte.gz"))


@lru_cache(maxsize=2)
def load(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) for split 'train' or 't10k'."""
    if not available():
        raise FileNotFoundError(f"{ROOT} is missing: apt-get install dataset-fashion-mnist")
    with gzip.open(os.path.join(ROOT, f"{split}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(ROOT, f"{split}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def balanced_indices(labels: np.ndarray, per_class: int, seed: int = 0, exclude=()) -> list[int]:
    rng = np.random.default_rng(seed)
    excluded = set(exclude)
    out = []
    for c in range(len(CLASSES)):
        pool = [i for i in np.flatnonzero(labels == c) if i not in excluded]
        out += [int(i) for i in rng.choice(pool, per_class, replace=False)]
    return out


def as_rgb(image: np.ndarray, side: int = 64) -> Image.Image:
    """Upscaled to `side` (uploads need at least 50 px a side), RGB, as a person would upload it."""
    return Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC).convert("RGB")


def as_png(image: np.ndarray, side: int = 64) -> bytes:
    out = io.BytesIO()
    as_rgb(image, side).save(out, "PNG")
    return out.getvalue()
