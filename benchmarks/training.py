"""Training speed on this machine: 10 tags x 50 real Fashion-MNIST photos uploaded through the SDK, Quick
training from `train` to Completed (host, queue, trainer worker, artifacts, event trigger: the whole path);
then 50 more images (5 per tag) and the retraining, which the embedding cache should make cheap.
Target: the first under 60 s on 2 CPU cores, the retraining under 25% of it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from azure.storage.blob import BlobServiceClient
from msrest.authentication import ApiKeyCredentials

from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.support import fashion_mnist as fm
from tests.support.azurite import running_azurite
from tests.support.localhost import running_host, running_trainer

PER_TAG, MORE_PER_TAG = 50, 5


def _upload(trainer, project_id, tags, images, labels, indices):
    entries = [(tags[int(labels[i])], fm.as_png(images[i])) for i in indices]
    for start in range(0, len(entries), 64):
        chunk = entries[start : start + 64]
        batch = ImageFileCreateBatch(
            images=[
                ImageFileCreateEntry(name=f"{start + j}.png", contents=data, tag_ids=[tag])
                for j, (tag, data) in enumerate(chunk)
            ]
        )
        assert trainer.create_images_from_files(project_id, batch).is_batch_successful


def _train(trainer, project_id) -> tuple[float, object, float]:
    """(seconds from train to Completed, the iteration, seconds the train request itself took)"""
    start = time.perf_counter()
    iteration = trainer.train_project(project_id)
    request_s = time.perf_counter() - start
    while True:
        it = trainer.get_iteration(project_id, iteration.id)
        if it.status in ("Completed", "Failed"):
            it.observed_at = datetime.now(UTC)
            return time.perf_counter() - start, it, request_s
        time.sleep(0.2)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _timings(conn: str, project_id: str, it) -> dict:
    """Where the time went: the trainer's config.json (job stages, the classifier's own steps, when the job
    was queued and picked up) and when the Completed event was emitted and seen through the API."""
    iteration_id = it.id
    blob = BlobServiceClient.from_connection_string(conn).get_blob_client(
        layout.MODELS, layout.iteration_artifact(project_id, iteration_id, layout.TRAINING_CONFIG)
    )
    config = json.loads(blob.download_blob().readall())
    queued, started = _at(config["job"]["requested_at"]), _at(config["started_at"])
    trained = it.trained_at if it.trained_at.tzinfo else it.trained_at.replace(tzinfo=UTC)
    return {
        "queue_to_start_s": round((started - queued).total_seconds(), 3),
        "start_to_completed_event_s": round((trained - started).total_seconds(), 3),
        "event_to_api_s": round((it.observed_at - trained).total_seconds(), 3),
        "job": config.get("job_timings", {}),
        "train": config.get("timings", {}),
        "recipe": f"{config.get('recipe')} {config.get('backbone')} {config.get('features', '')}".strip(),
        "embedded_images": config.get("embedded_images"),
    }


def run() -> dict:
    images, labels = fm.load("train")
    first = fm.balanced_indices(labels, PER_TAG, seed=1)
    more = fm.balanced_indices(labels, MORE_PER_TAG, seed=2, exclude=first)
    with running_azurite() as conn, running_host(conn, poll_interval=0.5) as url, running_trainer(conn):
        trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )
        project = trainer.create_project("fashion-speed")
        tags = [trainer.create_tag(project.id, name).id for name in fm.CLASSES]
        _upload(trainer, project.id, tags, images, labels, first)
        first_s, it1, first_request = _train(trainer, project.id)
        assert it1.status == "Completed", it1.training_error_details
        _upload(trainer, project.id, tags, images, labels, more)
        retrain_s, it2, retrain_request = _train(trainer, project.id)
        assert it2.status == "Completed", it2.training_error_details
        perf = trainer.get_iteration_performance(project.id, it2.id)
        where = {
            "first": {**_timings(conn, project.id, it1), "train_request_s": round(first_request, 3)},
            "retrain": {**_timings(conn, project.id, it2), "train_request_s": round(retrain_request, 3)},
        }
    return {
        "where": where,
        "tags": len(fm.CLASSES),
        "images_first": len(first),
        "images_added": len(more),
        "first_train_to_completed_s": first_s,
        "retrain_to_completed_s": retrain_s,
        "retrain_ratio": retrain_s / first_s,
        "cv_precision": perf.precision,
        "cv_recall": perf.recall,
    }


def report(r: dict) -> str:
    return (
        f"training speed (2 CPU cores, whole path: host, queue, worker, artifacts, events)\n"
        f"  {r['tags']} tags x {r['images_first'] // r['tags']} images: train -> Completed "
        f"{r['first_train_to_completed_s']:.1f} s (target < 60 s)\n"
        f"  +{r['images_added']} images: retrain -> Completed {r['retrain_to_completed_s']:.1f} s, "
        f"ratio {r['retrain_ratio']:.2f} (target < 0.25)\n"
        f"  cross-validated precision {r['cv_precision']:.3f}, recall {r['cv_recall']:.3f}\n"
        + "\n".join(
            f"  {name}: {w['recipe']}, {w['embedded_images']} embedded; train request "
            f"{w['train_request_s']} s; queued -> picked up {w['queue_to_start_s']} s, picked up -> "
            f"Completed event {w['start_to_completed_event_s']} s, event -> seen {w['event_to_api_s']} s; "
            f"job {w['job']}; steps {w['train']}"
            for name, w in r.get("where", {}).items()
        )
    )
