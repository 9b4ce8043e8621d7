"""Where Image Analysis datasets, models and evaluations are recorded: rows of the projects table, one partition
per kind (cvcore.layout.VISION_PARTITION_PREFIX + "dataset" / "model" / "evaluation:{model name}"), RowKey the
name, the record as JSON. A name is taken by an insert, so two registrations of one name cannot both win.

    registry.add(DATASET, "cats", record)          # AlreadyExists when the name is taken
    registry.get(DATASET, "cats")                  # the record, its "_etag" added; None when absent
    registry.replace(MODEL, "m1", record, etag)    # ConcurrencyError when the row changed meanwhile
"""

from __future__ import annotations

import abc

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from cvcore import layout

from ..adapters.entities import get_json, put_json
from ..domain.ports import ConcurrencyError

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


class TableVisionRegistry(VisionRegistry):
    def __init__(self, service: TableServiceClient):
        self._table = service.get_table_client(layout.PROJECTS_TABLE)

    @staticmethod
    def _entity(kind: str, name: str, record: dict) -> dict:
        entity = {"PartitionKey": layout.VISION_PARTITION_PREFIX + kind, "RowKey": name}
        put_json(entity, "Record", {k: v for k, v in record.items() if k != ETAG})
        return entity

    @staticmethod
    def _record(entity) -> dict:
        return {**get_json(entity, "Record", {}), ETAG: entity.metadata.get("etag")}

    def get(self, kind: str, name: str) -> dict | None:
        try:
            return self._record(self._table.get_entity(layout.VISION_PARTITION_PREFIX + kind, name))
        except ResourceNotFoundError:
            return None

    def list(self, kind: str) -> list[dict]:
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": layout.VISION_PARTITION_PREFIX + kind}
        )
        return [self._record(e) for e in rows]

    def add(self, kind: str, name: str, record: dict) -> None:
        try:
            self._table.create_entity(self._entity(kind, name, record))
        except ResourceExistsError:
            raise AlreadyExists(name) from None

    def replace(self, kind: str, name: str, record: dict, etag: str | None) -> None:
        try:
            self._table.update_entity(
                self._entity(kind, name, record),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrencyError(f"{kind} {name} changed meanwhile") from exc

    def delete(self, kind: str, name: str) -> None:
        try:
            self._table.delete_entity(layout.VISION_PARTITION_PREFIX + kind, name)
        except ResourceNotFoundError:
            pass
