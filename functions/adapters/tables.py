"""MetadataRepository on Azure Table storage.

Rows: projects (PartitionKey "project"), tags and images (PartitionKey = projectId), so a project's
data is one partition per table and an id from another project can never be read through it.
Large JSON fields are split across numbered properties (a Table string property holds 32K chars).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Iterable

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

from cvcore import layout

from ..training.model import ImageRecord, Iteration, Project, Region, Tag
from ..training.ports import ConcurrencyError, MetadataRepository

_CHUNK = 30000  # chars per string property
_BATCH = 100  # operations per entity-group transaction
_FILTER_KEYS = 14  # Table filters allow 15 comparisons: PartitionKey plus 14 RowKeys


def _put_json(entity: dict, name: str, value) -> None:
    text = json.dumps(value, separators=(",", ":"))
    parts = [text[i:i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    entity[name] = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        entity[f"{name}_{i}"] = part


def _get_json(entity: dict, name: str, default):
    if name not in entity:
        return default
    text, i = entity[name], 1
    while f"{name}_{i}" in entity:
        text += entity[f"{name}_{i}"]
        i += 1
    return json.loads(text) if text else default


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, timezone.utc)


def _utc(value: datetime) -> datetime:
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, timezone.utc)


def _project_entity(p: Project) -> dict:
    e = {"PartitionKey": layout.PROJECT_PARTITION, "RowKey": p.id, "Name": p.name, "Description": p.description,
         "DomainId": p.domain_id, "ClassificationType": p.classification_type or "", "Created": p.created,
         "LastModified": p.last_modified, "UseNegativeSet": p.use_negative_set, "Status": p.status,
         "StatusMessage": p.status_message[:_CHUNK], "ExportModelContainerUri": p.export_model_container_uri,
         "NotificationQueueUri": p.notification_queue_uri, "WebhookUri": p.webhook_uri,
         "WebhookSecret": p.webhook_secret}
    _put_json(e, "TargetExportPlatforms", p.target_export_platforms)
    _put_json(e, "AugmentationMethods", p.augmentation_methods)
    return e


def _project(e: dict) -> Project:
    return Project(id=e["RowKey"], name=e["Name"], description=e.get("Description", ""), domain_id=e["DomainId"],
                   classification_type=e.get("ClassificationType") or None,
                   target_export_platforms=_get_json(e, "TargetExportPlatforms", []),
                   created=_utc(e["Created"]), last_modified=_utc(e["LastModified"]),
                   use_negative_set=e.get("UseNegativeSet", True),
                   augmentation_methods=_get_json(e, "AugmentationMethods", None),
                   status=e.get("Status") or "Succeeded", status_message=e.get("StatusMessage", ""),
                   export_model_container_uri=e.get("ExportModelContainerUri", ""),
                   notification_queue_uri=e.get("NotificationQueueUri", ""), webhook_uri=e.get("WebhookUri", ""),
                   webhook_secret=e.get("WebhookSecret", ""))


def _tag_entity(project_id: str, t: Tag) -> dict:
    return {"PartitionKey": project_id, "RowKey": t.id, "Name": t.name, "Description": t.description,
            "Type": t.type, "Created": t.created}


def _tag(e: dict) -> Tag:
    return Tag(id=e["RowKey"], name=e["Name"], description=e.get("Description", ""), type=e["Type"],
               created=_utc(e["Created"]))


def _image_entity(project_id: str, im: ImageRecord) -> dict:
    e = {"PartitionKey": project_id, "RowKey": im.id, "Created": im.created, "Width": im.width,
         "Height": im.height, "ContentType": im.content_type, "Source": im.source}
    _put_json(e, "Tags", {k: v.timestamp() for k, v in im.tags.items()})
    _put_json(e, "Regions", [[r.id, r.tag_id, r.left, r.top, r.width, r.height, r.created.timestamp()]
                             for r in im.regions])
    _put_json(e, "Metadata", im.metadata)
    return e


def _image(e) -> ImageRecord:
    return ImageRecord(
        id=e["RowKey"], created=_utc(e["Created"]), width=e["Width"], height=e["Height"],
        content_type=e.get("ContentType", ""), source=e.get("Source", ""),
        tags={k: _ts(v) for k, v in _get_json(e, "Tags", {}).items()},
        regions=[Region(id=r[0], tag_id=r[1], left=r[2], top=r[3], width=r[4], height=r[5], created=_ts(r[6]))
                 for r in _get_json(e, "Regions", [])],
        metadata=_get_json(e, "Metadata", {}), etag=e.metadata.get("etag") if hasattr(e, "metadata") else None)


_ITERATION_JSON = ("tag_ids", "error_image_ids", "skipped_image_ids", "metrics")
_ITERATION_TIMES = ("created", "last_modified", "trained_at")


def _iteration_entity(project_id: str, it: Iteration) -> dict:
    e = {"PartitionKey": project_id, "RowKey": it.id}
    for name, value in vars(it).items():
        if name in ("id", "etag"):
            continue
        if name in _ITERATION_JSON:
            _put_json(e, name, value)
        elif value is not None:
            e[name] = value
    return e


def _iteration(e) -> Iteration:
    values = {"id": e["RowKey"], "etag": e.metadata.get("etag") if hasattr(e, "metadata") else None}
    for name in Iteration.__dataclass_fields__:
        if name in values:
            continue
        if name in _ITERATION_JSON:
            values[name] = _get_json(e, name, {} if name == "metrics" else [])
        elif name in e:
            values[name] = _utc(e[name]) if name in _ITERATION_TIMES else e[name]
    values.setdefault("classification_type", None)  # None is not stored: a detector has no classification type
    return Iteration(**values)


class TableMetadataRepository(MetadataRepository):
    def __init__(self, service: TableServiceClient, pool: ThreadPoolExecutor):
        self._projects = service.get_table_client(layout.PROJECTS_TABLE)
        self._tags = service.get_table_client(layout.TAGS_TABLE)
        self._images = service.get_table_client(layout.IMAGES_TABLE)
        self._iterations = service.get_table_client(layout.ITERATIONS_TABLE)
        self._pool = pool

    # projects
    def get_project(self, project_id: str) -> Project | None:
        try:
            return _project(self._projects.get_entity(layout.PROJECT_PARTITION, project_id))
        except ResourceNotFoundError:
            return None

    def list_projects(self) -> list[Project]:
        rows = self._projects.query_entities("PartitionKey eq @pk", parameters={"pk": layout.PROJECT_PARTITION})
        return [_project(e) for e in rows]

    def save_project(self, project: Project) -> None:
        self._projects.upsert_entity(_project_entity(project), mode=UpdateMode.REPLACE)

    def delete_project(self, project_id: str) -> None:
        for table in (self._images, self._tags, self._iterations):
            self._delete_partition(table, project_id)
        self._projects.delete_entity(layout.PROJECT_PARTITION, project_id)

    # tags
    def list_tags(self, project_id: str) -> list[Tag]:
        rows = self._tags.query_entities("PartitionKey eq @pk", parameters={"pk": project_id})
        return sorted((_tag(e) for e in rows), key=lambda t: t.created)

    def save_tag(self, project_id: str, tag: Tag) -> None:
        self._tags.upsert_entity(_tag_entity(project_id, tag), mode=UpdateMode.REPLACE)

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        self._tags.delete_entity(project_id, tag_id)

    # images
    def list_images(self, project_id: str) -> list[ImageRecord]:
        rows = self._images.query_entities("PartitionKey eq @pk", parameters={"pk": project_id})
        return [_image(e) for e in rows]

    def get_images(self, project_id: str, image_ids: Iterable[str]) -> dict[str, ImageRecord]:
        ids = list(dict.fromkeys(image_ids))
        chunks = [ids[i:i + _FILTER_KEYS] for i in range(0, len(ids), _FILTER_KEYS)]

        def query(chunk: list[str]) -> list[ImageRecord]:
            params = {"pk": project_id, **{f"r{i}": rk for i, rk in enumerate(chunk)}}
            keys = " or ".join(f"RowKey eq @r{i}" for i in range(len(chunk)))
            return [_image(e) for e in self._images.query_entities(f"PartitionKey eq @pk and ( {keys} )",
                                                                   parameters=params)]

        found: dict[str, ImageRecord] = {}
        for records in self._pool.map(query, chunks) if len(chunks) > 1 else map(query, chunks):
            found.update((r.id, r) for r in records)
        return found

    def add_images(self, project_id: str, images: list[ImageRecord]) -> set[str]:
        existed: set[str] = set()
        for i in range(0, len(images), _BATCH):
            chunk = images[i:i + _BATCH]
            try:
                self._images.submit_transaction([("create", _image_entity(project_id, im)) for im in chunk])
            except TableTransactionError:
                for im in chunk:  # someone raced us: find out row by row which ones exist
                    try:
                        self._images.create_entity(_image_entity(project_id, im))
                    except ResourceExistsError:
                        existed.add(im.id)
        return existed

    def update_image(self, project_id: str, image: ImageRecord) -> None:
        _replace_if_unchanged(self._images, _image_entity(project_id, image), image.etag)

    def delete_images(self, project_id: str, image_ids: Iterable[str]) -> None:
        _delete_rows(self._images, project_id, list(dict.fromkeys(image_ids)))

    # iterations
    def list_iterations(self, project_id: str) -> list[Iteration]:
        rows = self._iterations.query_entities("PartitionKey eq @pk", parameters={"pk": project_id})
        return sorted((_iteration(e) for e in rows), key=lambda it: it.created)

    def get_iteration(self, project_id: str, iteration_id: str) -> Iteration | None:
        try:
            return _iteration(self._iterations.get_entity(project_id, iteration_id))
        except ResourceNotFoundError:
            return None

    def add_iteration(self, project_id: str, iteration: Iteration) -> None:
        self._iterations.create_entity(_iteration_entity(project_id, iteration))

    def update_iteration(self, project_id: str, iteration: Iteration) -> None:
        _replace_if_unchanged(self._iterations, _iteration_entity(project_id, iteration), iteration.etag)

    def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        self._iterations.delete_entity(project_id, iteration_id)

    def _delete_partition(self, table, partition: str) -> None:
        keys = [e["RowKey"] for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition},
                                                          select=["RowKey"])]
        _delete_rows(table, partition, keys)


def _replace_if_unchanged(table, entity: dict, etag: str | None) -> None:
    """Replace a row only if it still has `etag`; a concurrent change raises ConcurrencyError."""
    try:
        table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified)
    except (ResourceModifiedError, ResourceNotFoundError) as exc:
        raise ConcurrencyError(str(exc)) from exc
    except HttpResponseError as exc:
        if exc.status_code == 412:
            raise ConcurrencyError(str(exc)) from exc
        raise


def _delete_rows(table, partition: str, keys: list[str]) -> None:
    """Delete rows in transactions of up to 100; row by row if a transaction fails (e.g. one row gone)."""
    for i in range(0, len(keys), _BATCH):
        chunk = keys[i:i + _BATCH]
        try:
            table.submit_transaction([("delete", {"PartitionKey": partition, "RowKey": rk}) for rk in chunk])
        except TableTransactionError:
            for rk in chunk:
                table.delete_entity(partition, rk)
