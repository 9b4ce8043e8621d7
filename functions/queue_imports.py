"""Queue trigger of the project-imports queue, the queue of long project jobs: a large import_project finishes
here (training/project_transfer.run_import), so does a large Image Analysis dataset registration (a job with
`"kind": "visionDataset"`, vision/datasets.finish_registration) and a project deletion (`"kind":
"deleteProject"`, training/deletion.run).

The host retries a message that raises (host.json maxDequeueCount) and then moves it to
project-imports-poison; both mark their project Failed on the last attempt instead of raising, so no
project stays Importing.
"""

from __future__ import annotations

import logging

import azure.functions as func

from cvcore import layout

from . import bootstrap
from .training import deletion, project_transfer
from .vision import datasets

bp = func.Blueprint()
log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5  # host.json queues.maxDequeueCount


@bp.queue_trigger(arg_name="msg", queue_name=layout.PROJECT_IMPORTS, connection="AzureWebJobsStorage")
def project_imports(msg: func.QueueMessage) -> None:
    body = msg.get_body()
    try:
        doomed = deletion.parse_job(body)  # None: another kind of job
        dataset = datasets.parse_job(body) if doomed is None else None  # None: an import job
        transfer = project_transfer.parse_job(body) if dataset is None and doomed is None else None
    except ValueError as exc:
        log.error("import job %s rejected: %s", msg.id, exc)  # raised: the host poisons it after its retries
        raise
    s = bootstrap.services()
    attempt = msg.dequeue_count or 1
    if doomed is not None:
        status = deletion.run(
            s.repo,
            s.blobs,
            s.predictor.store if s.predictor else None,
            doomed,
            last_attempt=attempt >= MAX_ATTEMPTS,
            jobs=s.imports,
        )
        log.info("project deletion %s (attempt %d): %s", doomed, attempt, status)
        return
    if dataset is not None:
        status = datasets.finish_registration(s, dataset, last_attempt=attempt >= MAX_ATTEMPTS)
        log.info("dataset registration %s (attempt %d): %s", dataset, attempt, status)
        return
    if transfer is None:  # cannot happen: a body that is neither a deletion nor a dataset parsed as an import
        raise AssertionError(f"import job {msg.id} matched no kind")
    project_id, snapshot = transfer
    status = project_transfer.run_import(
        s.repo,
        s.blobs,
        s.pool,
        project_id,
        snapshot,
        s.url_allow_origins,
        last_attempt=attempt >= MAX_ATTEMPTS,
    )
    log.info("project import %s (attempt %d): %s", project_id, attempt, status)
