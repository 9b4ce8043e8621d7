"""(project, publish name) -> the published iteration, and the hook that keeps in-process caches honest.

A resolution is cached for TTL_S seconds, so a warm prediction costs no table read. Publish, unpublish
and delete (training/iterations.py) call `publish_changed`, which every registered cache hears at once
in this process; another instance of the app sees the change within TTL_S. While a publish name moves
from one iteration to another, both hold it for a moment (the new one is set first) and the one
modified last wins, so a prediction during a republish is answered by the old or the new model, never
refused.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from cvcore import artifacts, domains
from cvcore.errors import NotFound

from ..domain.ports import MetadataRepository, require_project
from ..domain.records import Iteration, Project

TTL_S = 5.0

_caches: weakref.WeakSet = weakref.WeakSet()


def register(cache):
    """Have `cache.on_publish_change(project_id, dropped)` called on every publish change; returns it."""
    _caches.add(cache)
    return cache


def publish_changed(project_id: str, dropped: Iterable[str] = ()) -> None:
    """A publish name of the project changed; the iterations in `dropped` lost (or changed) theirs."""
    dropped = tuple(dropped)
    for cache in list(_caches):
        cache.on_publish_change(project_id, dropped)


@dataclass(frozen=True)
class Published:
    project: Project
    iteration: Iteration
    task: str  # artifacts.CLASSIFICATION or artifacts.DETECTION


def task_of(iteration: Iteration) -> str:
    domain = domains.get(iteration.domain_id)
    return (
        artifacts.DETECTION
        if domain and domain.type == domains.OBJECT_DETECTION
        else artifacts.CLASSIFICATION
    )


class Catalog:
    def __init__(self, repo: MetadataRepository, ttl_s: float = TTL_S, clock=time.monotonic):
        self._repo, self._ttl, self._clock = repo, ttl_s, clock
        self._items: dict[tuple[str, str], tuple[float, Published]] = {}
        self._lock = threading.Lock()
        register(self)

    def resolve(self, project_id: str, publish_name: str) -> Published:
        key = (str(project_id).lower(), publish_name)
        now = self._clock()
        with self._lock:
            hit = self._items.get(key)
        if hit and hit[0] > now:
            return hit[1]
        project = require_project(self._repo, project_id)
        holders = [
            it
            for it in self._repo.list_iterations(project.id)
            if publish_name and it.publish_name == publish_name
        ]
        if not holders:
            raise NotFound(
                "NotFoundIteration",
                f"Invalid iteration: no iteration of project {project.id} is published as "
                f"{publish_name!r}; publish one under that name first",
            )
        it = max(holders, key=lambda i: i.last_modified)
        found = Published(project, it, task_of(it))
        with self._lock:
            self._items[key] = (now + self._ttl, found)
        return found

    def on_publish_change(self, project_id: str, dropped: tuple[str, ...]) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == project_id]:
                del self._items[key]
