"""A bounded cache of loaded models: (project, iteration) -> onnxruntime session + sidecar.

The first call for an iteration loads `model.onnx` and `model.json` from Blob storage; concurrent first
calls wait for that one load (single flight); later calls reuse it. Bounded by count and by bytes of model
files, least recently used out first. An iteration id never changes its artifacts, so republishing another
iteration simply resolves to another key; `invalidate` drops one explicitly, and publish changes
(published.publish_changed: unpublish, republish, delete) drop the iterations they concern.

A model that cannot be loaded (missing or corrupt artifacts) raises `ModelUnavailable`; the failure is
remembered for FAILURE_TTL_S so a broken iteration does not re-download its blobs on every call, and a
publish change forgets it. Storage outages (any other AzureError) are raised as they are, not remembered.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError

from cvcore import artifacts, inference, layout

from .published import register

MAX_MODELS = 8
# Bytes of ONNX files; a loaded session holds about 3x its file in resident memory (benchmarks/prediction.py
# measured ~30 MB for a 9 MB MobileNetV2 classifier), so this is ~0.75 GB resident at most.
MAX_BYTES = 256 * 1024 * 1024
FAILURE_TTL_S = 10.0


class ModelUnavailable(Exception):
    """The iteration's model cannot be loaded: its artifacts are missing or not a valid model."""


@dataclass
class LoadedModel:
    session: object  # onnxruntime.InferenceSession
    sidecar: artifacts.ModelSidecar
    size: int


def _session(model_bytes: bytes):
    return inference.open_session(model_bytes, inference.host_cpus())


class ModelCache:
    def __init__(
        self,
        read_blob: Callable[[str, str], bytes],
        max_models: int = MAX_MODELS,
        max_bytes: int = MAX_BYTES,
        clock=time.monotonic,
    ):
        self._read = read_blob
        self._max_models, self._max_bytes = max_models, max_bytes
        self._items: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._failed: dict[tuple[str, str], tuple[float, str]] = {}  # key -> (until, why)
        self._lock = threading.Lock()
        self._clock = clock
        self.loads = 0
        register(self)

    def get(self, project_id: str, iteration_id: str) -> LoadedModel:
        key = (project_id, iteration_id)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one loader per key; the others wait here and then find it cached
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
                failed = self._failed.get(key)
            if failed and failed[0] > self._clock():
                raise ModelUnavailable(failed[1])
            try:
                model = self._load(project_id, iteration_id)
            except ModelUnavailable as exc:
                with self._lock:
                    self._failed[key] = (self._clock() + FAILURE_TTL_S, str(exc))
                raise
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._items[key] = model
                self._evict()
            return model

    def _artifact(self, project_id: str, iteration_id: str, name: str) -> bytes:
        try:
            return self._read(layout.MODELS, layout.iteration_artifact(project_id, iteration_id, name))
        except (ResourceNotFoundError, KeyError, FileNotFoundError):
            raise ModelUnavailable(f"{name} of iteration {iteration_id} is missing") from None

    def _load(self, project_id: str, iteration_id: str) -> LoadedModel:
        data = self._artifact(project_id, iteration_id, layout.MODEL_ONNX)
        raw_sidecar = self._artifact(project_id, iteration_id, layout.MODEL_SIDECAR)
        try:
            sidecar = artifacts.ModelSidecar.from_json(json.loads(raw_sidecar))
            model = LoadedModel(session=_session(data), sidecar=sidecar, size=len(data))
        except Exception as exc:
            raise ModelUnavailable(
                f"the model of iteration {iteration_id} is not valid: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
        self.loads += 1
        return model

    def _evict(self) -> None:
        while len(self._items) > 1 and (
            len(self._items) > self._max_models or sum(m.size for m in self._items.values()) > self._max_bytes
        ):
            self._items.popitem(last=False)

    def invalidate(self, project_id: str, iteration_id: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == project_id and iteration_id in (None, k[1])]:
                del self._items[key]
            for key in [k for k in self._failed if k[0] == project_id and iteration_id in (None, k[1])]:
                del self._failed[key]

    def on_publish_change(self, project_id: str, dropped: tuple[str, ...]) -> None:
        for iteration_id in dropped:
            self.invalidate(project_id, iteration_id)

    def __len__(self) -> int:
        return len(self._items)
