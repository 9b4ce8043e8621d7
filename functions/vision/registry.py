"""Where Image Analysis datasets, models and evaluations are recorded: rows of the projects table, one partition
per kind (cvcore.layout.VISION_PARTITION_PREFIX + "dataset" / "model" / "evaluation:{model name}"), RowKey the
name, the record as JSON. A name is taken by an insert, so two registrations of one name cannot both win.
This is the port; adapters/vision_registry.py implements it on Table storage.

    registry.add(DATASET, "cats", record)          # AlreadyExists when the name is taken
    registry.get(DATASET, "cats")                  # the record, its "_etag" added; None when absent
    registry.replace(MODEL, "m1", record, etag)    # ConcurrencyError when the row changed meanwhile
"""

from __future__ import annotations

import abc

DATASET, MODEL = "dataset", "model"
ETAG = "_etag"


def evaluations_of(model_name: str) -> str:
    """The kind under which a model's evaluations are recorded."""
    return f"evaluation:{model_name}"


class AlreadyExists(Exception):
    """The name is taken."""


class VisionRegistry(abc.ABC):
    @abc.abstractmethod
    def get(self, kind: str, name: str) -> dict | None: ...

    @abc.abstractmethod
    def list(self, kind: str) -> list[dict]: ...

    @abc.abstractmethod
    def add(self, kind: str, name: str, record: dict) -> None: ...

    @abc.abstractmethod
    def replace(self, kind: str, name: str, record: dict, etag: str | None) -> None: ...

    @abc.abstractmethod
    def delete(self, kind: str, name: str) -> None:
        """Delete if present."""
