"""PredictionStore on Azure Storage: rows in the `predictions` table, images in the `predictions` container.

Each prediction is two rows in its project's partition with the same properties: RowKey = prediction id
(ids sort newest first, see layout.new_prediction_id) and RowKey = layout.oldest_first_key(id). So both
orders, a time window (a RowKey range) and a continuation token (the last id seen) are single range
scans. The purge finds old records by their first row, across partitions.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Iterable, Iterator

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from cvcore import layout

from ..adapters.entities import delete_rows, get_json, put_json, utc
from ..training.ports import BlobStore
from .ports import PredictionStore, StoredPrediction

_PAGE = 500
_HEX_END = "g"  # sorts after every hex digit: the end of the oldest-first key space after '~'


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _entity(record: StoredPrediction, row_key: str) -> dict:
    e = {"PartitionKey": record.project_id, "RowKey": row_key, "Id": record.id, "IterationId": record.iteration_id,
         "PublishName": record.publish_name, "Application": record.application, "Created": record.created,
         "Task": record.task, "Uncertainty": float(record.uncertainty), "Margin": float(record.margin),
         "Signature": record.signature, "Width": record.width, "Height": record.height,
         "ContentType": record.content_type}
    put_json(e, "Predictions", record.predictions)
    put_json(e, "Extra", record.extra)
    return e


def _record(e) -> StoredPrediction:
    return StoredPrediction(
        id=e["Id"], project_id=e["PartitionKey"], iteration_id=e["IterationId"], publish_name=e.get("PublishName", ""),
        application=e.get("Application", ""), created=utc(e["Created"]), task=e["Task"],
        predictions=get_json(e, "Predictions", []), uncertainty=e.get("Uncertainty", 0.0), margin=e.get("Margin", 1.0),
        signature=e.get("Signature", ""), width=e.get("Width", 0), height=e.get("Height", 0),
        content_type=e.get("ContentType", ""), extra=get_json(e, "Extra", {}))


def _keys(prediction_id: str) -> list[str]:
    return [prediction_id, layout.oldest_first_key(prediction_id)]


def entities(record: StoredPrediction) -> list[dict]:
    """The rows of one stored prediction (newest-first and oldest-first), e.g. for bulk loading."""
    return [_entity(record, key) for key in _keys(record.id)]


class TablePredictionStore(PredictionStore):
    def __init__(self, service: TableServiceClient, blobs: BlobStore, pool: ThreadPoolExecutor):
        self._table = service.get_table_client(layout.PREDICTIONS_TABLE)
        self._blobs = blobs
        self._pool = pool

    def put_images(self, project_id, prediction_id, image, content_type, thumbnail) -> None:
        # both at once: the thumbnail on the pool (so never call this from a pool thread), the image here
        thumb = self._pool.submit(self._blobs.put, layout.PREDICTIONS,
                                  layout.prediction_thumbnail(project_id, prediction_id), thumbnail, "image/jpeg")
        try:
            self._blobs.put(layout.PREDICTIONS, layout.prediction_image(project_id, prediction_id), image, content_type)
        finally:
            thumb.result()

    def add(self, record: StoredPrediction) -> None:
        # Two single-row inserts at once cost a third of an entity-group transaction here; if either fails,
        # the other is taken back, so a record has both of its rows or none.
        main, mirror = (_entity(record, key) for key in _keys(record.id))
        pending = self._pool.submit(self._table.create_entity, mirror)
        errors = []
        for create in (lambda: self._table.create_entity(main), pending.result):
            try:
                create()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the compensation
                errors.append(exc)
        if errors:
            delete_rows(self._table, record.project_id, _keys(record.id))
            raise errors[0]

    def get(self, project_id: str, prediction_ids: Iterable[str]) -> dict[str, StoredPrediction]:
        def one(prediction_id: str):
            try:
                return _record(self._table.get_entity(project_id, prediction_id))
            except ResourceNotFoundError:
                return None

        found = self._pool.map(one, list(dict.fromkeys(prediction_ids)))
        return {r.id: r for r in found if r is not None}

    def scan(self, project_id, *, oldest_first=False, start=None, end=None, after=None, iteration_id=None,
             application=None) -> Iterator[StoredPrediction]:
        if oldest_first:
            low = layout.oldest_first_time_key(_ms(start)) if start else layout.OLDEST_FIRST
            high = layout.oldest_first_time_key(_ms(end)) if end else layout.OLDEST_FIRST + _HEX_END
            after_key = layout.oldest_first_key(after) if after else None
        else:
            low = layout.prediction_time_key(_ms(end) - 1) if end else ""
            high = layout.prediction_time_key(_ms(start) - 1) if start else layout.OLDEST_FIRST
            after_key = layout.guid(after, "continuation") if after else None
        terms = ["PartitionKey eq @pk", "RowKey ge @low", "RowKey lt @high"]
        params = {"pk": project_id, "low": low, "high": high}
        for name, column, value in (("after", "RowKey", after_key), ("it", "IterationId", iteration_id),
                                    ("app", "Application", application)):
            if value is not None:
                terms.append(f"{column} {'gt' if name == 'after' else 'eq'} @{name}")
                params[name] = value
        rows = self._table.query_entities(" and ".join(terms), parameters=params, results_per_page=_PAGE)
        return (_record(e) for e in rows)

    def delete(self, project_id: str, prediction_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(prediction_ids))
        delete_rows(self._table, project_id, [k for i in ids for k in _keys(i)])
        self._delete_blobs([(project_id, i) for i in ids])

    def delete_project(self, project_id: str) -> int:
        keys = [e["RowKey"] for e in self._table.query_entities("PartitionKey eq @pk", select=["RowKey"],
                                                                parameters={"pk": project_id})]
        delete_rows(self._table, project_id, keys, self._pool)
        return sum(not k.startswith(layout.OLDEST_FIRST) for k in keys)  # one main row per prediction

    def purge(self, before: datetime) -> int:
        rows = self._table.query_entities("RowKey ge @low and RowKey lt @high", select=["PartitionKey", "Id"],
                                          parameters={"low": layout.prediction_time_key(_ms(before) - 1),
                                                      "high": layout.OLDEST_FIRST})
        doomed: dict[str, list[str]] = {}
        for e in rows:
            doomed.setdefault(e["PartitionKey"], []).append(e["Id"])
        for project_id, ids in doomed.items():
            self.delete(project_id, ids)
        return sum(len(ids) for ids in doomed.values())

    def _delete_blobs(self, pairs: list[tuple[str, str]]) -> None:
        def drop(pair):
            self._blobs.delete(layout.PREDICTIONS, layout.prediction_image(*pair))
            self._blobs.delete(layout.PREDICTIONS, layout.prediction_thumbnail(*pair))

        list(self._pool.map(drop, pairs))

    def image_url(self, project_id: str, prediction_id: str) -> str:
        return self._blobs.url(layout.PREDICTIONS, layout.prediction_image(project_id, prediction_id))

    def thumbnail_url(self, project_id: str, prediction_id: str) -> str:
        return self._blobs.url(layout.PREDICTIONS, layout.prediction_thumbnail(project_id, prediction_id))
