"""A project's image rows in the images table, with counts kept beside them and listings served from memory.

Counts: each project partition holds SHARDS counter rows ("~counts-0" .. "~counts-7", after every GUID
RowKey) with the images, tagged images and images per tag they add up to. Every write of image rows
changes one shard (picked at random, so concurrent writers seldom meet) in the SAME entity-group transaction,
conditional on the shard's ETag: the counts change exactly when the rows do, so they cannot drift, and a
conflict is retried. A project that has no shards yet (made before them) is counted once from its rows, and
no image row is written until its shards exist, so the first count includes every row once.

Listings: the shards' ETags together are the partition's version. A process keeps the rows it listed (up
to CACHE_IMAGES across projects, least recently used dropped) and serves the next listing from memory while
the version is unchanged; its own writes are applied to the copy when nothing else wrote in between, and
anything else makes it read the rows again. One small query (the shards) per listing instead of a scan.
"""

from __future__ import annotations

import builtins  # ImageRows.list shadows the builtin in its class body, so later annotations name it so
import dataclasses
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from ..domain.ports import ConcurrencyError
from ..domain.records import ImageCounts, ImageRecord
from .entities import BATCH, get_json, get_rows, image_entity, image_record, put_json

SHARD_PREFIX = "~counts-"
SHARD_END = "~counts."  # the first key after every shard
ROWS_END = "~"  # image RowKeys (GUIDs) sort before it
SHARDS = 8
CACHE_IMAGES = 300_000
ATTEMPTS = 12
_IF_MATCH = MatchConditions.IfNotModified


def _shard_entity(project_id: str, key: str, counts: ImageCounts) -> dict:
    e = {"PartitionKey": project_id, "RowKey": key, "Images": counts.images, "Tagged": counts.tagged}
    put_json(e, "PerTag", counts.per_tag)
    return e


def _counts(e) -> ImageCounts:
    return ImageCounts(int(e.get("Images", 0)), int(e.get("Tagged", 0)), get_json(e, "PerTag", {}))


def _etag(e) -> str:
    return e.metadata["etag"]


def _version(shards: dict) -> tuple:
    return tuple(sorted((k, _etag(e)) for k, e in shards.items()))


def _copy(im: ImageRecord, etag: str | None = None) -> ImageRecord:
    return dataclasses.replace(
        im,
        tags=dict(im.tags),
        regions=list(im.regions),
        metadata=dict(im.metadata),
        etag=etag if etag is not None else im.etag,
    )


@dataclasses.dataclass
class _Listing:
    version: tuple
    records: dict[str, ImageRecord]  # by id


class ImageRows:
    def __init__(self, table, pool: ThreadPoolExecutor, cache_images: int = CACHE_IMAGES):
        self._table, self._pool = table, pool
        self._cache: OrderedDict[str, _Listing] = OrderedDict()
        self._cache_images = cache_images
        self._lock = threading.Lock()

    # --- reading ----------------------------------------------------------------------------------------

    def counts(self, project_id: str) -> ImageCounts:
        total = ImageCounts()
        for e in self._ensure_shards(project_id).values():
            total = total + _counts(e)
        return total

    def list(self, project_id: str) -> list[ImageRecord]:
        shards = self._ensure_shards(project_id)
        version = _version(shards)
        with self._lock:
            hit = self._cache.get(project_id)
            if hit is not None and hit.version == version:
                self._cache.move_to_end(project_id)
                return list(hit.records.values())
        records = self._scan(project_id)
        # Keep the copy only if nothing was written while it was read (then it is exactly that version).
        if _version(self._shards(project_id)) == version:
            self._remember(project_id, _Listing(version, {im.id: im for im in records}))
        return records

    def get(self, project_id: str, image_ids: Iterable[str]) -> dict[str, ImageRecord]:
        ids = [i for i in dict.fromkeys(image_ids) if i < ROWS_END]
        return {r.id: r for r in map(image_record, get_rows(self._table, project_id, ids))}

    # --- writing ----------------------------------------------------------------------------------------

    def add(self, project_id: str, images: builtins.list[ImageRecord]) -> set[str]:
        existed: set[str] = set()
        for i in range(0, len(images), BATCH - 1):
            todo = images[i : i + BATCH - 1]
            while todo:
                try:
                    self._transact(
                        project_id,
                        [("create", image_entity(project_id, im)) for im in todo],
                        ImageCounts.of(todo),
                        self._adding(todo),
                    )
                    break
                except TableTransactionError:  # some rows exist already (a retried request, a race)
                    have = set(self.get(project_id, [im.id for im in todo]))
                    if not have:
                        raise
                    existed |= have
                    todo = [im for im in todo if im.id not in have]
        return existed

    def update(self, project_id: str, image: ImageRecord) -> None:
        try:
            before = image_record(self._table.get_entity(project_id, image.id))
        except ResourceNotFoundError as exc:
            raise ConcurrencyError(str(exc)) from exc
        if image.etag is not None and before.etag != image.etag:
            raise ConcurrencyError(f"image {image.id} changed since it was read")
        op = (
            "update",
            image_entity(project_id, image),
            {"mode": UpdateMode.REPLACE, "etag": before.etag, "match_condition": _IF_MATCH},
        )
        try:
            self._transact(
                project_id, [op], ImageCounts.of([image]) - ImageCounts.of([before]), self._replacing(image)
            )
        except TableTransactionError as exc:
            raise ConcurrencyError(str(exc)) from exc

    def delete(self, project_id: str, image_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(image_ids))
        for i in range(0, len(ids), BATCH - 1):
            chunk = ids[i : i + BATCH - 1]
            for _ in range(ATTEMPTS):
                rows = self.get(project_id, chunk)
                if not rows:
                    break
                ops = [
                    (
                        "delete",
                        {"PartitionKey": project_id, "RowKey": im.id},
                        {"etag": im.etag, "match_condition": _IF_MATCH},
                    )
                    for im in rows.values()
                ]
                try:
                    self._transact(
                        project_id, ops, -ImageCounts.of(rows.values()), self._removing(list(rows))
                    )
                    break
                except TableTransactionError:  # a row changed or went meanwhile: read them again
                    continue
            else:
                raise ConcurrencyError("images kept changing while they were deleted")

    # --- internals --------------------------------------------------------------------------------------

    def _scan(self, project_id: str) -> builtins.list[ImageRecord]:
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey lt @end", parameters={"pk": project_id, "end": ROWS_END}
        )
        return [image_record(e) for e in rows]

    def _shards(self, project_id: str) -> dict:
        # one range query: an index seek on Azure Tables, whatever the partition's size (Azurite scans it)
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": project_id, "lo": SHARD_PREFIX, "hi": SHARD_END},
        )
        return {e["RowKey"]: e for e in rows}

    def _ensure_shards(self, project_id: str) -> dict:
        shards = self._shards(project_id)
        if len(shards) == SHARDS:
            return shards
        # First use in this project: count its rows once, then create every shard in one transaction (if
        # another process won that race, its shards are the ones read back).
        start = ImageCounts.of(self._scan(project_id)) if not shards else ImageCounts()
        entities = [
            _shard_entity(project_id, f"{SHARD_PREFIX}{k}", start if k == 0 else ImageCounts())
            for k in range(SHARDS)
            if f"{SHARD_PREFIX}{k}" not in shards
        ]
        try:
            self._table.submit_transaction([("create", e) for e in entities])
        except TableTransactionError:
            pass
        return self._shards(project_id)

    def _transact(self, project_id: str, ops: builtins.list, delta: ImageCounts, apply: Callable) -> None:
        """Submit `ops` with the counts moved by `delta` on one shard, retrying shard conflicts. Raises
        TableTransactionError when an operation of `ops` itself was refused."""
        for attempt in range(ATTEMPTS):
            shards = self._ensure_shards(project_id)
            key = random.choice(sorted(shards))
            shard = shards[key]
            update = (
                "update",
                _shard_entity(project_id, key, _counts(shard) + delta),
                {"mode": UpdateMode.REPLACE, "etag": _etag(shard), "match_condition": _IF_MATCH},
            )
            try:
                results = self._table.submit_transaction([*ops, update])
            except TableTransactionError:
                if self._shard_moved(project_id, key, _etag(shard)):
                    time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 5)))
                    continue
                raise
            self._applied(project_id, shards, key, results, apply)
            return
        raise ConcurrencyError("the project's image counters stayed busy; try again")

    def _shard_moved(self, project_id: str, key: str, etag: str) -> bool:
        try:
            return _etag(self._table.get_entity(project_id, key)) != etag
        except ResourceNotFoundError:
            return True
        except HttpResponseError:
            return False

    def _applied(self, project_id: str, shards: dict, key: str, results, apply: Callable) -> None:
        etags = [r.get("etag") for r in results]
        with self._lock:
            hit = self._cache.get(project_id)
            if hit is None:
                return
            if hit.version != _version(shards):  # someone else wrote since: read again next time
                del self._cache[project_id]
                return
            apply(hit.records, etags)
            hit.version = tuple(sorted((k, etags[-1] if k == key else e) for k, e in hit.version))

    @staticmethod
    def _adding(images: builtins.list[ImageRecord]):
        def apply(records, etags):
            for im, etag in zip(images, etags, strict=False):  # etags end with the shard row's
                records[im.id] = _copy(im, etag)

        return apply

    @staticmethod
    def _replacing(image: ImageRecord):
        def apply(records, etags):
            records[image.id] = _copy(image, etags[0])

        return apply

    @staticmethod
    def _removing(ids: builtins.list[str]):
        def apply(records, etags):
            for i in ids:
                records.pop(i, None)

        return apply

    def _remember(self, project_id: str, listing: _Listing) -> None:
        if len(listing.records) > self._cache_images:
            return
        with self._lock:
            self._cache[project_id] = listing
            self._cache.move_to_end(project_id)
            while sum(len(v.records) for v in self._cache.values()) > self._cache_images:
                self._cache.popitem(last=False)

    def forget(self, project_id: str) -> None:
        with self._lock:
            self._cache.pop(project_id, None)
