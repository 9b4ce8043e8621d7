"""A bounded cache of loaded models: (project, iteration) -> onnxruntime session + sidecar.

The first call for an iteration loads `model.onnx` and `model.json` from Blob storage; concurrent first
calls wait for that one load (single flight); later calls reuse it. Bounded by count and by bytes of model
files, least recently used out first. An iteration id never changes its artifacts, so republishing another
iteration simply resolves to another key; `invalidate` drops one explicitly (unpublish, delete).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from cvcore import artifacts, layout

MAX_MODELS = 8
MAX_BYTES = 512 * 1024 * 1024


@dataclass
class LoadedModel:
    session: object  # onnxruntime.InferenceSession
    sidecar: artifacts.ModelSidecar
    size: int


def _session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


class ModelCache:
    def __init__(self, read_blob: Callable[[str, str], bytes], max_models: int = MAX_MODELS,
                 max_bytes: int = MAX_BYTES):
        self._read = read_blob
        self._max_models, self._max_bytes = max_models, max_bytes
        self._items: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0

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
            try:
                model = self._load(project_id, iteration_id)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._items[key] = model
                self._evict()
            return model

    def _load(self, project_id: str, iteration_id: str) -> LoadedModel:
        data = self._read(layout.MODELS, layout.iteration_artifact(project_id, iteration_id, layout.MODEL_ONNX))
        sidecar = artifacts.ModelSidecar.from_json(json.loads(self._read(
            layout.MODELS, layout.iteration_artifact(project_id, iteration_id, layout.MODEL_SIDECAR))))
        model = LoadedModel(session=_session(data), sidecar=sidecar, size=len(data))
        self.loads += 1
        return model

    def _evict(self) -> None:
        while len(self._items) > 1 and (len(self._items) > self._max_models
                                        or sum(m.size for m in self._items.values()) > self._max_bytes):
            self._items.popitem(last=False)

    def invalidate(self, project_id: str, iteration_id: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == project_id and iteration_id in (None, k[1])]:
                del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
