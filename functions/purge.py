"""Timer trigger: stored predictions are kept 30 days (ports.RETENTION); once a day the older ones go,
rows first, then their images (adapters/predictions.py); and the expired Suggested query sessions
(training/review.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from . import bootstrap
from .domain.ports import wired
from .domain.records import utcnow
from .prediction.ports import RETENTION
from .training import review

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(schedule="0 17 3 * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
def purge_predictions(timer: func.TimerRequest) -> None:
    cutoff = utcnow() - RETENTION
    services = bootstrap.services()
    removed = wired(services.predictor, "predictor").store.purge(cutoff)
    log.info(
        "purged %d stored predictions made before %s%s",
        removed,
        cutoff.isoformat(),
        " (past due)" if timer.past_due else "",
    )
    sessions = review.purge_query_sessions(services.repo, services.blobs, utcnow())
    log.info("purged %d expired Suggested query sessions", sessions)
