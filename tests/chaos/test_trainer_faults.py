"""Chaos: the trainer worker SIGKILLed mid-job, a job message delivered twice, and job messages for a project
or an iteration that is gone. Each ends with the iteration settled (Completed, or Failed with a reason),
the training-jobs queue empty, nothing on its poison queue and no blob left behind for what was deleted.

The worker runs with a short visibility timeout and lease (TRAINER_VISIBILITY_SECONDS / _LEASE_SECONDS,
production keeps 300 s / 60 s), so a killed job's message reappears within seconds.
"""

from __future__ import annotations

import json
import time

import pytest
from azure.storage.blob import BlobServiceClient

from cvcore import domains, layout, messages
from cvcore.settings import load_storage
from cvcore.storage import StorageClients
from gpu_trainer import worker
from tests.support.chaos import blob_names, kill_hard, queue_depth, table_rows, wait_until
from tests.support.localhost import running_host, running_trainer
from tests.support.training import COMPACT, add_cats_and_cups, wait_trained

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]
VISIBILITY_S = LEASE_S = 15  # the shortest lease Blob storage grants
CPU_SECONDS = 4
TRAINER_ENV = {
    worker.VISIBILITY_ENV: str(VISIBILITY_S),
    worker.LEASE_ENV: str(LEASE_S),
    "TRAINER_QUICK_CPU_SECONDS": str(CPU_SECONDS),
}
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def stack(azurite):
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
    from msrest.authentication import ApiKeyCredentials

    from cvcore.settings import LOCAL_TRAINING_KEY

    with running_host(azurite) as url:
        yield CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )


def _lock_leased(conn: str, project_id: str, iteration_id: str) -> bool:
    blob = BlobServiceClient.from_connection_string(conn).get_blob_client(
        layout.MODELS, layout.iteration_artifact(project_id, iteration_id, "_lock")
    )
    return blob.exists() and blob.get_blob_properties().lease.state == "leased"


def _queues_settled(conn: str) -> bool:
    return queue_depth(conn, layout.TRAINING_JOBS) == 0 and queue_depth(conn, layout.TRAINING_EVENTS) == 0


def _send_job(conn: str, body: str) -> None:
    StorageClients(load_storage({"AzureWebJobsStorage": conn})).queue(layout.TRAINING_JOBS).send_message(body)


def test_sigkill_mid_job_recovers_within_the_visibility_timeout(stack, azurite):
    trainer = stack
    project = trainer.create_project(f"chaos-kill-{layout.new_id()[:8]}")
    add_cats_and_cups(trainer, project.id, per_tag=5)
    poison_before = queue_depth(azurite, layout.TRAINING_JOBS + layout.POISON_SUFFIX)
    iteration = trainer.train_project(project.id)
    with running_trainer(azurite, env=TRAINER_ENV) as first:
        wait_until(
            lambda: _lock_leased(azurite, project.id, iteration.id), 60, what="the trainer took the job"
        )
        time.sleep(2)  # into the job: the dataset is loading or the model training
        killed_at = kill_hard(first)
    marker = layout.iteration_artifact(project.id, iteration.id, layout.COMPLETED_MARKER)
    assert marker not in blob_names(azurite, layout.MODELS, marker), "the job finished before the kill"
    assert trainer.get_iteration(project.id, iteration.id).status == "Training"
    with running_trainer(azurite, env=TRAINER_ENV) as second:
        settled = wait_trained(trainer, project.id, iteration.id, timeout=150, log_path=second.log_path)
        recovered_s = time.monotonic() - killed_at
        wait_until(lambda: _queues_settled(azurite), 30, what="training-jobs and -events drained")
        log = open(second.log_path).read()
    FIGURES["recovery_s"] = recovered_s
    assert settled.status == "Completed", settled.training_error_details
    # the restarted worker trained the message the kill left invisible (not lost, not poisoned)
    assert ": Completed" in log, log[-3000:]
    bound = VISIBILITY_S + LEASE_S + 120
    assert recovered_s < bound, f"recovered in {recovered_s:.0f} s, bound {bound} s"
    assert queue_depth(azurite, layout.TRAINING_JOBS + layout.POISON_SUFFIX) == poison_before
    assert not _lock_leased(azurite, project.id, iteration.id), "the lease of the finished job is still held"
    print(f"\nCHAOS sigkill: iteration Completed {recovered_s:.1f} s after the SIGKILL (bound {bound} s)")

    # the same job message delivered again: a no-op that says Completed again, nothing retrained
    config = json.loads(
        BlobServiceClient.from_connection_string(azurite)
        .get_blob_client(
            layout.MODELS, layout.iteration_artifact(project.id, iteration.id, layout.TRAINING_CONFIG)
        )
        .download_blob()
        .readall()
    )
    job = messages.parse_job(json.dumps(config["job"]))
    marker_client = BlobServiceClient.from_connection_string(azurite).get_blob_client(layout.MODELS, marker)
    etag = marker_client.get_blob_properties().etag
    trained_at = settled.trained_at
    assert job.iteration_id == iteration.id
    with running_trainer(azurite, env=TRAINER_ENV) as third:
        _send_job(azurite, messages.dumps(job))
        _send_job(azurite, messages.dumps(job))
        wait_until(lambda: _queues_settled(azurite), 60, what="the duplicates were consumed")
        log = open(third.log_path).read()
    again = trainer.get_iteration(project.id, iteration.id)
    assert again.status == "Completed" and again.trained_at == trained_at
    assert marker_client.get_blob_properties().etag == etag, "a duplicate retrained the iteration"
    assert log.count(": Completed") >= 2, log[-2000:]
    trainer.delete_project(project.id)


def test_jobs_for_a_deleted_project_or_iteration_settle_and_leave_nothing(stack, azurite):
    trainer = stack
    kept = trainer.create_project(f"chaos-kept-{layout.new_id()[:8]}")
    gone = trainer.create_project(f"chaos-gone-{layout.new_id()[:8]}")
    trainer.delete_project(gone.id)
    wait_until(
        lambda: (
            not [
                r
                for r in table_rows(azurite, layout.PROJECTS_TABLE, layout.PROJECT_PARTITION)
                if r["RowKey"] == gone.id
            ]
        ),
        60,
        what="the deleted project's row removed",
    )
    poison_before = queue_depth(azurite, layout.TRAINING_JOBS + layout.POISON_SUFFIX)
    missing_iteration = layout.new_id()
    targets = [(gone.id, layout.new_id()), (kept.id, missing_iteration)]
    with running_trainer(azurite, env=TRAINER_ENV) as proc:
        for project_id, iteration_id in targets:
            job = messages.TrainingJob(
                project_id=project_id,
                iteration_id=iteration_id,
                task="classification",
                classification_type="Multiclass",
                domain_id=COMPACT,
                backbone=domains.get(COMPACT).backbone,
                training_type="Regular",
                budget_hours=0,
                dataset_blob=layout.iteration_dataset(project_id, iteration_id),
                dataset_hash="0" * 64,
            )
            _send_job(azurite, messages.dumps(job))
        started = time.monotonic()
        wait_until(lambda: _queues_settled(azurite), 60, what="the jobs for what is gone were consumed")
        settled_s = time.monotonic() - started
        log = open(proc.log_path).read()
    assert log.count(f": {messages.FAILED}") >= 2, log[-3000:]
    assert queue_depth(azurite, layout.TRAINING_JOBS + layout.POISON_SUFFIX) == poison_before
    for project_id, iteration_id in targets:
        left = blob_names(azurite, layout.MODELS, layout.iteration_prefix(project_id, iteration_id))
        assert left == [], f"a job for a missing iteration left {left}"
        assert not [
            r for r in table_rows(azurite, layout.ITERATIONS_TABLE, project_id) if r["RowKey"] == iteration_id
        ]
    assert blob_names(azurite, layout.MODELS, layout.project_prefix(gone.id)) == []
    print(f"\nCHAOS jobs for a deleted project / iteration: both settled in {settled_s:.1f} s, nothing left")
    trainer.delete_project(kept.id)
