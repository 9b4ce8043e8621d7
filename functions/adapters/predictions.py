"""PredictionStore on Azure Storage: rows in the `predictions` table, images in the `predictions` container.

Each prediction is three rows in its project's partition with the same properties: RowKey = prediction id
(ids sort newest first, see layout.new_prediction_id), RowKey = layout.oldest_first_key(id) and RowKey =
layout.uncertain_first_key(uncertainty, id). So every order, a time window (a RowKey range, or a Created
filter on the uncertain rows) and a continuation token (the last key seen) are single range scans, and
Suggested reads its most uncertain candidates without the rest, ranking them from the uncertain rows' keys
and signatures alone (`brief`). The purge finds old records by their first row, across partitions.

Records never change once written (they are only deleted), so full records this process has read are kept
(`_Recent`, bounded by size) and serve `complete`: the rows a scan of the same request has just listed.
`get` always reads storage (it answers whether a record still exists).

A partition's INDEX row says that every record in it has its uncertain row. Projects whose predictions
were stored before those rows existed get them once, at their first uncertainty scan (`_ensure_index`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import islice

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from cvcore import layout

from ..domain.ports import BlobStore
from ..prediction.ports import PredictionStore, StoredPrediction
from .entities import BATCH, delete_rows, get_json, get_rows, put_json, utc

_PAGE = 500
_MAX_PAGE = 1000  # the most rows one Table query returns
_BRIEF = ["RowKey", "Signature"]  # enough to rank: the uncertain row's key holds the uncertainty and the id
RECENT_BYTES = 8 * 2**20  # the text of the full records kept for `complete` (most recently used)
INDEX = layout.UNCERTAIN_FIRST + "~index"  # after every uncertain row ('~' sorts after the hex digits)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _entity(record: StoredPrediction, row_key: str) -> dict:
    e = {
        "PartitionKey": record.project_id,
        "RowKey": row_key,
        "Id": record.id,
        "IterationId": record.iteration_id,
        "PublishName": record.publish_name,
        "Application": record.application,
        "Created": record.created,
        "Task": record.task,
        "Uncertainty": float(record.uncertainty),
        "Margin": float(record.margin),
        "Signature": record.signature,
        "Width": record.width,
        "Height": record.height,
        "ContentType": record.content_type,
    }
    put_json(e, "Predictions", record.predictions)
    put_json(e, "Extra", record.extra)
    return e


def _record(e) -> StoredPrediction:
    return StoredPrediction(
        id=e["Id"],
        project_id=e["PartitionKey"],
        iteration_id=e["IterationId"],
        publish_name=e.get("PublishName", ""),
        application=e.get("Application", ""),
        created=utc(e["Created"]),
        task=e["Task"],
        predictions=get_json(e, "Predictions", []),
        uncertainty=e.get("Uncertainty", 0.0),
        margin=e.get("Margin", 1.0),
        signature=e.get("Signature", ""),
        width=e.get("Width", 0),
        height=e.get("Height", 0),
        content_type=e.get("ContentType", ""),
        extra=get_json(e, "Extra", {}),
    )


def _brief(project_id: str, e) -> StoredPrediction:
    """A record enough to rank, from an uncertain row's key and signature: its created time is the id's."""
    uncertainty, prediction_id = layout.uncertain_first_parts(e["RowKey"])
    return StoredPrediction(
        id=prediction_id,
        project_id=project_id,
        iteration_id="",
        publish_name="",
        application="",
        created=datetime.fromtimestamp(layout.prediction_time_ms(prediction_id) / 1000, UTC),
        task="",
        predictions=[],
        uncertainty=uncertainty,
        signature=e.get("Signature", ""),
    )


class _Recent:
    """Full rows by (project, prediction id), the most recently used kept up to `budget` characters."""

    def __init__(self, budget: int = RECENT_BYTES):
        self._rows: OrderedDict[tuple[str, str], tuple[dict, int]] = OrderedDict()
        self._size, self._budget, self._lock = 0, budget, threading.Lock()

    def take(self, project_id: str, ids: Iterable[str]) -> dict[str, dict]:
        with self._lock:
            found = {}
            for i in ids:
                if (hit := self._rows.get((project_id, i))) is not None:
                    self._rows.move_to_end((project_id, i))
                    found[i] = hit[0]
            return found

    def keep(self, project_id: str, rows: Iterable[dict]) -> None:
        with self._lock:
            for e in rows:
                size = 256 + sum(len(v) for v in e.values() if isinstance(v, str))
                if (old := self._rows.pop((project_id, e["Id"]), None)) is not None:
                    self._size -= old[1]
                self._rows[(project_id, e["Id"])] = (e, size)
                self._size += size
            while self._size > self._budget and self._rows:
                self._size -= self._rows.popitem(last=False)[1][1]

    def drop(self, project_id: str, ids: Iterable[str] | None = None) -> None:
        with self._lock:
            keys = (
                [(project_id, i) for i in ids]
                if ids is not None
                else [k for k in self._rows if k[0] == project_id]
            )
            for k in keys:
                if (old := self._rows.pop(k, None)) is not None:
                    self._size -= old[1]


def _keys(prediction_id: str, uncertainty: float | None) -> list[str]:
    """A record's row keys (without the uncertain row when its uncertainty is not known: no record)."""
    keys = [prediction_id, layout.oldest_first_key(prediction_id)]
    return keys if uncertainty is None else [*keys, layout.uncertain_first_key(uncertainty, prediction_id)]


def entities(record: StoredPrediction) -> list[dict]:
    """The rows of one stored prediction (newest-first, oldest-first, most uncertain first), e.g. for bulk
    loading."""
    return [_entity(record, key) for key in _keys(record.id, record.uncertainty)]


class TablePredictionStore(PredictionStore):
    def __init__(self, service: TableServiceClient, blobs: BlobStore, pool: ThreadPoolExecutor):
        self._table = service.get_table_client(layout.PREDICTIONS_TABLE)
        self._blobs = blobs
        self._pool = pool
        self._indexed: set[str] = set()  # partitions whose INDEX row this process has seen
        self._legacy: set[str] = (
            set()
        )  # partitions seen with records and no INDEX row (indexed at first scan)
        self._recent = _Recent()

    def put_images(self, project_id, prediction_id, image, content_type, thumbnail) -> None:
        # both at once: the thumbnail on the pool (so never call this from a pool thread), the image here
        thumb = self._pool.submit(
            self._blobs.put,
            layout.PREDICTIONS,
            layout.prediction_thumbnail(project_id, prediction_id),
            thumbnail,
            "image/jpeg",
        )
        try:
            self._blobs.put(
                layout.PREDICTIONS, layout.prediction_image(project_id, prediction_id), image, content_type
            )
        finally:
            thumb.result()

    def add(self, record: StoredPrediction) -> None:
        # Single-row inserts at once cost a third of an entity-group transaction here; if any fails, the
        # others are taken back, so a record has all of its rows or none.
        self._ensure_index(record.project_id, adding=True)
        main, *others = entities(record)
        pending = [self._pool.submit(self._table.create_entity, e) for e in others]
        errors = []
        for create in (lambda: self._table.create_entity(main), *(p.result for p in pending)):
            try:
                create()
            except Exception as exc:
                errors.append(exc)
        if errors:
            delete_rows(self._table, record.project_id, _keys(record.id, record.uncertainty))
            raise errors[0]

    def _ensure_index(self, project_id: str, adding: bool = False) -> None:
        """Make sure every record of the partition has its uncertain row (see the module's docstring).
        Adding to a partition with no INDEX row: a new partition gets it at once; one with records from
        before waits for its first uncertainty scan, which writes the missing rows and then the INDEX."""
        if project_id in self._indexed or (adding and project_id in self._legacy):
            return
        try:
            self._table.get_entity(project_id, INDEX)
        except ResourceNotFoundError:
            older = self._table.query_entities(
                "PartitionKey eq @pk and RowKey lt @high",
                select=["RowKey"],
                parameters={"pk": project_id, "high": layout.NEWEST_END},
                results_per_page=1,
            )
            if next(iter(older), None) is not None:
                if adding:
                    self._legacy.add(project_id)
                    return
                rows = self.scan(project_id)
                while batch := list(islice(rows, BATCH)):
                    self._table.submit_transaction(
                        [
                            ("upsert", _entity(r, layout.uncertain_first_key(r.uncertainty, r.id)))
                            for r in batch
                        ]
                    )
            self._table.upsert_entity({"PartitionKey": project_id, "RowKey": INDEX})
        self._legacy.discard(project_id)
        self._indexed.add(project_id)

    def get(self, project_id: str, prediction_ids: Iterable[str]) -> dict[str, StoredPrediction]:
        ids = [i for i in prediction_ids if i < layout.NEWEST_END]  # prediction ids only, never another row
        rows = get_rows(self._table, project_id, ids)
        self._recent.keep(project_id, rows)
        found = {r.id: r for r in map(_record, rows)}
        self._recent.drop(project_id, [i for i in ids if i not in found])  # gone (deleted elsewhere)
        return found

    def complete(self, project_id: str, prediction_ids: Iterable[str]) -> dict[str, StoredPrediction]:
        ids = list(prediction_ids)
        kept = self._recent.take(project_id, ids)
        found = {i: _record(e) for i, e in kept.items()}
        return {**found, **self.get(project_id, [i for i in ids if i not in kept])}

    def scan(
        self,
        project_id,
        *,
        oldest_first=False,
        start=None,
        end=None,
        after=None,
        iteration_id=None,
        application=None,
        page=None,
    ) -> Iterator[StoredPrediction]:
        if oldest_first:
            low = layout.oldest_first_time_key(_ms(start)) if start else layout.OLDEST_FIRST
            high = layout.oldest_first_time_key(_ms(end)) if end else layout.OLDEST_FIRST + layout.NEWEST_END
            after_key = layout.oldest_first_key(after) if after else None
        else:
            low = layout.prediction_time_key(_ms(end) - 1) if end else ""
            high = layout.prediction_time_key(_ms(start) - 1) if start else layout.NEWEST_END
            after_key = layout.guid(after, "continuation") if after else None
        terms = ["PartitionKey eq @pk", "RowKey ge @low", "RowKey lt @high"]
        params = {"pk": project_id, "low": low, "high": high}
        for name, column, value in (
            ("after", "RowKey", after_key),
            ("it", "IterationId", iteration_id),
            ("app", "Application", application),
        ):
            if value is not None:
                terms.append(f"{column} {'gt' if name == 'after' else 'eq'} @{name}")
                params[name] = value
        return self._query(terms, params, page)

    def scan_uncertain(
        self,
        project_id,
        *,
        start=None,
        end=None,
        after=None,
        iteration_id=None,
        application=None,
        page=None,
        brief=False,
    ) -> Iterator[StoredPrediction]:
        self._ensure_index(project_id)
        low = layout.uncertain_first_key(after[0], after[1]) if after else layout.UNCERTAIN_FIRST
        terms = ["PartitionKey eq @pk", f"RowKey {'gt' if after else 'ge'} @low", "RowKey lt @high"]
        params = {"pk": project_id, "low": low, "high": layout.UNCERTAIN_FIRST + layout.NEWEST_END}
        for name, term, value in (
            ("start", "Created ge @start", start),
            ("end", "Created lt @end", end),
            ("it", "IterationId eq @it", iteration_id),
            ("app", "Application eq @app", application),
        ):
            if value is not None:
                terms.append(term)
                params[name] = value
        if brief:
            rows = self._rows(terms, params, page, _BRIEF)
            return (_brief(project_id, e) for e in rows)
        return self._query(terms, params, page)

    def _rows(self, terms: list[str], params: dict, page: int | None, select: list[str] | None = None):
        return self._table.query_entities(
            " and ".join(terms),
            parameters=params,
            select=select,
            results_per_page=min(page or _PAGE, _MAX_PAGE),
        )

    def _query(self, terms: list[str], params: dict, page: int | None) -> Iterator[StoredPrediction]:
        return (_record(e) for e in self._rows(terms, params, page))

    def delete(self, project_id: str, prediction_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(prediction_ids))
        found = self.get(project_id, ids)  # their uncertainty names their third row
        self._remove(project_id, {i: found[i].uncertainty if i in found else None for i in ids})

    def _remove(self, project_id: str, uncertainty: Mapping[str, float | None]) -> None:
        self._recent.drop(project_id, uncertainty)
        delete_rows(self._table, project_id, [k for i, u in uncertainty.items() for k in _keys(i, u)])
        self._delete_blobs([(project_id, i) for i in uncertainty])

    def delete_project(self, project_id: str) -> int:
        keys = [
            e["RowKey"]
            for e in self._table.query_entities(
                "PartitionKey eq @pk", select=["RowKey"], parameters={"pk": project_id}
            )
        ]
        self._recent.drop(project_id)
        delete_rows(self._table, project_id, keys, self._pool)
        self._indexed.discard(project_id)
        return sum(k < layout.NEWEST_END for k in keys)  # one main (prediction id) row per prediction

    def purge(self, before: datetime) -> int:
        rows = self._table.query_entities(
            "RowKey ge @low and RowKey lt @high",
            select=["PartitionKey", "Id", "Uncertainty"],
            parameters={"low": layout.prediction_time_key(_ms(before) - 1), "high": layout.NEWEST_END},
        )
        doomed: dict[str, dict[str, float]] = {}
        for e in rows:
            doomed.setdefault(e["PartitionKey"], {})[e["Id"]] = e.get("Uncertainty", 0.0)
        for project_id, records in doomed.items():
            self._remove(project_id, records)
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
