"""The trainer's view of storage: the frozen dataset, image bytes, artifacts, the embedding cache, events,
and whether its iteration still exists. Built on cvcore.storage so paths and encodings are the shared ones."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable

import numpy as np
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from cvcore import layout, messages
from cvcore.storage import StorageClients

log = logging.getLogger(__name__)


class TrainerStore:
    def __init__(self, clients: StorageClients):
        self.clients = clients
        self._models = clients.blob.get_container_client(layout.MODELS)
        self._images = clients.blob.get_container_client(layout.IMAGES)
        self._iterations = clients.table.get_table_client(layout.ITERATIONS_TABLE)
        self._events = clients.queue(layout.TRAINING_EVENTS)

    def read_model_blob(self, name: str) -> bytes:
        return self._models.download_blob(name).readall()

    def exists(self, name: str) -> bool:
        return self._models.get_blob_client(name).exists()

    def write_artifact(
        self, project_id: str, iteration_id: str, name: str, data: bytes, content_type: str
    ) -> None:
        self._models.upload_blob(
            layout.iteration_artifact(project_id, iteration_id, name),
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
        )

    def write_json(self, project_id: str, iteration_id: str, name: str, value) -> None:
        self.write_artifact(
            project_id, iteration_id, name, json.dumps(value, indent=1).encode(), "application/json"
        )

    def read_image(self, project_id: str, image_id: str) -> bytes:
        return self._images.download_blob(layout.image_original(project_id, image_id)).readall()

    def field_images(self, project_id: str, limit: int) -> list[tuple[str, Callable[..., bytes]]]:
        """The newest `limit` stored prediction images of the project as (prediction id, loader of the bytes):
        prediction ids sort newest first, so the first names listed are the newest."""
        container = self.clients.blob.get_container_client(layout.PREDICTIONS)
        prefix = layout.prediction_image(project_id, layout.new_id()).rsplit("/", 1)[0] + "/"
        out = []
        try:
            for blob in container.list_blobs(name_starts_with=prefix, results_per_page=limit):
                prediction_id = blob.name[len(prefix) :]
                out.append((prediction_id, lambda name=blob.name: container.download_blob(name).readall()))
                if len(out) >= limit:
                    break
        except HttpResponseError as exc:  # the doctor's drift check is optional: never fail a training for it
            log.warning("stored predictions of %s not listed: %s", project_id, exc)
        return out

    def iteration_exists(self, project_id: str, iteration_id: str) -> bool:
        try:
            self._iterations.get_entity(project_id, iteration_id, select=["RowKey"])
            return True
        except ResourceNotFoundError:
            return False

    def emit(self, event: messages.TrainingEvent | messages.ExportEvent) -> None:
        self._events.send_message(messages.dumps(event))


class BlobFeatureCache:
    """Embeddings per (project, feature, resolution) in one .npz blob each ("ids", "features"): a retraining
    reads one blob per feature instead of one per image. Entries are keyed by content-addressed image ids.

    `get` loads a pack on first use; `put` adds to it in memory; `flush` writes the changed packs back,
    keeping the entries used in this run (and older ones while the pack is at most twice that size)."""

    def __init__(self, store: TrainerStore, project_id: str):
        self._models = store._models
        self._project = project_id
        self._packs: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self._used: dict[tuple[str, int], set[str]] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _pack(self, feature: str, resolution: int) -> dict[str, np.ndarray]:
        key = (feature, int(resolution))
        with self._lock:
            if key in self._packs:
                return self._packs[key]
            pack: dict[str, np.ndarray] = {}
            name = layout.embedding_pack(self._project, feature, resolution)
            try:
                with np.load(io.BytesIO(self._models.download_blob(name).readall()), allow_pickle=False) as z:
                    ids, features = z["ids"], z["features"]
                    if features.ndim != 2 or len(ids) != len(features):
                        raise ValueError(f"ids {ids.shape} do not match features {features.shape}")
                    pack = {str(i): row for i, row in zip(ids, features, strict=True)}
            except ResourceNotFoundError:
                pass
            except (ValueError, OSError, KeyError) as exc:  # a damaged pack is recomputed, never trusted
                log.warning("embedding cache %s unreadable (%s); recomputing", name, exc)
            self._packs[key], self._used[key] = pack, set()
            return pack

    def get(self, key):
        feature, resolution, image_id = key
        pack = self._pack(feature, resolution)
        with self._lock:
            self._used[(feature, int(resolution))].add(str(image_id))
            row = pack.get(str(image_id))
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            return row.copy()

    def put(self, key, array) -> None:
        feature, resolution, image_id = key
        pack = self._pack(feature, resolution)
        with self._lock:
            pack[str(image_id)] = np.asarray(array, dtype=np.float32).copy()
            self._used[(feature, int(resolution))].add(str(image_id))
            self._dirty.add((feature, int(resolution)))

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = sorted(self._dirty), set()
            snapshots = []
            for key in dirty:
                pack, used = self._packs[key], self._used[key]
                if len(pack) > 2 * max(len(used), 1):
                    pack = self._packs[key] = {i: v for i, v in pack.items() if i in used}
                ids = sorted(pack)
                snapshots.append(
                    (key, ids, np.stack([pack[i] for i in ids]) if ids else np.zeros((0, 0), np.float32))
                )
        for (feature, resolution), ids, features in snapshots:
            buffer = io.BytesIO()
            np.savez(buffer, ids=np.array(ids, dtype=str), features=features.astype(np.float32, copy=False))
            self._models.upload_blob(
                layout.embedding_pack(self._project, feature, resolution), buffer.getvalue(), overwrite=True
            )
