"""The trainer's view of storage: the frozen dataset, image bytes, artifacts, the embedding cache, events,
and whether its iteration still exists. Built on cvcore.storage so paths and encodings are the shared ones."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
from azure.core.exceptions import ResourceNotFoundError
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

    def write_artifact(self, project_id: str, iteration_id: str, name: str, data: bytes, content_type: str) -> None:
        self._models.upload_blob(layout.iteration_artifact(project_id, iteration_id, name), data, overwrite=True,
                                 content_settings=ContentSettings(content_type=content_type))

    def write_json(self, project_id: str, iteration_id: str, name: str, value) -> None:
        self.write_artifact(project_id, iteration_id, name, json.dumps(value, indent=1).encode(), "application/json")

    def read_image(self, project_id: str, image_id: str) -> bytes:
        return self._images.download_blob(layout.image_original(project_id, image_id)).readall()

    def iteration_exists(self, project_id: str, iteration_id: str) -> bool:
        try:
            self._iterations.get_entity(project_id, iteration_id, select=["RowKey"])
            return True
        except ResourceNotFoundError:
            return False

    def emit(self, event: messages.TrainingEvent) -> None:
        self._events.send_message(messages.dumps(event))


class BlobFeatureCache:
    """Embeddings per (project, backbone, resolution, image id) as .npy blobs; ids are content addressed."""

    def __init__(self, store: TrainerStore, project_id: str):
        self._models = store._models
        self._project = project_id

    def _name(self, key) -> str:
        backbone, resolution, image_id = key
        return layout.embedding_cache(self._project, backbone, resolution, image_id)

    def get(self, key):
        try:
            return np.load(io.BytesIO(self._models.download_blob(self._name(key)).readall()), allow_pickle=False)
        except ResourceNotFoundError:
            return None
        except (ValueError, OSError) as exc:  # a damaged entry is recomputed, never trusted
            log.warning("embedding cache entry %s unreadable (%s); recomputing", key, exc)
            return None

    def put(self, key, array) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
        self._models.upload_blob(self._name(key), buffer.getvalue(), overwrite=True)
