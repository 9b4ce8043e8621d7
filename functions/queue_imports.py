"""Queue trigger: a large import_project finishes here (training/project_transfer.run_import).

The host retries a message that raises (host.json maxDequeueCount) and then moves it to
project-imports-poison; run_import marks the project Failed on the last attempt instead of raising, so no
project stays Importing.
"""

from __future__ import annotations

import logging

import azure.functions as func

from cvcore import layout

from . import bootstrap
from .training import project_transfer

bp = func.Blueprint()
log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5  # host.json queues.maxDequeueCount


@bp.queue_trigger(arg_name="msg", queue_name=layout.PROJECT_IMPORTS, connection="AzureWebJobsStorage")
def project_imports(msg: func.QueueMessage) -> None:
    try:
        project_id, snapshot = project_transfer.parse_job(msg.get_body())
    except ValueError as exc:
        log.error("import job %s rejected: %s", msg.id, exc)  # raised: the host poisons it after its retries
        raise
    s = bootstrap.services()
    attempt = msg.dequeue_count or 1
    status = project_transfer.run_import(s.repo, s.blobs, s.pool, project_id, snapshot, s.url_allow_origins,
                                         last_attempt=attempt >= MAX_ATTEMPTS)
    log.info("project import %s (attempt %d): %s", project_id, attempt, status)
