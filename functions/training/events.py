"""Applying the trainer's events to iteration rows. The `training-events` queue trigger is the only writer
of training state; events are idempotent: a terminal iteration never changes again, so a duplicated or
late message cannot flip a Completed iteration, and an event for a deleted iteration is dropped."""

from __future__ import annotations

import logging
from datetime import datetime

from cvcore import messages

from ..domain.ports import ConcurrencyError, MetadataRepository
from ..domain.records import Iteration, utcnow

log = logging.getLogger(__name__)


def _apply(it: Iteration, event: messages.TrainingEvent) -> bool:
    if it.status in messages.TERMINAL:
        return False
    if event.status == messages.TRAINING:
        it.status = messages.TRAINING
        it.progress = max(it.progress, min(1.0, max(0.0, event.progress)))
        it.progress_message = event.message[:500]
    elif event.status == messages.COMPLETED:
        it.status, it.progress, it.progress_message = messages.COMPLETED, 1.0, event.message[:500]
        it.trained_at = datetime.fromisoformat(event.at.replace("Z", "+00:00"))
        it.training_seconds = event.training_seconds
        it.metrics = event.metrics or {}
        it.skipped_image_ids = list(event.skipped_image_ids)
        it.exportable = it.exportable and event.exportable
    else:
        it.status = messages.FAILED
        it.error_code = event.error_code or messages.ERR_INTERNAL
        it.error_message = (event.error_message or "")[:2000]
        it.error_image_ids = list(event.error_image_ids)
        it.training_seconds = event.training_seconds
    it.last_modified = utcnow()
    return True


def apply_event(repo: MetadataRepository, event: messages.TrainingEvent) -> str:
    """Apply one event; return what happened ("applied", "ignored", "unknown-iteration")."""
    for _ in range(10):
        it = repo.get_iteration(event.project_id, event.iteration_id)
        if it is None:
            return "unknown-iteration"
        if not _apply(it, event):
            return "ignored"
        try:
            repo.update_iteration(event.project_id, it)
            return "applied"
        except ConcurrencyError:
            continue
    raise RuntimeError(f"iteration {event.iteration_id} kept changing; the event will be retried")
