"""MetadataRepository on Azure Table storage.

Rows: projects (PartitionKey "project"), tags and images (PartitionKey = projectId), so a project's
data is one partition per table and an id from another project can never be read through it.
Large JSON fields are split across numbered properties (a Table string property holds 32K chars).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from cvcore import layout

from ..domain.ports import ConcurrencyError, MetadataRepository
from ..domain.records import ImageCounts, ImageRecord, Iteration, Project, Tag
from .entities import CHUNK, delete_rows, get_json, put_json, utc
from .image_rows import ImageRows


def _project_entity(p: Project) -> dict:
    e = {
        "PartitionKey": layout.PROJECT_PARTITION,
        "RowKey": p.id,
        "Name": p.name,
        "Description": p.description,
        "DomainId": p.domain_id,
        "ClassificationType": p.classification_type or "",
        "Created": p.created,
        "LastModified": p.last_modified,
        "UseNegativeSet": p.use_negative_set,
        "Status": p.status,
        "StatusMessage": p.status_message[:CHUNK],
        "ExportModelContainerUri": p.export_model_container_uri,
        "NotificationQueueUri": p.notification_queue_uri,
        "WebhookUri": p.webhook_uri,
        "WebhookSecret": p.webhook_secret,
    }
    put_json(e, "TargetExportPlatforms", p.target_export_platforms)
    put_json(e, "AugmentationMethods", p.augmentation_methods)
    return e


def _project(e: dict) -> Project:
    return Project(
        id=e["RowKey"],
        name=e["Name"],
        description=e.get("Description", ""),
        domain_id=e["DomainId"],
        classification_type=e.get("ClassificationType") or None,
        target_export_platforms=get_json(e, "TargetExportPlatforms", []),
        created=utc(e["Created"]),
        last_modified=utc(e["LastModified"]),
        use_negative_set=e.get("UseNegativeSet", True),
        augmentation_methods=get_json(e, "AugmentationMethods", None),
        status=e.get("Status") or "Succeeded",
        status_message=e.get("StatusMessage", ""),
        export_model_container_uri=e.get("ExportModelContainerUri", ""),
        notification_queue_uri=e.get("NotificationQueueUri", ""),
        webhook_uri=e.get("WebhookUri", ""),
        webhook_secret=e.get("WebhookSecret", ""),
    )


def _tag_entity(project_id: str, t: Tag) -> dict:
    return {
        "PartitionKey": project_id,
        "RowKey": t.id,
        "Name": t.name,
        "Description": t.description,
        "Type": t.type,
        "Created": t.created,
    }


def _tag(e: dict) -> Tag:
    return Tag(
        id=e["RowKey"],
        name=e["Name"],
        description=e.get("Description", ""),
        type=e["Type"],
        created=utc(e["Created"]),
    )


_ITERATION_JSON = ("tag_ids", "error_image_ids", "skipped_image_ids", "metrics")
_ITERATION_TIMES = ("created", "last_modified", "trained_at")


def _iteration_entity(project_id: str, it: Iteration) -> dict:
    e = {"PartitionKey": project_id, "RowKey": it.id}
    for name, value in vars(it).items():
        if name in ("id", "etag"):
            continue
        if name in _ITERATION_JSON:
            put_json(e, name, value)
        elif value is not None:
            e[name] = value
    return e


def _iteration(e) -> Iteration:
    values = {"id": e["RowKey"], "etag": e.metadata.get("etag") if hasattr(e, "metadata") else None}
    for name in Iteration.__dataclass_fields__:
        if name in values:
            continue
        if name in _ITERATION_JSON:
            values[name] = get_json(e, name, {} if name == "metrics" else [])
        elif name in e:
            values[name] = utc(e[name]) if name in _ITERATION_TIMES else e[name]
    values.setdefault(
        "classification_type", None
    )  # None is not stored: a detector has no classification type
    return Iteration(**values)


class TableMetadataRepository(MetadataRepository):
    def __init__(self, service: TableServiceClient, pool: ThreadPoolExecutor):
        self._projects = service.get_table_client(layout.PROJECTS_TABLE)
        self._tags = service.get_table_client(layout.TAGS_TABLE)
        self._images = service.get_table_client(layout.IMAGES_TABLE)
        self._image_rows = ImageRows(self._images, pool)
        self._iterations = service.get_table_client(layout.ITERATIONS_TABLE)
        self._pool = pool

    # projects
    def get_project(self, project_id: str) -> Project | None:
        try:
            return _project(self._projects.get_entity(layout.PROJECT_PARTITION, project_id))
        except ResourceNotFoundError:
            return None

    def list_projects(self) -> list[Project]:
        rows = self._projects.query_entities(
            "PartitionKey eq @pk", parameters={"pk": layout.PROJECT_PARTITION}
        )
        return [_project(e) for e in rows]

    def save_project(self, project: Project) -> None:
        self._projects.upsert_entity(_project_entity(project), mode=UpdateMode.REPLACE)

    def delete_project(self, project_id: str) -> None:
        for table in (self._images, self._tags, self._iterations):
            self._delete_partition(table, project_id)
        self._image_rows.forget(project_id)
        self._projects.delete_entity(layout.PROJECT_PARTITION, project_id)

    def save_deletion(self, project_id: str, record: dict) -> None:
        e = {"PartitionKey": layout.DELETION_PARTITION, "RowKey": project_id}
        put_json(e, "Record", record)
        self._projects.upsert_entity(e, mode=UpdateMode.REPLACE)

    def get_deletion(self, project_id: str) -> dict | None:
        try:
            return get_json(self._projects.get_entity(layout.DELETION_PARTITION, project_id), "Record", None)
        except ResourceNotFoundError:
            return None

    # tags
    def list_tags(self, project_id: str) -> list[Tag]:
        rows = self._tags.query_entities("PartitionKey eq @pk", parameters={"pk": project_id})
        return sorted((_tag(e) for e in rows), key=lambda t: t.created)

    def save_tag(self, project_id: str, tag: Tag) -> None:
        self._tags.upsert_entity(_tag_entity(project_id, tag), mode=UpdateMode.REPLACE)

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        self._tags.delete_entity(project_id, tag_id)

    # images (rows, counters and the listing cache: image_rows.py)
    def list_images(self, project_id: str) -> list[ImageRecord]:
        return self._image_rows.list(project_id)

    def image_counts(self, project_id: str) -> ImageCounts:
        return self._image_rows.counts(project_id)

    def get_images(self, project_id: str, image_ids: Iterable[str]) -> dict[str, ImageRecord]:
        return self._image_rows.get(project_id, image_ids)

    def add_images(self, project_id: str, images: list[ImageRecord]) -> set[str]:
        return self._image_rows.add(project_id, images)

    def update_image(self, project_id: str, image: ImageRecord) -> None:
        self._image_rows.update(project_id, image)

    def delete_images(self, project_id: str, image_ids: Iterable[str]) -> None:
        self._image_rows.delete(project_id, image_ids)

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
        keys = [
            e["RowKey"]
            for e in table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"]
            )
        ]
        delete_rows(table, partition, keys, self._pool)


def _replace_if_unchanged(table, entity: dict, etag: str | None) -> None:
    """Replace a row only if it still has `etag`; a concurrent change raises ConcurrencyError."""
    try:
        table.update_entity(
            entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError) as exc:
        raise ConcurrencyError(str(exc)) from exc
    except HttpResponseError as exc:
        if exc.status_code == 412:
            raise ConcurrencyError(str(exc)) from exc
        raise
