"""VisionRegistry on Table storage: Image Analysis datasets, models and evaluations as rows of the projects
table (functions/vision/registry.py describes the keys and the port)."""

from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from cvcore import layout

from ..domain.ports import ConcurrencyError
from ..vision.registry import ETAG, AlreadyExists, VisionRegistry
from .entities import get_json, put_json


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
