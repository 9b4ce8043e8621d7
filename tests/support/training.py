"""Train through the SDK in tests: the cat-and-cup photo set, and waiting for an iteration to settle."""

from __future__ import annotations

import time
from contextlib import contextmanager

from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)

from tests.support import images as imgs

CAT, CUP = 1, 2  # photo_image(index): index % 7 picks the photo (chelsea the cat, a coffee cup)


def photo(kind: int, n: int) -> bytes:
    return imgs.photo_jpeg(kind + 7 * (3 * n + 1), size=(320, 240))


def add_cats_and_cups(trainer, project_id: str, per_tag: int = 6) -> dict:
    """Tags "cat" and "cup" with `per_tag` real photos each; returns {name: tag}."""
    tags = {}
    for name, kind in (("cat", CAT), ("cup", CUP)):
        tags[name] = trainer.create_tag(project_id, name)
        batch = ImageFileCreateBatch(
            images=[ImageFileCreateEntry(name=f"{n}.jpg", contents=photo(kind, n)) for n in range(per_tag)],
            tag_ids=[tags[name].id],
        )
        assert trainer.create_images_from_files(project_id, batch).is_batch_successful
    return tags


def wait_trained(
    trainer, project_id: str, iteration_id: str, timeout: float = 300, log_path: str | None = None
):
    """The iteration once Completed or Failed (an AssertionError, with the trainer's log tail, past timeout)."""
    deadline = time.monotonic() + timeout
    while (it := trainer.get_iteration(project_id, iteration_id)).status not in ("Completed", "Failed"):
        assert time.monotonic() < deadline, f"iteration still {it.status}" + (
            "\n" + open(log_path).read()[-3000:] if log_path else ""
        )
        time.sleep(0.5)
    return it


COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"  # General (compact): exportable


@contextmanager
def local_stack(connection_string: str, cpu_seconds: int = 20, host_env: dict | None = None):
    """The local host (with `host_env` added to its settings) and the trainer worker on real storage (Quick
    training capped at `cpu_seconds`); yields (base URL, SDK training client, SDK prediction client)."""
    from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
    from msrest.authentication import ApiKeyCredentials

    from cvcore import settings
    from tests.support.localhost import running_host, running_trainer

    env = {settings.TRAINER_QUICK_CPU_SECONDS: str(cpu_seconds)}
    with (
        running_host(connection_string, extra_env=host_env) as url,
        running_trainer(connection_string, env=env),
    ):
        yield (
            url,
            CustomVisionTrainingClient(
                url, ApiKeyCredentials(in_headers={"Training-key": settings.LOCAL_TRAINING_KEY})
            ),
            CustomVisionPredictionClient(
                url, ApiKeyCredentials(in_headers={"Prediction-key": settings.LOCAL_PREDICTION_KEY})
            ),
        )
