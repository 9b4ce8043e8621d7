"""The stored-prediction port: what the prediction route writes and the review loop reads.

A stored prediction is one image sent to a published iteration (unless `nostore` was called): the
image (checked and normalised like a training image) and its thumbnail in the `predictions` container,
and a record of the answer. Records are kept per project, keyed by prediction id, and listed newest,
oldest or most uncertain first, optionally within a time window and for one iteration or application.
They never follow their iteration: deleting an iteration leaves its predictions in place (the purge
removes them after RETENTION). `adapter.TablePredictionStore` implements the port on Azure Storage; the unit tests use the
in-memory fake in tests/unit/fakes.py.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

RETENTION = timedelta(days=30)


@dataclass
class StoredPrediction:
    id: str  # layout.new_prediction_id: its creation time is in it, so ids sort newest first
    project_id: str
    iteration_id: str
    publish_name: str  # the name it was called through ("" for a quick test)
    application: str  # the `application` query parameter, "" when none
    created: datetime
    task: str  # cvcore.artifacts.CLASSIFICATION or DETECTION
    predictions: list[dict]  # Custom Vision's Prediction JSON, most probable first
    uncertainty: float = 0.0  # 0..1, higher = more informative to review (scoring.uncertainty)
    margin: float = 1.0  # top-1 minus top-2 probability (classification); 1 - uncertainty for detection
    signature: str = ""  # 16 hex digits: 64-bit difference hash of the image (scoring.signature)
    width: int = 0
    height: int = 0
    content_type: str = ""  # of the stored image: image/jpeg or image/png
    extra: dict = field(default_factory=dict)  # room for what the review loop wants to keep

    def tag_max(self) -> dict[str, float]:
        """The highest probability each tag reached in this image (for tag threshold filters)."""
        out: dict[str, float] = {}
        for p in self.predictions:
            out[p["tagId"]] = max(out.get(p["tagId"], 0.0), float(p["probability"]))
        return out


class PredictionStore(abc.ABC):
    @abc.abstractmethod
    def put_images(
        self, project_id: str, prediction_id: str, image: bytes, content_type: str, thumbnail: bytes
    ) -> None:
        """Store the image and its thumbnail (before `add`: a record never names a missing blob)."""

    @abc.abstractmethod
    def add(self, record: StoredPrediction) -> None:
        """Insert the record (all of it or, on failure, none of it)."""

    @abc.abstractmethod
    def get(self, project_id: str, prediction_ids: Iterable[str]) -> dict[str, StoredPrediction]:
        """The records that exist among `prediction_ids`."""

    def complete(self, project_id: str, prediction_ids: Iterable[str]) -> dict[str, StoredPrediction]:
        """Full records for ids a scan has just listed (so their rows exist): a store may serve them from
        records it has read before (records never change once written) and read only the others."""
        return self.get(project_id, prediction_ids)

    @abc.abstractmethod
    def scan(
        self,
        project_id: str,
        *,
        oldest_first: bool = False,
        start: datetime | None = None,
        end: datetime | None = None,
        after: str | None = None,
        iteration_id: str | None = None,
        application: str | None = None,
        page: int | None = None,
    ) -> Iterator[StoredPrediction]:
        """Records of a project newest (or oldest) first, lazily, page by page from storage.

        `start` <= created < `end` when given; `after` resumes after that prediction id in the same
        order (a continuation token); `iteration_id` and `application` filter exactly; `page`: how many
        records the caller expects to read (rows per storage round trip, so a page of 50 reads 50)."""

    @abc.abstractmethod
    def scan_uncertain(
        self,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        after: tuple[float, str] | None = None,
        iteration_id: str | None = None,
        application: str | None = None,
        page: int | None = None,
        brief: bool = False,
    ) -> Iterator[StoredPrediction]:
        """Records most uncertain first (ties: by id), lazily: the Suggested order's candidates without
        reading the rest. `after` = (uncertainty, id) resumes after that record; the filters and `page` as
        in `scan`; `brief`: only id, uncertainty and signature are read (created is the id's time;
        iteration, task and predictions are left empty), for ranking many."""

    @abc.abstractmethod
    def delete(self, project_id: str, prediction_ids: Iterable[str]) -> None:
        """Delete records, then their blobs (an image without its record is unreachable, not broken)."""

    @abc.abstractmethod
    def delete_project(self, project_id: str) -> int:
        """Delete every record of a project and return how many (its blobs go with the project's prefix)."""

    @abc.abstractmethod
    def purge(self, before: datetime) -> int:
        """Delete every record (all projects) created before `before`, and its blobs; return how many."""

    @abc.abstractmethod
    def image_url(self, project_id: str, prediction_id: str) -> str: ...

    @abc.abstractmethod
    def thumbnail_url(self, project_id: str, prediction_id: str) -> str: ...
