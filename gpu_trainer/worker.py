"""Consume `training-jobs`: one message -> one run_job, the message kept invisible while it works.

- A message that does not parse goes to `training-jobs-poison` with the reason (never retried).
- A job that raises is retried with a short back-off; on its 5th attempt, or when a message comes back a
  6th time (the process died without reporting), the iteration is reported Failed with the reason.
- A lease on `models/{project}/{iteration}/_lock` keeps two workers from training one iteration at once;
  the completed marker makes a duplicated message a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import threading

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from cvcore import layout, messages

from .flavours import export_target, run_export
from .job import run_job
from .store import TrainerStore

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# How long a received job stays invisible, and the iteration lease lasts, without a renewal: a killed worker's
# job is picked up again this long after its last renewal. The defaults are production's; the chaos tests
# (tests/chaos) shorten them through the environment so a SIGKILLed job comes back in seconds.
VISIBILITY_ENV, LEASE_ENV = "TRAINER_VISIBILITY_SECONDS", "TRAINER_LEASE_SECONDS"
LEASE_RANGE_S = (15, 60)  # what Blob storage accepts for a finite lease


def _seconds_from_env(name: str, default: int, lo: int, hi: int) -> int:
    """`name` from the environment as whole seconds in [lo, hi]; `default` when unset. A value that is not a
    number, or out of range, stops the worker at start with the setting named (never a silent default)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a whole number of seconds") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name}: must be between {lo} and {hi} seconds, got {value}")
    return value


VISIBILITY_S = _seconds_from_env(VISIBILITY_ENV, 300, 2, 7 * 24 * 3600)
LEASE_S = _seconds_from_env(LEASE_ENV, 60, *LEASE_RANGE_S)
# Renew well inside both windows: a third of the shorter one (20 s with the production defaults; a renewal at
# the lease's own length, as before, raced its expiry and let a second worker take the iteration).
RENEW_EVERY_S = min(60, max(1, min(VISIBILITY_S, LEASE_S) // 3))


def retry_delay(attempt: int) -> int:
    """Seconds before a failed job's message is visible again."""
    return min(10 * attempt, 60)


class _Keeper(threading.Thread):
    """Keeps the queue message invisible and the iteration lease held while the job runs."""

    def __init__(self, queue, message, lease):
        super().__init__(daemon=True)
        self.queue, self.message, self.lease = queue, message, lease
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(RENEW_EVERY_S):
            try:
                self.message = self.queue.update_message(self.message, visibility_timeout=VISIBILITY_S)
                if self.lease is not None:
                    self.lease.renew()
            except HttpResponseError as exc:
                log.warning("could not extend the job's lease: %s", exc)

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)
        return self.message


def _lease(store: TrainerStore, job: messages.TrainingJob):
    blob = store.clients.blob.get_blob_client(
        layout.MODELS, layout.iteration_artifact(job.project_id, job.iteration_id, "_lock")
    )
    try:
        blob.upload_blob(b"", overwrite=False)
    except ResourceExistsError:
        pass
    try:
        return blob.acquire_lease(lease_duration=LEASE_S)
    except HttpResponseError as exc:
        if exc.status_code == 409:
            return None  # another worker holds it
        raise


def _deleted_meanwhile(store: TrainerStore, job: messages.TrainingJob) -> bool:
    """Whether the job's iteration is gone, or its project gone or being deleted (the background deletion
    marks the project Deleting, removes its blobs, then its rows)."""
    if not store.iteration_exists(job.project_id, job.iteration_id):
        return True
    projects = store.clients.table.get_table_client(layout.PROJECTS_TABLE)
    try:
        row = projects.get_entity(layout.PROJECT_PARTITION, job.project_id, select=["Status"])
    except ResourceNotFoundError:
        return True
    return row.get("Status") == layout.PROJECT_DELETING


def _sweep_if_deleted(store: TrainerStore, job: messages.TrainingJob) -> int:
    """After a job, for an iteration deleted before or while it ran: remove what the job wrote under the
    iteration's prefix (its `_lock`, artifacts written after the deletion's sweep), so no blob outlives the
    iteration. The deletion cannot do it alone: it runs while the job still holds the leased `_lock`."""
    if not _deleted_meanwhile(store, job):
        return 0
    container = store.clients.blob.get_container_client(layout.MODELS)
    names = [b.name for b in container.list_blobs(layout.iteration_prefix(job.project_id, job.iteration_id))]
    for name in names:
        try:
            container.delete_blob(name)
        except ResourceNotFoundError:
            pass  # the deletion took it first
    if names:
        log.info("job %s: its iteration was deleted; removed %d blobs it left", job.iteration_id, len(names))
    return len(names)


def _poison(store: TrainerStore, message, reason: str) -> None:
    body = json.dumps({"reason": reason, "message": message.content})
    store.clients.queue(layout.TRAINING_JOBS + layout.POISON_SUFFIX).send_message(body)


def _handle_export(message, queue, store: TrainerStore, job: messages.ExportJob, attempt: int) -> str:
    """An on-demand export flavour: made, or retried, or on the last attempt settled as Failed with the
    reason (so the export routes stop answering Exporting)."""
    keeper = _Keeper(queue, message, None)
    keeper.start()
    try:
        status = run_export(job, store)
        store.emit(
            messages.ExportEvent(
                job.project_id,
                job.iteration_id,
                job.platform,
                job.flavor,
                "Done" if status.get("status") == "Done" else "Failed",
                str(status.get("reason") or ""),
            )
        )
        outcome = "exported"
    except Exception as exc:
        log.exception("export %s of %s attempt %d failed", job.flavor, job.iteration_id, attempt)
        message = keeper.stop()
        if attempt < MAX_ATTEMPTS:
            queue.update_message(message, visibility_timeout=retry_delay(attempt))
            return "retry"
        reason = f"failed {attempt} times; last error: {type(exc).__name__}: {str(exc)[:300]}"
        store.write_json(
            job.project_id,
            job.iteration_id,
            export_target(job)[1],
            {"status": "Failed", "reason": reason, "at": messages.now_iso()},
        )
        store.emit(
            messages.ExportEvent(job.project_id, job.iteration_id, job.platform, job.flavor, "Failed", reason)
        )
        outcome = "export-failed"
    message = keeper.stop() if keeper.is_alive() else keeper.message
    queue.delete_message(message)
    return outcome


def handle(message, queue, store: TrainerStore, device: str | None = None) -> str:
    """Process one received message; return what happened."""
    try:
        job = messages.parse_work(message.content)
    except messages.MessageError as exc:
        log.error("job message %s rejected: %s", message.id, exc)
        _poison(store, message, str(exc))
        queue.delete_message(message)
        return "poisoned"
    attempt = message.dequeue_count or 1
    if isinstance(job, messages.ExportJob):
        return _handle_export(message, queue, store, job, attempt)
    if attempt > MAX_ATTEMPTS:
        store.emit(
            messages.TrainingEvent(
                job.project_id,
                job.iteration_id,
                messages.FAILED,
                error_code=messages.ERR_TOO_MANY_ATTEMPTS,
                error_message=f"training stopped without reporting {MAX_ATTEMPTS} times "
                "(the process crashed or was killed, e.g. out of memory)",
                attempt=attempt,
            )
        )
        _sweep_if_deleted(store, job)
        queue.delete_message(message)
        return "failed-attempts"
    lease = _lease(store, job)
    if lease is None:
        queue.update_message(message, visibility_timeout=LEASE_S)
        return "busy"
    keeper = _Keeper(queue, message, lease)
    keeper.start()
    try:
        status = run_job(job, store, attempt=attempt, device=device)
    except Exception as exc:
        log.exception("job %s attempt %d failed", job.iteration_id, attempt)
        message = keeper.stop()
        if attempt >= MAX_ATTEMPTS:
            store.emit(
                messages.TrainingEvent(
                    job.project_id,
                    job.iteration_id,
                    messages.FAILED,
                    error_code=messages.ERR_INTERNAL,
                    error_message=f"failed {attempt} times; last error: "
                    f"{type(exc).__name__}: {str(exc)[:500]}",
                    attempt=attempt,
                )
            )
            queue.delete_message(message)
            return "failed"
        queue.update_message(message, visibility_timeout=retry_delay(attempt))
        return "retry"
    finally:
        if keeper.is_alive():
            message = keeper.stop()
        try:
            lease.release()
        except HttpResponseError:
            pass
    _sweep_if_deleted(store, job)
    queue.delete_message(message)
    return status


def poll(
    store: TrainerStore,
    once: bool = False,
    interval: float = 0.5,
    device: str | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Worker loop (or, with once=True, handle at most one message: the Container Apps job mode)."""
    queue = store.clients.queue(layout.TRAINING_JOBS)
    stop = stop or threading.Event()
    handled = 0
    while not stop.is_set():
        received = list(queue.receive_messages(max_messages=1, visibility_timeout=VISIBILITY_S))
        for message in received:
            outcome = handle(message, queue, store, device)
            log.info("job message %s: %s", message.id, outcome)
            handled += 1
        if once:
            return handled
        if not received:
            stop.wait(interval)
    return handled
