"""Frozen-backbone embeddings with a cache, so retraining after adding images only embeds the new ones.

Cache keys are (feature name, resolution, image key); image keys are content-addressed image ids, so an
entry never goes stale. The feature name says which backbone and which pooling made the vector
(`feature_name`), e.g. "mobilenet_v2-ms9": the pooled outputs of MobileNetV2's last 9 stages, concatenated
(mid-level stages help on images far from ImageNet, e.g. grey product photos).

Images are turned into tensors by cvcore.artifacts.preprocess, the same function the prediction route
uses, so an embedding here is exactly what the exported graph computes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from cvcore import artifacts

DEFAULT_STAGES = 9  # pooled outputs of the last 9 stages (MobileNetV2: 64..1280 channels, 2432 values)


class FeatureCache(Protocol):
    def get(self, key: tuple) -> np.ndarray | None: ...

    def put(self, key: tuple, array: np.ndarray) -> None: ...


class MemoryFeatureCache:
    """An in-process cache (tests, benchmarks, and the trainer when no blob cache is given)."""

    def __init__(self):
        self._items: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._items.get(tuple(key))
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return None if value is None else value.copy()

    def put(self, key, array) -> None:
        with self._lock:
            self._items[tuple(key)] = np.asarray(array, dtype=np.float32).copy()

    def __len__(self) -> int:
        return len(self._items)


class PooledFeatures(nn.Module):
    """Backbone -> concatenated global-average-pooled outputs of its last `stages` stages ([N, dim])."""

    def __init__(self, backbone, stages: int = DEFAULT_STAGES):
        super().__init__()
        self.backbone = backbone
        self.first = max(0, backbone.stage_count() - int(stages))

    @property
    def dim(self) -> int:
        with torch.no_grad():
            training = self.training
            self.eval()
            out = self(torch.zeros(1, 3, 64, 64)).shape[1]
            self.train(training)
        return out

    def forward(self, x: Tensor) -> Tensor:
        pooled = []
        for i, stage in enumerate(self.backbone.stages):
            x = stage(x)
            if i >= self.first:
                pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


def feature_name(backbone, stages: int = DEFAULT_STAGES) -> str:
    return f"{backbone.spec.name}-ms{int(stages)}"


def preprocess_spec(backbone, resolution: int):
    """What cvcore.artifacts.preprocess needs (input size, mean, std) for this backbone and resolution."""
    return SimpleNamespace(input_size=(int(resolution), int(resolution)), mean=tuple(backbone.spec.mean),
                           std=tuple(backbone.spec.std))


def images_to_tensor(images, backbone, resolution: int) -> Tensor:
    return torch.from_numpy(artifacts.preprocess(list(images), preprocess_spec(backbone, resolution)))


def embed(backbone, images, keys, cache: FeatureCache | None = None, resolution: int | None = None,
          device: str = "cpu", batch_size: int = 32, stages: int = DEFAULT_STAGES, progress=None) -> np.ndarray:
    """[len(images), dim] float32 pooled features; only keys missing from `cache` are computed (and stored).

    `images` may be a sequence of PIL images or a callable index -> image (so unneeded images need not be
    decoded). `progress(done, total)` is called after each computed batch."""
    keys = list(keys)
    resolution = int(resolution or backbone.spec.input_size)
    name = feature_name(backbone, stages)
    cache_keys = [(name, resolution, str(k)) for k in keys]
    get_image = images if callable(images) else (lambda i, _imgs=images: _imgs[i])
    found: list[np.ndarray | None] = [None] * len(keys)
    if cache is not None and keys:
        with ThreadPoolExecutor(8) as pool:
            found = list(pool.map(cache.get, cache_keys))
    missing = [i for i, v in enumerate(found) if v is None]
    if missing:
        extractor = PooledFeatures(backbone, stages).to(device).eval()
        puts = []
        with torch.no_grad(), ThreadPoolExecutor(8) as pool:
            for start in range(0, len(missing), batch_size):
                chunk = missing[start:start + batch_size]
                x = images_to_tensor([get_image(i) for i in chunk], backbone, resolution).to(device)
                out = extractor(x).float().cpu().numpy()
                for i, row in zip(chunk, out):
                    found[i] = row
                    if cache is not None:
                        puts.append(pool.submit(cache.put, cache_keys[i], row))
                if progress is not None:
                    progress(min(start + batch_size, len(missing)), len(missing))
            for p in puts:
                p.result()
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in found])
