"""Queue trigger: the trainer's progress and outcome events become iteration state (training/events.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from cvcore import layout, messages

from . import bootstrap
from .domain.ports import wired
from .training import exporting, webhooks
from .training.events import apply_event
from .training.integration import training_message
from .training.mail import deliver_training_mail

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
    s = bootstrap.services()
    if isinstance(event, messages.ExportEvent):
        outcome = exporting.settled(s.repo, s.blobs, s.integration, event)
        log.info(
            "export %s/%s of iteration %s: %s", event.platform, event.flavor, event.iteration_id, outcome
        )
        return
    outcome = apply_event(s.repo, event)
    if outcome == "applied" and event.status in (messages.COMPLETED, messages.FAILED):
        project = s.repo.get_project(event.project_id)
        if project and s.integration:
            s.integration.announce(
                project, training_message(project.id, event.iteration_id, event.status == messages.COMPLETED)
            )
        deliver_training_mail(s.repo, s.mailer, event.project_id, event.iteration_id)
    log.info(
        "training event %s for iteration %s: %s %s",
        event.status,
        event.iteration_id,
        outcome,
        event.error_code or "",
    )


@bp.queue_trigger(arg_name="msg", queue_name=layout.WEBHOOK_DELIVERIES, connection="AzureWebJobsStorage")
def webhook_deliveries(msg: func.QueueMessage) -> None:
    """One attempt of a project webhook delivery (training/webhooks.py); retries are re-queued with a delay."""
    s = bootstrap.services()
    integration = wired(s.integration, "integration")
    status = webhooks.attempt(
        s.repo,
        s.blobs,
        integration.webhook_queue,
        msg.get_body().decode(),
        integration.webhook_allow_origins,
    )
    log.info("webhook delivery %s: %s", msg.id, status)
