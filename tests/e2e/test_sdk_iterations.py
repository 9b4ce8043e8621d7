"""End to end: train, evaluate, publish and export through the official SDK, with the local host and the
trainer worker as real processes on real Azurite, on real photos (a cat vs a coffee cup)."""

import io
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

from cvcore import artifacts
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.support import images as imgs
from tests.support.localhost import running_host, running_trainer

pytestmark = pytest.mark.e2e
COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
CAT, CUP = 1, 2  # photo_image(index): index % 7 picks the photo (chelsea the cat, a coffee cup)


def photo(kind: int, n: int) -> bytes:
    return imgs.photo_jpeg(kind + 7 * (3 * n + 1), size=(320, 240))


@pytest.fixture(scope="module")
def trainer(azurite):
    with running_host(azurite) as url, running_trainer(azurite) as worker:
        client = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )
        client.worker = worker
        yield client


def wait_for(trainer, project_id, iteration_id, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        it = trainer.get_iteration(project_id, iteration_id)
        if it.status in ("Completed", "Failed"):
            return it
        time.sleep(0.5)
    raise AssertionError(
        f"iteration still {it.status} after {seconds} s:\n" + open(trainer.worker.log_path).read()[-3000:]
    )


def test_train_evaluate_publish_export(trainer):
    project = trainer.create_project("cats-and-cups", domain_id=COMPACT, target_export_platforms=["ONNX"])
    try:
        cat, cup = trainer.create_tag(project.id, "cat"), trainer.create_tag(project.id, "cup")
        for tag, kind in ((cat, CAT), (cup, CUP)):
            batch = ImageFileCreateBatch(
                images=[ImageFileCreateEntry(name=f"{n}.jpg", contents=photo(kind, n)) for n in range(6)],
                tag_ids=[tag.id],
            )
            assert trainer.create_images_from_files(project.id, batch).is_batch_successful
        iteration = trainer.train_project(project.id)
        assert iteration.status == "Queued"
        with pytest.raises(CustomVisionErrorException) as err:
            trainer.train_project(project.id, force_train=True)
        assert err.value.error.code == "BadRequestTrainingAlreadyInProgress"

        done = wait_for(trainer, project.id, iteration.id)
        assert done.status == "Completed", done.training_error_details
        assert done.exportable and done.trained_at is not None

        perf = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5)
        assert {t.name for t in perf.per_tag_performance} == {"cat", "cup"}
        assert perf.precision >= 0.8 and perf.recall >= 0.8, perf.as_dict()
        strict = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.999)
        assert strict.recall <= perf.recall  # a higher threshold can only lose recall
        per_image = trainer.get_image_performances(project.id, iteration.id)
        assert len(per_image) == 12 and all(p.predictions for p in per_image)
        assert trainer.get_image_performance_count(project.id, iteration.id) == 12

        with pytest.raises(CustomVisionErrorException) as err:
            trainer.train_project(project.id)
        assert err.value.error.code == "BadRequestTrainingNotNeeded"

        trainer.publish_iteration(project.id, iteration.id, "prod", "/subscriptions/local/prediction")
        assert trainer.get_iteration(project.id, iteration.id).publish_name == "prod"

        export = trainer.export_iteration(project.id, iteration.id, "ONNX")
        assert export.status == "Done"
        assert [e.flavor for e in trainer.get_exports(project.id, iteration.id)] == ["ONNX12"]
        with urllib.request.urlopen(export.download_uri, timeout=10) as resp:
            package = zipfile.ZipFile(io.BytesIO(resp.read()))
        import json

        import onnxruntime as ort
        from PIL import Image

        sidecar = artifacts.ModelSidecar.from_json(json.loads(package.read("model.json")))
        session = ort.InferenceSession(package.read("model.onnx"), providers=["CPUExecutionProvider"])
        held_out = [Image.open(io.BytesIO(photo(k, 50))).convert("RGB") for k in (CAT, CUP)]
        (probs,) = session.run(["probabilities"], {"image": artifacts.preprocess(held_out, sidecar)})
        names = [lab.name for lab in sorted(sidecar.labels, key=lambda lab: lab.index)]
        assert [names[i] for i in np.argmax(probs, axis=1)] == ["cat", "cup"]

        # the int8 flavour is made on demand by the trainer: Exporting, then Done in get_exports
        asked = trainer.export_iteration(project.id, iteration.id, "ONNX", flavor="ONNXInt8")
        assert asked.status == "Exporting" and asked.download_uri is None
        deadline = time.monotonic() + 60
        while (state := {e.flavor: e for e in trainer.get_exports(project.id, iteration.id)})[
            "ONNXInt8"
        ].status == "Exporting" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert state["ONNXInt8"].status == "Done", state["ONNXInt8"].status
        with urllib.request.urlopen(state["ONNXInt8"].download_uri, timeout=10) as resp:
            quantised = zipfile.ZipFile(io.BytesIO(resp.read())).read("model.onnx")
        q_session = ort.InferenceSession(quantised, providers=["CPUExecutionProvider"])
        (q_probs,) = q_session.run(["probabilities"], {"image": artifacts.preprocess(held_out, sidecar)})
        assert [names[i] for i in np.argmax(q_probs, axis=1)] == ["cat", "cup"] and len(quantised) < len(
            package.read("model.onnx")
        ) / 2
    finally:
        for it in trainer.get_iterations(project.id):
            if it.publish_name:
                trainer.unpublish_iteration(project.id, it.id)
        trainer.delete_project(project.id)
