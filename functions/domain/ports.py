"""Storage ports of the Training API, below every API package (prediction and vision read projects and blobs
through them too). `adapters/` implements them on Azure Storage; unit tests use the fakes in
tests/unit/fakes.py. `require_project` is the one lookup every API shares (a deleting project is gone)."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import TypeVar

from cvcore import layout
from cvcore.errors import NotFound

from .records import DELETING, ImageCounts, ImageRecord, Iteration, Project, Tag


class ConcurrencyError(Exception):
    """A record changed between read and write (ETag mismatch); re-read and retry."""


class MetadataRepository(abc.ABC):
    @abc.abstractmethod
    def get_project(self, project_id: str) -> Project | None: ...

    @abc.abstractmethod
    def list_projects(self) -> list[Project]: ...

    @abc.abstractmethod
    def save_project(self, project: Project) -> None: ...

    @abc.abstractmethod
    def delete_project(self, project_id: str) -> None:
        """Delete the project row and every tag and image row of the project."""

    @abc.abstractmethod
    def save_deletion(self, project_id: str, record: dict) -> None:
        """Keep how a background deletion of the project goes (deletion.py); outlives the project."""

    @abc.abstractmethod
    def get_deletion(self, project_id: str) -> dict | None: ...

    @abc.abstractmethod
    def list_tags(self, project_id: str) -> list[Tag]: ...

    @abc.abstractmethod
    def save_tag(self, project_id: str, tag: Tag) -> None: ...

    @abc.abstractmethod
    def delete_tag(self, project_id: str, tag_id: str) -> None: ...

    @abc.abstractmethod
    def list_images(self, project_id: str) -> list[ImageRecord]:
        """Every image row of the project. The records may be shared with a cache: read them, do not change
        them (get_images returns records to change and write back)."""

    def image_counts(self, project_id: str) -> ImageCounts:
        """Images in all, tagged and per tag. Adapters keep them as counters; this default counts the rows."""
        return ImageCounts.of(self.list_images(project_id))

    @abc.abstractmethod
    def get_images(self, project_id: str, image_ids: Iterable[str]) -> dict[str, ImageRecord]: ...

    @abc.abstractmethod
    def add_images(self, project_id: str, images: list[ImageRecord]) -> set[str]:
        """Insert new image rows; return the ids that already existed (those rows are left as they were)."""

    @abc.abstractmethod
    def update_image(self, project_id: str, image: ImageRecord) -> None:
        """Replace the row if its ETag still matches `image.etag`, else raise ConcurrencyError."""

    @abc.abstractmethod
    def delete_images(self, project_id: str, image_ids: Iterable[str]) -> None: ...

    @abc.abstractmethod
    def list_iterations(self, project_id: str) -> list[Iteration]: ...

    @abc.abstractmethod
    def get_iteration(self, project_id: str, iteration_id: str) -> Iteration | None: ...

    @abc.abstractmethod
    def add_iteration(self, project_id: str, iteration: Iteration) -> None: ...

    @abc.abstractmethod
    def update_iteration(self, project_id: str, iteration: Iteration) -> None:
        """Replace the row if its ETag still matches `iteration.etag`, else raise ConcurrencyError."""

    @abc.abstractmethod
    def delete_iteration(self, project_id: str, iteration_id: str) -> None: ...


class JobQueue(abc.ABC):
    @abc.abstractmethod
    def send(self, message: str, delay_s: int = 0) -> None:
        """Enqueue one job message (training-jobs: cvcore.messages.dumps of a TrainingJob; project-imports:
        project_transfer's ImportJob; webhook-deliveries: a delivery attempt), visible after `delay_s`."""


class BlobStore(abc.ABC):
    @abc.abstractmethod
    def put(self, container: str, name: str, data: bytes, content_type: str) -> None: ...

    @abc.abstractmethod
    def get(self, container: str, name: str) -> bytes: ...

    @abc.abstractmethod
    def exists(self, container: str, name: str) -> bool: ...

    @abc.abstractmethod
    def delete(self, container: str, name: str) -> None:
        """Delete if present."""

    @abc.abstractmethod
    def delete_prefix(self, container: str, prefix: str, limit: int | None = None) -> int:
        """Delete every blob whose name starts with `prefix` (at most `limit` of them when given); return
        how many went."""

    @abc.abstractmethod
    def url(self, container: str, name: str) -> str:
        """A time-limited read URL for the blob."""

    @abc.abstractmethod
    def list_names(self, container: str, prefix: str) -> list[str]:
        """The names of the blobs that start with `prefix`, in name order."""

    def get_capped(self, container: str, name: str, max_bytes: int) -> bytes:
        """At most the first `max_bytes + 1` bytes of the blob: enough to tell it is too large without
        holding all of it. Adapters read a range; this default reads the whole blob."""
        return self.get(container, name)[: max_bytes + 1]


def require_project(repo: MetadataRepository, project_id: str) -> Project:
    project = repo.get_project(layout.guid(project_id, "projectId")) if _is_guid(project_id) else None
    if project is None or project.status == DELETING:
        raise NotFound("NotFoundProject", f"project {project_id} does not exist")
    return project


def _is_guid(value: str) -> bool:
    try:
        layout.guid(value)
        return True
    except ValueError:
        return False


def saved_iteration(repo: MetadataRepository, project_id: str, iteration_id: str) -> Iteration:
    """An iteration re-read right after this request wrote it; deleted meanwhile is the request's 404."""
    it = repo.get_iteration(project_id, iteration_id)
    if it is None:
        raise NotFound("NotFoundIteration", "the iteration was deleted meanwhile")
    return it


_T = TypeVar("_T")


def wired(value: _T | None, what: str) -> _T:
    """A service the caller needs from the composition root (bootstrap.Services, or a Protocol of it).
    bootstrap.build wires every one; the fields are optional only so a test can build Services with just what
    it exercises, so a missing one is a set-up error, not a request's."""
    if value is None:
        raise RuntimeError(f"Services.{what} is not wired (bootstrap.build sets it; a test must pass it)")
    return value
