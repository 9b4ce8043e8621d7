"""Queue trigger: the trainer's progress and outcome events become iteration state (training/events.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from cvcore import layout, messages

from . import bootstrap
from .training.events import apply_event

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name=layout.TRAINING_EVENTS, connection="AzureWebJobsStorage")
def training_events(msg: func.QueueMessage) -> None:
    try:
        event = messages.parse_event(msg.get_body())
    except messages.MessageError as exc:
        # A malformed event can never succeed: raise so the host moves it to the poison queue, with the reason.
        log.error("training event %s rejected: %s", msg.id, exc)
        raise
    outcome = apply_event(bootstrap.services().repo, event)
    log.info("training event %s for iteration %s: %s %s", event.status, event.iteration_id, outcome,
             event.error_code or "")
