"""Deleting a project in the background.

DELETE projects/{id} marks the project Deleting (from then on it is 404 for every route, its name is free) and
sends a job on the project-imports queue, whose trigger (queue_imports.py) runs `run`: the project's blobs in
every container, its stored predictions, then its rows. One run deletes at most BLOBS_PER_RUN blobs and then
sends the job again, and it also stops (and sends the job again) once it has run RUN_SECONDS, so no invocation
runs near the function timeout however large the project or slow the storage (the status counts the blobs
gone so far, every PROGRESS_EVERY). Each step is idempotent, so a retried message picks up where the last one
stopped; the last attempt that still fails records the reason. A second sweep of the
rows catches a write that passed its project check just before the mark. The outcome stays readable at
GET projects/{id}/deletion (our extension): Deleting (with the step), Deleted (with what went) or Failed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from cvcore import layout
from cvcore.errors import NotFound

from ..domain.ports import BlobStore, JobQueue, MetadataRepository
from ..domain.records import DELETING, Project, utcnow

if TYPE_CHECKING:
    from ..prediction.ports import PredictionStore

log = logging.getLogger(__name__)
JOB_KIND, JOB_VERSION = "deleteProject", 1
BLOBS_PER_RUN = 20_000  # about 5 minutes at Azurite's ~60 deletes/s on 2 cores; Azure Storage is faster
# Azurite's delete slows as its container fills (benchmarks/scale.py: 57 deletes/s with 10,000 blobs in the
# container, 9/s with 40,000), so a run is bounded by time as well: well inside Flex Consumption's 30 min.
RUN_SECONDS = 240.0


def start(repo: MetadataRepository, jobs: JobQueue, project: Project) -> None:
    project.status, project.status_message = DELETING, "waiting for the deletion job"
    repo.save_project(project)
    repo.save_deletion(
        project.id, {"status": "Deleting", "started": utcnow().isoformat(), "name": project.name}
    )
    _send(jobs, project.id)


def _send(jobs: JobQueue, project_id: str) -> None:
    jobs.send(json.dumps({"kind": JOB_KIND, "v": JOB_VERSION, "projectId": project_id}))


def parse_job(body: bytes | str) -> str | None:
    """The project id of a deletion job; None for a message of another kind."""
    job = json.loads(body)
    if not isinstance(job, dict) or job.get("kind") != JOB_KIND:
        return None
    if job.get("v") != JOB_VERSION:
        raise ValueError(f"unknown deletion job version {job.get('v')!r}")
    return layout.guid(job.get("projectId"), "projectId")


PROGRESS_EVERY = 250  # blobs between two progress notes (and time checks)


def delete_blobs(
    blobs: BlobStore,
    project_id: str,
    limit: int | None = None,
    step=lambda name, went: None,
    until: float | None = None,
    clock=time.monotonic,
) -> tuple[int, bool]:
    """Delete the project's blobs in every container, at most `limit` of them, PROGRESS_EVERY at a time
    (`step(what, how many so far)` before each), stopping after the step that ends past `until` (a `clock()`
    time); return how many went and whether that was all."""
    prefix, went = layout.project_prefix(project_id), 0
    for container in layout.CONTAINERS:
        while True:
            step(f"deleting blobs in {container}", went)
            ask = PROGRESS_EVERY if limit is None else min(PROGRESS_EVERY, limit - went)
            gone = blobs.delete_prefix(container, prefix, ask)
            went += gone
            if limit is not None and went >= limit:
                return went, False
            if until is not None and gone == ask and clock() >= until:
                return went, False
            if gone < ask:
                break
    return went, True


def delete_rows(
    repo: MetadataRepository,
    project_id: str,
    predictions: PredictionStore | None = None,
    step=lambda name: None,
) -> dict:
    """After the blobs: the stored predictions, then the project's rows. Returns what went."""
    gone = {"predictions": 0}
    if predictions is not None:
        step("deleting stored predictions")
        gone["predictions"] = predictions.delete_project(project_id)
    step("deleting rows")
    gone["images"] = repo.image_counts(project_id).images if repo.get_project(project_id) else 0
    repo.delete_project(project_id)
    repo.delete_project(project_id)  # a write that passed its project check just before the mark
    return gone


def delete_everything(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    predictions: PredictionStore | None = None,
    step=lambda name: None,
) -> dict:
    """Blobs first, rows last: a deletion that stops half-way can be run again. Returns what went."""
    went, _ = delete_blobs(blobs, project_id, None, lambda name, went: step(name))
    return {"blobs": went, **delete_rows(repo, project_id, predictions, step)}


def run(
    repo: MetadataRepository,
    blobs: BlobStore,
    predictions: PredictionStore | None,
    project_id: str,
    last_attempt: bool = False,
    jobs: JobQueue | None = None,
    chunk: int = BLOBS_PER_RUN,
    seconds: float = RUN_SECONDS,
    clock=time.monotonic,
) -> str:
    """One run of the job: with `jobs` (the queue it came from), at most `chunk` blobs or `seconds`, then the
    job is sent again ("Deleting"); the run that finds the blobs gone deletes the rows ("Deleted")."""
    record = repo.get_deletion(project_id) or {"status": "Deleting"}
    if record.get("status") == "Deleted":
        return "Deleted"

    def step(name: str) -> None:
        repo.save_deletion(project_id, {**record, "step": name})

    before = record.get("blobs", 0)

    def blob_step(name: str, went: int) -> None:
        record["blobs"] = before + went
        step(name)

    try:
        bounded = jobs is not None
        went, done = delete_blobs(
            blobs,
            project_id,
            chunk if bounded else None,
            blob_step,
            clock() + seconds if bounded else None,
            clock,
        )
        record["blobs"] = before + went
        if not done:
            step("deleting blobs: the job continues")
            if jobs is None:  # cannot happen: without a queue the run is unbounded and deletes every blob
                raise AssertionError(f"deleting project {project_id} stopped early with no queue to go on")
            _send(jobs, project_id)
            return "Deleting"
        gone = delete_rows(repo, project_id, predictions, step)
    except Exception as exc:
        if not last_attempt:
            raise  # the queue retries
        log.exception("deleting project %s failed", project_id)
        repo.save_deletion(
            project_id, {**record, "status": "Failed", "reason": f"{type(exc).__name__}: {exc}"}
        )
        return "Failed"
    repo.save_deletion(
        project_id, {**record, "status": "Deleted", "finished": utcnow().isoformat(), **gone, "step": ""}
    )
    return "Deleted"


def status(repo: MetadataRepository, project_id: str) -> dict:
    record = repo.get_deletion(layout.guid(project_id, "projectId"))
    if record is None:
        raise NotFound("NotFoundProject", f"project {project_id} was not deleted (or does not exist)")
    return {"projectId": project_id, **record}
