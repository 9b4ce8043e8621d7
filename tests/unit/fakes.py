"""In-memory fakes behind the Training API's storage ports, for unit tests only. The real adapters are
tested against Azurite in tests/integration."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterable

from cvcore import layout
from functions.domain.ports import BlobStore, ConcurrencyError, JobQueue, MetadataRepository
from functions.domain.records import ImageRecord, Iteration, Project, Tag
from functions.prediction.ports import PredictionStore, StoredPrediction


class FakeRepository(MetadataRepository):
    def __init__(self):
        self.projects: dict[str, Project] = {}
        self.tags: dict[str, dict[str, Tag]] = {}
        self.images: dict[str, dict[str, ImageRecord]] = {}
        self.iterations: dict[str, dict[str, Iteration]] = {}
        self._etags = itertools.count(1)

    def get_project(self, project_id):
        return copy.deepcopy(self.projects.get(project_id))

    def list_projects(self):
        return [copy.deepcopy(p) for p in self.projects.values()]

    def save_project(self, project):
        self.projects[project.id] = copy.deepcopy(project)

    def delete_project(self, project_id):
        self.projects.pop(project_id, None)
        self.tags.pop(project_id, None)
        self.images.pop(project_id, None)
        self.iterations.pop(project_id, None)

    def save_deletion(self, project_id, record):
        self.deletions = {**getattr(self, "deletions", {}), project_id: copy.deepcopy(record)}

    def get_deletion(self, project_id):
        return copy.deepcopy(getattr(self, "deletions", {}).get(project_id))

    def list_tags(self, project_id):
        return sorted(
            (copy.deepcopy(t) for t in self.tags.get(project_id, {}).values()), key=lambda t: t.created
        )

    def save_tag(self, project_id, tag):
        self.tags.setdefault(project_id, {})[tag.id] = copy.deepcopy(tag)

    def delete_tag(self, project_id, tag_id):
        self.tags.get(project_id, {}).pop(tag_id, None)

    def list_images(self, project_id):
        return [copy.deepcopy(i) for i in self.images.get(project_id, {}).values()]

    def get_images(self, project_id, image_ids: Iterable[str]):
        part = self.images.get(project_id, {})
        return {i: copy.deepcopy(part[i]) for i in image_ids if i in part}

    def add_images(self, project_id, images):
        part = self.images.setdefault(project_id, {})
        existed = set()
        for im in images:
            if im.id in part:
                existed.add(im.id)
            else:
                stored = copy.deepcopy(im)
                stored.etag = str(next(self._etags))
                part[im.id] = stored
        return existed

    def _replace(self, part: dict, record) -> None:
        if record.id not in part or part[record.id].etag != record.etag:
            raise ConcurrencyError(record.id)
        stored = copy.deepcopy(record)
        stored.etag = str(next(self._etags))
        part[record.id] = stored

    def update_image(self, project_id, image):
        self._replace(self.images.get(project_id, {}), image)

    def delete_images(self, project_id, image_ids):
        for i in image_ids:
            self.images.get(project_id, {}).pop(i, None)

    def list_iterations(self, project_id):
        return sorted(
            (copy.deepcopy(i) for i in self.iterations.get(project_id, {}).values()), key=lambda i: i.created
        )

    def get_iteration(self, project_id, iteration_id):
        return copy.deepcopy(self.iterations.get(project_id, {}).get(iteration_id))

    def add_iteration(self, project_id, iteration):
        part = self.iterations.setdefault(project_id, {})
        assert iteration.id not in part
        stored = copy.deepcopy(iteration)
        stored.etag = str(next(self._etags))
        part[iteration.id] = stored

    def update_iteration(self, project_id, iteration):
        self._replace(self.iterations.get(project_id, {}), iteration)

    def delete_iteration(self, project_id, iteration_id):
        self.iterations.get(project_id, {}).pop(iteration_id, None)


class FakeJobQueue(JobQueue):
    def __init__(self):
        self.sent: list[str] = []
        self.delays: list[int] = []
        self.fail = False

    def send(self, message, delay_s=0):
        if self.fail:
            raise OSError("queue is down")
        self.sent.append(message)
        self.delays.append(delay_s)


class FakeBlobStore(BlobStore):
    def __init__(self):
        self.blobs: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.fail_puts = False

    def put(self, container, name, data, content_type):
        if self.fail_puts:
            raise OSError("storage is down")
        self.blobs[(container, name)] = (bytes(data), content_type)

    def get(self, container, name):
        return self.blobs[(container, name)][0]

    def exists(self, container, name):
        return (container, name) in self.blobs

    def delete(self, container, name):
        self.blobs.pop((container, name), None)

    def list_names(self, container, prefix):
        return sorted(k[1] for k in self.blobs if k[0] == container and k[1].startswith(prefix))

    def delete_prefix(self, container, prefix, limit=None):
        doomed = sorted(k for k in self.blobs if k[0] == container and k[1].startswith(prefix))[:limit]
        for k in doomed:
            del self.blobs[k]
        return len(doomed)

    def url(self, container, name):
        return f"fake://{container}/{name}"


class FakePredictionStore(PredictionStore):
    """Stored predictions in memory, with the adapter's orders: ids ascending is newest first."""

    def __init__(self, blobs: FakeBlobStore | None = None):
        self.blobs = blobs or FakeBlobStore()
        self.records: dict[str, dict[str, StoredPrediction]] = {}

    def put_images(self, project_id, prediction_id, image, content_type, thumbnail):
        self.blobs.put(
            layout.PREDICTIONS, layout.prediction_image(project_id, prediction_id), image, content_type
        )
        self.blobs.put(
            layout.PREDICTIONS,
            layout.prediction_thumbnail(project_id, prediction_id),
            thumbnail,
            "image/jpeg",
        )

    def add(self, record):
        part = self.records.setdefault(record.project_id, {})
        if record.id in part:
            raise KeyError(f"prediction {record.id} exists")
        part[record.id] = copy.deepcopy(record)

    def get(self, project_id, prediction_ids):
        part = self.records.get(project_id, {})
        return {i: copy.deepcopy(part[i]) for i in prediction_ids if i in part}

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
    ):
        def key(r):
            return (layout.prediction_time_ms(r.id), r.id) if oldest_first else (r.id,)

        rows = sorted(self.records.get(project_id, {}).values(), key=key)
        if after is not None:
            mark = key(StoredPrediction(after, project_id, "", "", "", None, "", []))
            rows = [r for r in rows if key(r) > mark]
        for r in rows:
            if (
                (start is None or r.created >= start)
                and (end is None or r.created < end)
                and iteration_id in (None, r.iteration_id)
                and application in (None, r.application)
            ):
                yield copy.deepcopy(r)

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
    ):
        def key(r):
            return -r.uncertainty, r.id

        for r in sorted(self.records.get(project_id, {}).values(), key=key):
            if (
                (after is None or key(r) > (-after[0], after[1]))
                and (start is None or r.created >= start)
                and (end is None or r.created < end)
                and iteration_id in (None, r.iteration_id)
                and application in (None, r.application)
            ):
                yield (
                    dataclasses.replace(r, predictions=[], extra={}, iteration_id="", task="")
                    if brief
                    else copy.deepcopy(r)
                )

    def delete(self, project_id, prediction_ids):
        for i in prediction_ids:
            self.records.get(project_id, {}).pop(i, None)
            self.blobs.delete(layout.PREDICTIONS, layout.prediction_image(project_id, i))
            self.blobs.delete(layout.PREDICTIONS, layout.prediction_thumbnail(project_id, i))

    def delete_project(self, project_id):
        return len(self.records.pop(project_id, {}))

    def purge(self, before):
        doomed = [(p, i) for p, part in self.records.items() for i, r in part.items() if r.created < before]
        for p, i in doomed:
            self.delete(p, [i])
        return len(doomed)

    def image_url(self, project_id, prediction_id):
        return self.blobs.url(layout.PREDICTIONS, layout.prediction_image(project_id, prediction_id))

    def thumbnail_url(self, project_id, prediction_id):
        return self.blobs.url(layout.PREDICTIONS, layout.prediction_thumbnail(project_id, prediction_id))
