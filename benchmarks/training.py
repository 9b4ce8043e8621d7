"""Training speed on this machine: 10 tags x 50 real Fashion-MNIST photos uploaded through the SDK, Quick
training from `train` to Completed (host, queue, trainer worker, artifacts, event trigger: the whole path);
then 50 more images (5 per tag) and the retraining, which the embedding cache should make cheap.
Target: the first under 60 s on 2 CPU cores, the retraining under 25% of it."""

from __future__ import annotations

import time

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry
from msrest.authentication import ApiKeyCredentials

from cvcore.settings import LOCAL_TRAINING_KEY
from tests.support import fashion_mnist as fm
from tests.support.azurite import running_azurite
from tests.support.localhost import running_host, running_trainer

PER_TAG, MORE_PER_TAG = 50, 5


def _upload(trainer, project_id, tags, images, labels, indices):
    entries = [(tags[int(labels[i])], fm.as_png(images[i])) for i in indices]
    for start in range(0, len(entries), 64):
        chunk = entries[start:start + 64]
        batch = ImageFileCreateBatch(images=[ImageFileCreateEntry(name=f"{start + j}.png", contents=data,
                                                                  tag_ids=[tag])
                                             for j, (tag, data) in enumerate(chunk)])
        assert trainer.create_images_from_files(project_id, batch).is_batch_successful


def _train(trainer, project_id) -> tuple[float, object]:
    start = time.perf_counter()
    iteration = trainer.train_project(project_id)
    while True:
        it = trainer.get_iteration(project_id, iteration.id)
        if it.status in ("Completed", "Failed"):
            return time.perf_counter() - start, it
        time.sleep(0.2)


def run() -> dict:
    images, labels = fm.load("train")
    first = fm.balanced_indices(labels, PER_TAG, seed=1)
    more = fm.balanced_indices(labels, MORE_PER_TAG, seed=2, exclude=first)
    with running_azurite() as conn, running_host(conn, poll_interval=0.5) as url, running_trainer(conn):
        trainer = CustomVisionTrainingClient(url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY}))
        project = trainer.create_project("fashion-speed")
        tags = [trainer.create_tag(project.id, name).id for name in fm.CLASSES]
        _upload(trainer, project.id, tags, images, labels, first)
        first_s, it1 = _train(trainer, project.id)
        assert it1.status == "Completed", it1.training_error_details
        _upload(trainer, project.id, tags, images, labels, more)
        retrain_s, it2 = _train(trainer, project.id)
        assert it2.status == "Completed", it2.training_error_details
        perf = trainer.get_iteration_performance(project.id, it2.id)
    return {"tags": len(fm.CLASSES), "images_first": len(first), "images_added": len(more),
            "first_train_to_completed_s": first_s, "retrain_to_completed_s": retrain_s,
            "retrain_ratio": retrain_s / first_s, "cv_precision": perf.precision, "cv_recall": perf.recall}


def report(r: dict) -> str:
    return (f"training speed (2 CPU cores, whole path: host, queue, worker, artifacts, events)\n"
            f"  {r['tags']} tags x {r['images_first'] // r['tags']} images: train -> Completed "
            f"{r['first_train_to_completed_s']:.1f} s (target < 60 s)\n"
            f"  +{r['images_added']} images: retrain -> Completed {r['retrain_to_completed_s']:.1f} s, "
            f"ratio {r['retrain_ratio']:.2f} (target < 0.25)\n"
            f"  cross-validated precision {r['cv_precision']:.3f}, recall {r['cv_recall']:.3f}")
