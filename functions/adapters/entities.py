"""Table entity helpers shared by the storage adapters: JSON split over string properties, UTC times, image
rows, reading rows by key and deleting them in transactions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError

from ..domain.records import ImageRecord, Region

CHUNK = 30000  # chars per string property
BATCH = 100  # operations per entity-group transaction
_READS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cv-point-reads")  # get_rows' leaf tasks only


def put_json(entity: dict, name: str, value) -> None:
    text = json.dumps(value, separators=(",", ":"))
    parts = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    entity[name] = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        entity[f"{name}_{i}"] = part


def get_json(entity: dict, name: str, default):
    if name not in entity:
        return default
    text, i = entity[name], 1
    while f"{name}_{i}" in entity:
        text += entity[f"{name}_{i}"]
        i += 1
    return json.loads(text) if text else default


def ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def utc(value: datetime) -> datetime:
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond, UTC
    )


def image_entity(project_id: str, im: ImageRecord) -> dict:
    e = {
        "PartitionKey": project_id,
        "RowKey": im.id,
        "Created": im.created,
        "Width": im.width,
        "Height": im.height,
        "ContentType": im.content_type,
        "Source": im.source,
    }
    if im.camera:
        e["Camera"] = im.camera
    if im.source_format:
        e["Format"] = im.source_format
    put_json(e, "Tags", {k: v.timestamp() for k, v in im.tags.items()})
    put_json(
        e,
        "Regions",
        [[r.id, r.tag_id, r.left, r.top, r.width, r.height, r.created.timestamp()] for r in im.regions],
    )
    put_json(e, "Metadata", im.metadata)
    return e


def image_record(e) -> ImageRecord:
    return ImageRecord(
        id=e["RowKey"],
        created=utc(e["Created"]),
        width=e["Width"],
        height=e["Height"],
        content_type=e.get("ContentType", ""),
        source=e.get("Source", ""),
        camera=e.get("Camera", ""),
        source_format=e.get("Format", ""),
        tags={k: ts(v) for k, v in get_json(e, "Tags", {}).items()},
        regions=[
            Region(id=r[0], tag_id=r[1], left=r[2], top=r[3], width=r[4], height=r[5], created=ts(r[6]))
            for r in get_json(e, "Regions", [])
        ],
        metadata=get_json(e, "Metadata", {}),
        etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
    )


def get_rows(table, partition: str, keys: Iterable[str]) -> list[dict]:
    """The rows among `keys` that exist, by point reads, several at once: a point read costs the same however
    large the partition, where a filter OR-ing RowKeys makes Azure Tables scan the partition. (Its own pool
    runs nothing but these reads, so calling it from any other pool's thread cannot wait on itself.)"""

    def one(key: str) -> dict | None:
        try:
            return table.get_entity(partition, key)
        except ResourceNotFoundError:
            return None

    keys = list(dict.fromkeys(keys))
    return [e for e in (_READS.map(one, keys) if len(keys) > 1 else map(one, keys)) if e is not None]


def delete_rows(table, partition: str, keys: list[str], pool=None) -> None:
    """Delete rows in transactions of up to 100 (several at once on `pool`, a ThreadPoolExecutor, when given);
    row by row where a transaction fails (e.g. one row gone)."""

    def chunk_of(chunk: list[str]) -> None:
        try:
            table.submit_transaction([("delete", {"PartitionKey": partition, "RowKey": rk}) for rk in chunk])
        except TableTransactionError:
            for rk in chunk:
                table.delete_entity(partition, rk)

    chunks = [keys[i : i + BATCH] for i in range(0, len(keys), BATCH)]
    list(pool.map(chunk_of, chunks) if pool is not None and len(chunks) > 1 else map(chunk_of, chunks))
