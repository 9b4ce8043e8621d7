"""Frozen-backbone embeddings with a cache, so retraining after adding images only embeds the new ones.

Cache keys are (feature name, resolution, image key); image keys are content-addressed image ids, so an
entry never goes stale. The feature name says which backbone and which pooling made the vector
(`feature_name`), e.g. "mobilenet_v2-ms9g": [the globally pooled outputs of MobileNetV2's last 9 stages,
concatenated | the stride-16 map average-pooled to a small grid (7x7 at 224 px)]. Mid-level stages help on
images far from ImageNet, and the grid keeps where things are (aligned product photos, glyphs); a trainer
may use only the global part (`global_dim` values), e.g. for photos where position means nothing.

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

    # optional: `flush()`, called by `embed` once its new entries are all put (a store that batches writes)


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


MAX_GRID = 7


def grid_cells(resolution: int) -> int:
    """Cells per side of the stride-16 grid: the largest divisor of the map size that is at most 7, so the
    pooling is a plain AveragePool in ONNX (224 px -> 14x14 map -> 7x7 cells of 2x2)."""
    side = max(1, -(-int(resolution) // 16))
    return max(d for d in range(1, min(MAX_GRID, side) + 1) if side % d == 0)


def global_dim(backbone, stages: int = DEFAULT_STAGES) -> int:
    """How many leading values of an embedding are the globally pooled part."""
    channels = []
    for stage in list(backbone.stages)[max(0, backbone.stage_count() - int(stages)) :]:
        convs = [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)]
        channels.append(convs[-1].num_features)
    return int(sum(channels))


class PooledFeatures(nn.Module):
    """Backbone -> [global-average-pooled outputs of its last `stages` stages | (grid) the stride-16 map
    average-pooled to grid x grid cells], one vector per image."""

    def __init__(self, backbone, stages: int = DEFAULT_STAGES, grid: int = 0):
        super().__init__()
        self.backbone = backbone
        self.first = max(0, backbone.stage_count() - int(stages))
        self.grid = int(grid)
        self.tap = backbone._taps[16]

    def forward(self, x: Tensor) -> Tensor:
        pooled, cells = [], None
        for i, stage in enumerate(self.backbone.stages):
            x = stage(x)
            if i >= self.first:
                pooled.append(x.mean(dim=(2, 3)))
            if self.grid and i == self.tap:
                k = x.shape[-1] // self.grid
                cells = nn.functional.avg_pool2d(x, kernel_size=k, stride=k).flatten(1)
        if cells is not None:
            pooled.append(cells)
        return torch.cat(pooled, dim=1)


def feature_name(backbone, stages: int = DEFAULT_STAGES, grid: bool = True) -> str:
    """The cache name of a backbone's (or a registered backbone name's) pooled features."""
    name = backbone if isinstance(backbone, str) else backbone.spec.name
    return f"{name}-ms{int(stages)}{'g' if grid else ''}"


def preprocess_spec(backbone, resolution: int):
    """What cvcore.artifacts.preprocess needs (input size, mean, std) for this backbone and resolution."""
    return SimpleNamespace(
        input_size=(int(resolution), int(resolution)),
        mean=tuple(backbone.spec.mean),
        std=tuple(backbone.spec.std),
    )


def images_to_tensor(images, backbone, resolution: int) -> Tensor:
    return torch.from_numpy(artifacts.preprocess(list(images), preprocess_spec(backbone, resolution)))


_SESSIONS: dict[
    tuple, tuple
] = {}  # (id(backbone), feature name, resolution) -> (backbone, onnxruntime session)


def _onnx_extractor(backbone, resolution: int, stages: int, grid: int):
    """An onnxruntime session of PooledFeatures(backbone) for this resolution, or None where it cannot be made.
    On a CPU onnxruntime runs these networks about 5x faster than torch (depthwise convolutions)."""
    key = (id(backbone), feature_name(backbone, stages, bool(grid)), int(resolution))
    if key in _SESSIONS:
        return _SESSIONS[key][1]
    try:
        import io
        import warnings

        import onnxruntime as ort

        extractor = PooledFeatures(backbone, stages, grid).cpu().eval()
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                extractor,
                (torch.zeros(1, 3, resolution, resolution),),
                buffer,  # type: ignore[arg-type]  # a file object is fine (torch.onnx's stub says path)
                input_names=["image"],
                output_names=["features"],
                dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        options.log_severity_level = 3
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        import logging

        logging.getLogger(__name__).warning("onnxruntime embedding unavailable (%s); using torch", exc)
        session = None
    if len(_SESSIONS) > 8:
        _SESSIONS.clear()
    _SESSIONS[key] = (backbone, session)  # holding the backbone keeps its id unique while cached
    return session


def embed(
    backbone,
    images,
    keys,
    cache: FeatureCache | None = None,
    resolution: int | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    stages: int = DEFAULT_STAGES,
    progress=None,
    grid: bool = True,
) -> np.ndarray:
    """[len(images), dim] float32 pooled features; only keys missing from `cache` are computed (and stored).
    With `grid` the stride-16 grid follows the `global_dim(backbone, stages)` global values.

    `images` may be a sequence of PIL images or a callable index -> image (so unneeded images need not be
    decoded). `progress(done, total)` is called after each computed batch."""
    keys = list(keys)
    resolution = int(resolution or backbone.spec.input_size)
    name = feature_name(backbone, stages, grid)
    cells = grid_cells(resolution) if grid else 0
    cache_keys = [(name, resolution, str(k)) for k in keys]
    get_image = images if callable(images) else (lambda i, _imgs=images: _imgs[i])
    found: list[np.ndarray | None] = [None] * len(keys)
    if cache is not None and keys:
        with ThreadPoolExecutor(8) as pool:
            found = list(pool.map(cache.get, cache_keys))
    missing = [i for i, v in enumerate(found) if v is None]
    if missing:
        session = (
            _onnx_extractor(backbone, resolution, stages, cells)
            if device == "cpu" and not backbone.training
            else None
        )
        extractor = PooledFeatures(backbone, stages, cells).to(device).eval()
        puts = []
        chunks = [missing[start : start + batch_size] for start in range(0, len(missing), batch_size)]
        with torch.no_grad(), ThreadPoolExecutor(8) as pool, ThreadPoolExecutor(1) as ahead:
            # the next batch's images are read and decoded (8 at once) while this one runs through the model
            def load(chunk: list[int]) -> list:
                return list(pool.map(get_image, chunk))

            pending = ahead.submit(load, chunks[0])
            for k, chunk in enumerate(chunks):
                images_now = pending.result()
                if k + 1 < len(chunks):
                    pending = ahead.submit(load, chunks[k + 1])
                start = k * batch_size
                x = images_to_tensor(images_now, backbone, resolution)
                if session is not None:
                    out = session.run(["features"], {"image": x.numpy()})[0]
                else:
                    out = extractor(x.to(device)).float().cpu().numpy()
                for i, row in zip(chunk, out, strict=True):
                    found[i] = row
                    if cache is not None:
                        puts.append(pool.submit(cache.put, cache_keys[i], row))
                if progress is not None:
                    progress(min(start + batch_size, len(missing)), len(missing))
            for p in puts:
                p.result()
        if cache is not None and hasattr(cache, "flush"):
            cache.flush()
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in found])
