"""The trainer's queue worker and job failure paths on real Azurite (the model training itself is
replaced here; tests/trainer and the e2e training test cover it)."""

import json

import pytest

from cvcore import layout, messages
from cvcore.errors import BadRequest
from cvcore.storage import StorageClients
from functions.training import projects, tags, train
from functions.training.events import apply_event
from gpu_trainer import job as jobmod
from gpu_trainer import worker
from gpu_trainer.store import TrainerStore
from tests.integration.api import Api
from tests.support import images as imgs

pytestmark = pytest.mark.integration


@pytest.fixture
def store(services):
    return TrainerStore(StorageClients(services.settings.storage))


@pytest.fixture
def queued(services, store):
    """A project with two tags x 5 real photos, trained: one Queued iteration and one job message."""
    from functions import bootstrap

    bootstrap.override(services)
    api = Api()
    p = projects.create_project(services.repo, f"w-{layout.new_id()[:8]}", None, None, None, [])["id"]
    for t in range(2):
        tag = tags.create_tag(services.repo, p, f"t{t}", None, None)["id"]
        import base64

        body = {
            "images": [
                {"name": f"{i}", "contents": base64.b64encode(imgs.photo_jpeg(300 + 10 * t + i)).decode()}
                for i in range(5)
            ],
            "tagIds": [tag],
        }
        assert api.ok("POST", f"projects/{p}/images/files", json=body)["isBatchSuccessful"]
    drain(store)
    it = train.train_project(
        services.repo,
        services.blobs,
        services.jobs,
        p,
        training_type=None,
        budget_hours=0,
        force=False,
        selected_tags=None,
    )
    yield p, it["id"]
    bootstrap.override(None)
    projects.delete_project(services.repo, services.blobs, p)


def drain(store):
    for name in (layout.TRAINING_JOBS, layout.TRAINING_EVENTS, layout.TRAINING_JOBS + layout.POISON_SUFFIX):
        store.clients.queue(name).clear_messages()


def events(store):
    q = store.clients.queue(layout.TRAINING_EVENTS)
    out = [messages.parse_event(m.content) for m in q.receive_messages(max_messages=32)]
    return out


def apply_all(services, store):
    for event in events(store):
        if isinstance(event, messages.TrainingEvent):
            apply_event(services.repo, event)


def test_malformed_and_unknown_version_messages_go_to_poison(store):
    drain(store)
    jobs = store.clients.queue(layout.TRAINING_JOBS)
    jobs.send_message("not json")
    jobs.send_message(json.dumps({"version": 99, "kind": "TrainingJob"}))
    assert worker.poll(store, once=True) == 1 and worker.poll(store, once=True) == 1
    poison = [
        json.loads(m.content)
        for m in store.clients.queue(layout.TRAINING_JOBS + layout.POISON_SUFFIX).receive_messages(
            max_messages=10
        )
    ]
    assert sorted(p["reason"].split(":")[0] for p in poison) == ["not JSON", "version"]
    assert jobs.peek_messages() == []


def test_missing_dataset_fails_with_dataset_not_found(services, store, queued):
    p, it = queued
    store.clients.blob.get_blob_client(layout.MODELS, layout.iteration_dataset(p, it)).delete_blob()
    worker.poll(store, once=True)
    apply_all(services, store)
    got = services.repo.get_iteration(p, it)
    assert got.status == "Failed" and got.error_code == "datasetNotFound"
    assert store.clients.queue(layout.TRAINING_JOBS).peek_messages() == []


def test_unreadable_images_fail_as_dataset_corrupt_naming_them(services, store, queued):
    p, it = queued
    doomed = [im.id for im in services.repo.list_images(p)][:3]
    for image_id in doomed:
        store.clients.blob.get_blob_client(layout.IMAGES, layout.image_original(p, image_id)).delete_blob()
    worker.poll(store, once=True)
    apply_all(services, store)
    got = services.repo.get_iteration(p, it)
    assert got.status == "Failed" and got.error_code == "datasetCorrupt"
    assert sorted(got.error_image_ids) == sorted(doomed)


def test_deleted_iteration_is_reported_not_trained(services, store, queued):
    p, it = queued
    services.repo.delete_iteration(p, it)
    worker.poll(store, once=True)
    (event,) = events(store)
    assert event.status == "Failed" and event.error_code == "projectDeleted"


def test_diverged_training_is_final(services, store, queued, monkeypatch):
    p, it = queued
    from gpu_trainer.classification import TrainingDiverged

    def diverge(*args, **kwargs):
        raise TrainingDiverged("loss is nan at epoch 3")

    monkeypatch.setattr(jobmod, "train", diverge)
    worker.poll(store, once=True)
    apply_all(services, store)
    got = services.repo.get_iteration(p, it)
    assert got.status == "Failed" and got.error_code == "diverged" and "nan" in got.error_message


def test_crashing_job_is_retried_then_failed_with_the_reason(services, store, queued, monkeypatch):
    p, it = queued
    calls = []

    def crash(job, store_, attempt=1, device=None):
        calls.append(attempt)
        raise MemoryError(f"boom on attempt {attempt}")

    monkeypatch.setattr(worker, "run_job", crash)
    monkeypatch.setattr(worker, "retry_delay", lambda attempt: 0)
    jobs = store.clients.queue(layout.TRAINING_JOBS)
    for expected in range(1, 6):  # Azurite counts the dequeues; attempts 1-4 are put back for a retry
        message = next(iter(jobs.receive_messages(max_messages=1, visibility_timeout=30)))
        assert message.dequeue_count == expected
        assert worker.handle(message, jobs, store) == ("retry" if expected < 5 else "failed")
    apply_all(services, store)
    got = services.repo.get_iteration(p, it)
    assert (
        got.status == "Failed"
        and got.error_code == "internalError"
        and "boom on attempt 5" in got.error_message
    )
    assert calls == [1, 2, 3, 4, 5]


def test_message_back_a_sixth_time_fails_the_iteration(services, store, queued):
    p, it = queued
    jobs = store.clients.queue(layout.TRAINING_JOBS)
    message = next(iter(jobs.receive_messages(max_messages=1)))
    message.dequeue_count = 6  # the process died five times without reporting
    assert worker.handle(message, jobs, store) == "failed-attempts"
    apply_all(services, store)
    assert services.repo.get_iteration(p, it).error_code == "tooManyAttempts"
    assert jobs.peek_messages() == []


def test_duplicated_message_after_completion_trains_nothing(services, store, queued, monkeypatch):
    p, it = queued
    store.write_json(
        p,
        it,
        layout.COMPLETED_MARKER,
        {"skipped_image_ids": [], "training_seconds": 4.2, "metrics": {"precision": 1.0}},
    )
    monkeypatch.setattr(jobmod, "train", lambda *a, **k: pytest.fail("must not train again"))
    worker.poll(store, once=True)
    apply_all(services, store)
    got = services.repo.get_iteration(p, it)
    assert got.status == "Completed" and got.training_seconds == 4.2


def test_quick_retraining_decodes_and_embeds_only_the_new_images(services, store, queued):
    """Real training twice: the second job reuses the first's recipe, reads the cached embeddings (one pack
    per feature) and decodes only the added images plus the export samples."""
    import base64

    p, first = queued
    worker.poll(store, once=True)
    apply_all(services, store)
    assert services.repo.get_iteration(p, first).status == "Completed"
    # the model doctor's advice is beside the artifacts, served by the API with its page
    from functions.training import iterations

    advice = iterations.advice(services.repo, services.blobs, p, first)
    assert advice["task"] == "classification" and advice["images"] == 10
    assert "quantity" in {f["kind"] for f in advice["findings"]} and advice["reportUri"]
    assert advice["checks"]["label_errors"].startswith("ran")
    page = store.read_model_blob(layout.iteration_artifact(p, first, layout.REPORT_ADVICE)).decode()
    assert "Model doctor" in page and "50 images per tag" in page
    # the int8 flavour is made only when an export asks for it: an ExportJob on the same queue
    status_name = layout.iteration_artifact(p, first, layout.MODEL_INT8_STATUS)
    assert not store.exists(status_name)
    from functions.training import exporting

    it_row = services.repo.get_iteration(p, first)
    it_row.exportable = True
    services.repo.update_iteration(p, it_row)
    assert (
        exporting.export(services.repo, services.blobs, services.jobs, p, first, "ONNX", "ONNXInt8")["status"]
        == "Exporting"
    )
    assert worker.poll(store, once=True) == 1
    status = json.loads(store.read_model_blob(status_name))
    assert status["status"] == "Done" or status["reason"]
    assert (status["status"] == "Done") == store.exists(
        layout.iteration_artifact(p, first, layout.MODEL_INT8_ONNX)
    )
    if status["status"] == "Done":
        assert status["agreement"] == 1.0  # calibrated on the dataset's first images and checked on them
        assert [e["status"] for e in exporting.exports_of(services.repo, services.blobs, p, first)] == [
            "Done"
        ]
    api = Api()
    for t, tag in enumerate(sorted(services.repo.list_tags(p), key=lambda tag: tag.name)):
        body = {
            "images": [{"name": "more", "contents": base64.b64encode(imgs.photo_jpeg(400 + t)).decode()}],
            "tagIds": [tag.id],
        }
        assert api.ok("POST", f"projects/{p}/images/files", json=body)["isBatchSuccessful"]
    second = train.train_project(
        services.repo,
        services.blobs,
        services.jobs,
        p,
        training_type=None,
        budget_hours=0,
        force=False,
        selected_tags=None,
    )["id"]
    worker.poll(store, once=True)
    apply_all(services, store)
    assert services.repo.get_iteration(p, second).status == "Completed"
    config = json.loads(store.read_model_blob(layout.iteration_artifact(p, second, layout.TRAINING_CONFIG)))
    assert config["warm_start"] == {
        "iteration_id": first,
        "reused": True,
        "note": config["warm_start"]["note"],
    }
    assert config["embedded_images"] == 2 and config["images"] == 12
    assert config["decoded_images"] <= 2 + jobmod.SAMPLES
    assert (
        len(
            json.loads(store.read_model_blob(layout.iteration_artifact(p, second, layout.EVALUATION)))[
                "images"
            ]
        )
        == 12
    )


def test_a_dataset_too_large_to_hold_decoded_is_streamed_and_still_skips_what_is_unreadable(
    services, store, queued, monkeypatch
):
    """Real training with the decoded-image memory limit below this dataset's size: every image is checked
    by decoding it and dropping it, training reads and decodes each image whenever it needs it, nothing is
    held, and an unreadable image is skipped as when the images are held."""
    from cvcore import settings

    p, it = queued
    m = jobmod.load_dataset(store, p, it)
    assert jobmod.holds_decoded(m) and not jobmod.holds_decoded(m, limit_mb=jobmod.decoded_bytes(m) / 2**21)
    monkeypatch.setenv(settings.TRAINER_DECODED_MB, str(jobmod.decoded_bytes(m) / 2**21))  # half of it
    doomed = [im.id for im in services.repo.list_images(p)][0]
    store.clients.blob.get_blob_client(layout.IMAGES, layout.image_original(p, doomed)).delete_blob()
    worker.poll(store, once=True)
    apply_all(services, store)
    got = services.repo.get_iteration(p, it)
    assert got.status == "Completed", (got.error_code, got.error_message)
    config = json.loads(store.read_model_blob(layout.iteration_artifact(p, it, layout.TRAINING_CONFIG)))
    assert config["streamed_images"] is True and config["decoded_images"] == 0 and config["images"] == 9
    assert config["skipped_image_ids"] == [doomed]
    evaluation = json.loads(store.read_model_blob(layout.iteration_artifact(p, it, layout.EVALUATION)))
    assert len(evaluation["images"]) == 9


def test_export_job_that_keeps_failing_is_settled_failed_not_stuck(services, store, queued, monkeypatch):
    p, it = queued  # never trained: no model to quantise
    drain(store)
    monkeypatch.setattr(worker, "retry_delay", lambda attempt: 0)
    store.clients.queue(layout.TRAINING_JOBS).send_message(
        messages.dumps(messages.ExportJob(p, it, "ONNXInt8"))
    )
    outcomes = [
        worker.handle(m, store.clients.queue(layout.TRAINING_JOBS), store)
        for _ in range(worker.MAX_ATTEMPTS)
        for m in store.clients.queue(layout.TRAINING_JOBS).receive_messages(max_messages=1)
    ]
    assert outcomes == ["retry"] * (worker.MAX_ATTEMPTS - 1) + ["export-failed"]
    status = json.loads(store.read_model_blob(layout.iteration_artifact(p, it, layout.MODEL_INT8_STATUS)))
    assert status["status"] == "Failed" and "ResourceNotFoundError" in status["reason"]
    assert store.clients.queue(layout.TRAINING_JOBS).peek_messages() == []
    (settled,) = events(store)  # the Functions app learns it from an ExportEvent, not by polling
    assert (
        isinstance(settled, messages.ExportEvent)
        and settled.status == "Failed"
        and settled.reason == status["reason"]
    )


def test_a_converter_crash_fails_the_export_with_the_reason_and_the_iteration_stays_usable(
    services, store, queued, monkeypatch
):
    from functions.training import exporting
    from gpu_trainer import converters

    p, it = queued
    worker.poll(store, once=True)
    apply_all(services, store)
    row = services.repo.get_iteration(p, it)
    row.exportable = True
    services.repo.update_iteration(p, row)

    def crash(*args, **kwargs):
        raise RuntimeError("converter crashed: segfault in the IR writer")

    monkeypatch.setattr(converters, "to_openvino", crash)
    monkeypatch.setattr(worker, "retry_delay", lambda attempt: 0)
    assert (
        exporting.export(services.repo, services.blobs, services.jobs, p, it, "OpenVino", None)["status"]
        == "Exporting"
    )
    outcomes = [
        worker.handle(m, store.clients.queue(layout.TRAINING_JOBS), store)
        for _ in range(worker.MAX_ATTEMPTS)
        for m in store.clients.queue(layout.TRAINING_JOBS).receive_messages(max_messages=1)
    ]
    assert outcomes == ["retry"] * (worker.MAX_ATTEMPTS - 1) + ["export-failed"]
    (settled,) = [e for e in events(store) if isinstance(e, messages.ExportEvent)]
    assert settled.status == "Failed" and "converter crashed" in settled.reason
    assert exporting.settled(services.repo, services.blobs, None, settled) == "failed"
    listed = exporting.exports_of(services.repo, services.blobs, p, it)
    assert [(e["platform"], e["status"]) for e in listed] == [("OpenVino", "Failed")]
    with pytest.raises(BadRequest, match="converter crashed"):
        exporting.export(services.repo, services.blobs, services.jobs, p, it, "OpenVino", None)
    # The iteration is untouched: still Completed, and its ONNX export works.
    assert services.repo.get_iteration(p, it).status == "Completed"
    assert (
        exporting.export(services.repo, services.blobs, services.jobs, p, it, "ONNX", None)["status"]
        == "Done"
    )


def test_long_job_keeps_its_message_invisible(services, store, queued, monkeypatch):
    import time

    p, it = queued
    monkeypatch.setattr(worker, "RENEW_EVERY_S", 0.5)
    monkeypatch.setattr(worker, "VISIBILITY_S", 2)
    jobs = store.clients.queue(layout.TRAINING_JOBS)
    seen = []

    def slow(job, store_, attempt=1, device=None):
        for _ in range(8):  # 4 s: twice the visibility timeout, so only renewal keeps the message hidden
            seen.append(len(list(jobs.peek_messages())))
            time.sleep(0.5)
        return "Completed"

    monkeypatch.setattr(worker, "run_job", slow)
    message = next(iter(jobs.receive_messages(max_messages=1, visibility_timeout=2)))
    assert worker.handle(message, jobs, store) == "Completed"
    assert seen == [0] * 8
    assert jobs.peek_messages() == []  # deleted with the renewed pop receipt


def test_second_worker_backs_off_while_the_iteration_is_leased(services, store, queued, monkeypatch):
    p, it = queued
    monkeypatch.setattr(worker, "run_job", lambda *a, **k: pytest.fail("must not train a leased iteration"))
    job = messages.parse_job(next(iter(store.clients.queue(layout.TRAINING_JOBS).peek_messages())).content)
    lease = worker._lease(store, job)  # the first worker holds the iteration
    try:
        jobs = store.clients.queue(layout.TRAINING_JOBS)
        message = next(iter(jobs.receive_messages(max_messages=1)))
        assert worker.handle(message, jobs, store) == "busy"
        assert jobs.peek_messages() == []  # hidden for a while...
        assert jobs.get_queue_properties().approximate_message_count == 1  # ...but not deleted
    finally:
        lease.release()


def test_the_doctor_reads_the_newest_stored_predictions_first(store):
    """TrainerStore.field_images on Azurite: prediction ids sort newest first, so the listing is newest first,
    capped, and limited to the project."""
    p, other = layout.new_id(), layout.new_id()
    container = store.clients.blob.get_container_client(layout.PREDICTIONS)
    ids = [layout.new_prediction_id(1_800_000_000_000 + n * 1000) for n in range(5)]  # n=4 is the newest
    for n, pid in enumerate(ids):
        container.upload_blob(layout.prediction_image(p, pid), f"image {n}".encode(), overwrite=True)
    container.upload_blob(layout.prediction_image(other, ids[0]), b"not this project", overwrite=True)
    got = store.field_images(p, 3)
    assert [pid for pid, _ in got] == [ids[4], ids[3], ids[2]]
    assert got[0][1]() == b"image 4"
    assert store.field_images(layout.new_id(), 3) == []
