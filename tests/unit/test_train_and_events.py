import json

import pytest

from cvcore import layout, manifest, messages
from cvcore.errors import BadRequest, NotFound
from functions.domain.records import ImageRecord, Region, utcnow
from functions.training import exporting, iterations, projects, tags, train
from functions.training.events import apply_event
from tests.unit.fakes import FakeBlobStore, FakeJobQueue, FakeRepository

DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


def make(ctype="Multiclass", domain=None, per_tag=(5, 5), negative=False):
    repo, blobs, jobs = FakeRepository(), FakeBlobStore(), FakeJobQueue()
    p = projects.create_project(repo, "p", None, domain, ctype, [])["id"]
    tag_ids = [tags.create_tag(repo, p, f"t{i}", None, None)["id"] for i in range(len(per_tag))]
    if negative:
        tag_ids.append(tags.create_tag(repo, p, "none", None, "Negative")["id"])
        per_tag = (*per_tag, 5)
    images = []
    for tag_id, n in zip(tag_ids, per_tag, strict=True):
        for _ in range(n):
            regions = (
                [Region(layout.new_id(), tag_id, 0.1, 0.1, 0.5, 0.5, utcnow())] if domain == DETECTION else []
            )
            images.append(
                ImageRecord(
                    id=layout.new_id(),
                    created=utcnow(),
                    width=64,
                    height=64,
                    content_type="image/jpeg",
                    regions=regions,
                    tags={} if regions else {tag_id: utcnow()},
                )
            )
    repo.add_images(p, images)
    return repo, blobs, jobs, p, tag_ids


def run(repo, blobs, jobs, p, **kw):
    args = {"training_type": None, "budget_hours": 0, "force": False, "selected_tags": None, **kw}
    return train.train_project(repo, blobs, jobs, p, **args)


def test_train_freezes_manifest_creates_queued_iteration_and_one_job():
    repo, blobs, jobs, p, tag_ids = make()
    it = run(repo, blobs, jobs, p)
    assert it["status"] == "Queued" and it["name"] == "Iteration 1"
    job = messages.parse_job(jobs.sent[0])
    assert len(jobs.sent) == 1 and job.iteration_id == it["id"] and job.task == "classification"
    m = manifest.loads(blobs.get(layout.MODELS, job.dataset_blob))
    assert len(m.images) == 10 and {c["tag_id"] for c in m.categories} == set(tag_ids)
    assert m.dataset_hash == job.dataset_hash


def test_refusals_use_custom_vision_codes():
    repo, blobs, jobs, p, _ = make(per_tag=(5, 4))
    with pytest.raises(BadRequest) as err:
        run(repo, blobs, jobs, p)
    assert err.value.code == "BadRequestNotEnoughImagesPerTag" and "'t1' has 4" in err.value.message

    repo, blobs, jobs, p, _ = make()
    run(repo, blobs, jobs, p)
    with pytest.raises(BadRequest) as err:
        run(repo, blobs, jobs, p, force=True)
    assert err.value.code == "BadRequestTrainingAlreadyInProgress"

    with pytest.raises(BadRequest) as err:
        run(repo, blobs, jobs, p, training_type="Advanced", budget_hours=0)
    assert err.value.code == "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining"


def test_nothing_changed_needs_force_train():
    repo, blobs, jobs, p, _ = make()
    first = run(repo, blobs, jobs, p)
    apply_event(repo, messages.TrainingEvent(p, first["id"], messages.COMPLETED, training_seconds=3))
    with pytest.raises(BadRequest) as err:
        run(repo, blobs, jobs, p)
    assert err.value.code == "BadRequestTrainingNotNeeded"
    assert run(repo, blobs, jobs, p, force=True)["name"] == "Iteration 2"


def test_detection_rules():
    repo, blobs, jobs, p, _ = make(ctype=None, domain=DETECTION, per_tag=(15, 14))
    with pytest.raises(BadRequest) as err:
        run(repo, blobs, jobs, p)
    assert err.value.code == "BadRequestNotEnoughImagesPerTag" and "at least 15" in err.value.message
    repo, blobs, jobs, p, tag_ids = make(ctype=None, domain=DETECTION, per_tag=(15, 15))
    neg = tags.create_tag(repo, p, "none", None, "Negative")["id"]
    img = ImageRecord(
        id=layout.new_id(),
        created=utcnow(),
        width=64,
        height=64,
        content_type="image/jpeg",
        tags={neg: utcnow()},
    )
    repo.add_images(p, [img])
    m = train.build_manifest(
        projects.require_project(repo, p),
        layout.new_id(),
        {t.id: t for t in repo.list_tags(p)},
        repo.list_images(p),
        None,
    )
    assert all("bbox" in a for a in m.annotations)  # image-level tags never enter a detection dataset
    assert run(repo, blobs, jobs, p)["status"] == "Queued"


def test_multiclass_refuses_images_with_two_tags():
    repo, blobs, jobs, p, tag_ids = make()
    im = repo.list_images(p)[0]
    im.tags = {tag_ids[0]: utcnow(), tag_ids[1]: utcnow()}
    repo.update_image(p, im)
    with pytest.raises(BadRequest) as err:
        run(repo, blobs, jobs, p)
    assert (
        err.value.code == "BadRequestMultiClassClassificationTrainingValidationFailed"
        and im.id in err.value.message
    )


def test_failed_enqueue_marks_the_iteration_failed():
    repo, blobs, jobs, p, _ = make()
    jobs.fail = True
    with pytest.raises(IOError):
        run(repo, blobs, jobs, p)
    (it,) = repo.list_iterations(p)
    assert it.status == "Failed" and "could not be queued" in it.error_message


def test_events_move_forward_only_and_terminal_is_final():
    repo, blobs, jobs, p, _ = make()
    it = run(repo, blobs, jobs, p)["id"]
    ev = lambda status, **kw: messages.TrainingEvent(p, it, status, **kw)
    assert apply_event(repo, ev("Training", progress=0.4, message="fold 2/5")) == "applied"
    assert apply_event(repo, ev("Training", progress=0.2)) == "applied"
    assert repo.get_iteration(p, it).progress == 0.4  # progress never goes back
    assert (
        apply_event(
            repo,
            ev(
                "Failed",
                error_code="datasetCorrupt",
                error_message="2 images unreadable",
                error_image_ids=("a", "b"),
            ),
        )
        == "applied"
    )
    assert apply_event(repo, ev("Completed")) == "ignored"  # a late duplicate cannot flip a terminal state
    got = iterations.get_iteration(repo, p, it)
    assert got["status"] == "Failed" and got["trainingErrorDetails"].startswith("datasetCorrupt: 2 images")
    assert apply_event(repo, messages.TrainingEvent(p, layout.new_id(), "Completed")) == "unknown-iteration"


def test_publish_rules():
    repo, blobs, jobs, p, _ = make()
    it = run(repo, blobs, jobs, p)["id"]
    with pytest.raises(BadRequest) as err:
        iterations.publish(repo, p, it, "prod", None, False)
    assert err.value.code == "BadRequestIterationIsNotTrained"
    apply_event(repo, messages.TrainingEvent(p, it, "Completed"))
    assert iterations.publish(repo, p, it, "prod", "/subscriptions/x", False) is True
    assert iterations.get_iteration(repo, p, it)["publishName"] == "prod"
    with pytest.raises(BadRequest) as err:
        iterations.delete_iteration(repo, blobs, p, it)
    assert err.value.code == "BadRequestIterationIsPublished"
    iterations.unpublish(repo, p, it)
    with pytest.raises(BadRequest) as err:
        iterations.unpublish(repo, p, it)
    assert err.value.code == "BadRequestIterationNotPublished"
    iterations.delete_iteration(repo, blobs, p, it)
    with pytest.raises(NotFound):
        iterations.get_iteration(repo, p, it)


def test_export_packages_model_sidecar_and_labels():
    import io
    import zipfile

    repo, blobs, jobs, p, _ = make(domain="0732100f-1a38-4e49-a514-c9b44c697ab5")
    it = run(repo, blobs, jobs, p)["id"]
    apply_event(repo, messages.TrainingEvent(p, it, "Completed", exportable=True))
    for name, data in (
        (layout.MODEL_ONNX, b"onnx-f32"),
        (layout.MODEL_INT8_ONNX, b"onnx-i8"),
        (layout.MODEL_INT8_STATUS, b'{"status": "Done"}'),
        (
            layout.MODEL_SIDECAR,
            json.dumps({"labels": [{"index": 1, "name": "b"}, {"index": 0, "name": "a"}]}).encode(),
        ),
    ):
        blobs.put(layout.MODELS, layout.iteration_artifact(p, it, name), data, "x")
    assert exporting.exports_of(repo, blobs, p, it) == []
    out = exporting.export(repo, blobs, jobs, p, it, "ONNX", "ONNXInt8")
    assert out["status"] == "Done" and out["flavor"] == "ONNXInt8"
    zipped = blobs.get(layout.MODELS, out["downloadUri"].removeprefix("fake://models/"))
    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        assert zf.read("model.onnx") == b"onnx-i8" and zf.read("labels.txt") == b"a\nb\n"
    assert [e["flavor"] for e in exporting.exports_of(repo, blobs, p, it)] == ["ONNXInt8"]
    with pytest.raises(BadRequest):
        exporting.export(repo, blobs, jobs, p, it, "CoreML", None)


def test_image_queries_can_ask_for_an_iterations_training_set():
    from functions.training import images

    repo, blobs, jobs, p, tag_ids = make()
    it = run(repo, blobs, jobs, p)["id"]
    late = ImageRecord(
        id=layout.new_id(),
        created=utcnow(),
        width=64,
        height=64,
        content_type="image/jpeg",
        tags={tag_ids[0]: utcnow()},
    )
    repo.add_images(p, [late])
    assert images.count_images(repo, p) == 11
    assert images.count_images(repo, p, iteration_id=it, blobs=blobs) == 10
    listed = images.query_images(repo, blobs, p, iteration_id=it, take=256)
    assert late.id not in {im["id"] for im in listed} and len(listed) == 10
    with pytest.raises(NotFound):
        images.count_images(repo, p, iteration_id=layout.new_id(), blobs=blobs)


def test_image_performances_show_held_out_predictions_per_image():
    repo, blobs, jobs, p, tag_ids = make()
    it = run(repo, blobs, jobs, p)["id"]
    apply_event(repo, messages.TrainingEvent(p, it, "Completed"))
    records = sorted(repo.list_images(p), key=lambda im: im.id)
    labels = [{"index": i, "tag_id": t, "name": f"t{i}"} for i, t in enumerate(tag_ids)]
    evaluation = {
        "task": "classification",
        "labels": labels,
        "folds": 2,
        "images": [
            {
                "key": im.id,
                "fold": n % 2,
                "truth": [tag_ids.index(next(iter(im.tags)))],
                "scores": [0.8, 0.2] if n % 2 else [0.3, 0.7],
            }
            for n, im in enumerate(records)
        ],
    }
    blobs.put(
        layout.MODELS,
        layout.iteration_artifact(p, it, layout.EVALUATION),
        json.dumps(evaluation).encode(),
        "x",
    )
    got = iterations.image_performances(
        repo, blobs, p, it, tag_ids=[tag_ids[0]], order_by="Oldest", take=50, skip=0
    )
    assert len(got) == 5 and all(g["tags"][0]["tagId"] == tag_ids[0] for g in got)
    target = next(im for n, im in enumerate(records) if n % 2 and tag_ids[0] in im.tags)  # scored [0.8, 0.2]
    first = next(g for g in got if g["id"] == target.id)
    assert [(x["tagName"], x["probability"]) for x in first["predictions"]] == [("t0", 0.8), ("t1", 0.2)]
    assert iterations.image_performance_count(repo, blobs, p, it, []) == 10


def completed_with_float_model():
    """A completed, exportable iteration with its float model and sidecar (no int8 flavour yet)."""
    repo, blobs, jobs, p, _ = make(domain="0732100f-1a38-4e49-a514-c9b44c697ab5")
    it = run(repo, blobs, jobs, p)["id"]
    apply_event(repo, messages.TrainingEvent(p, it, "Completed", exportable=True))
    blobs.put(layout.MODELS, layout.iteration_artifact(p, it, layout.MODEL_ONNX), b"onnx", "x")
    blobs.put(layout.MODELS, layout.iteration_artifact(p, it, layout.MODEL_SIDECAR), b'{"labels": []}', "x")
    return repo, blobs, jobs, p, it


def test_int8_flavour_is_exporting_until_the_trainer_settles_it():
    repo, blobs, jobs, p, it = completed_with_float_model()
    sent = len(jobs.sent)
    out = exporting.export(repo, blobs, jobs, p, it, "ONNX", "ONNXInt8")
    assert (out["status"], out["downloadUri"]) == ("Exporting", None)
    asked = messages.parse_work(jobs.sent[-1])
    assert isinstance(asked, messages.ExportJob) and (asked.iteration_id, asked.flavor) == (it, "ONNXInt8")
    exporting.export(repo, blobs, jobs, p, it, "ONNX", "ONNXInt8")  # asked again: still one job
    assert len(jobs.sent) == sent + 1
    assert [(e["flavor"], e["status"]) for e in exporting.exports_of(repo, blobs, p, it)] == [
        ("ONNXInt8", "Exporting")
    ]
    blobs.put(layout.MODELS, layout.iteration_artifact(p, it, layout.MODEL_INT8_ONNX), b"onnx-i8", "x")
    # The model file is there but the trainer's note (written last) is not: a zip now could miss files or the
    # agreement check, so it is still Exporting.
    assert [e["status"] for e in exporting.exports_of(repo, blobs, p, it)] == ["Exporting"]
    blobs.put(
        layout.MODELS, layout.iteration_artifact(p, it, layout.MODEL_INT8_STATUS), b'{"status": "Done"}', "x"
    )
    done = exporting.exports_of(repo, blobs, p, it)
    assert [(e["flavor"], e["status"]) for e in done] == [("ONNXInt8", "Done")] and done[0]["downloadUri"]


def test_int8_flavour_that_failed_is_refused_with_the_reason():
    repo, blobs, jobs, p, it = completed_with_float_model()
    exporting.export(repo, blobs, jobs, p, it, "ONNX", "ONNXInt8")  # asked while it was still being made
    blobs.put(
        layout.MODELS,
        layout.iteration_artifact(p, it, layout.MODEL_INT8_STATUS),
        b'{"status": "Failed", "reason": "top-1 agrees on 50% of the sample"}',
        "x",
    )
    with pytest.raises(BadRequest, match="ONNXInt8 is not available for this iteration: top-1 agrees on 50%"):
        exporting.export(repo, blobs, jobs, p, it, "ONNX", "ONNXInt8")
    assert [(e["flavor"], e["status"]) for e in exporting.exports_of(repo, blobs, p, it)] == [
        ("ONNXInt8", "Failed")
    ]
    assert exporting.export(repo, blobs, jobs, p, it, "ONNX", None)["flavor"] == "ONNX12"


def test_a_notification_address_without_a_mail_transport_is_kept_and_marked_not_sent():
    from functions.training import mail

    repo, blobs, jobs, p, _ = make()
    it = run(repo, blobs, jobs, p, notification_email="owner@example.test", mailer=mail.Mailer(""))
    note = it["notificationEmail"]
    assert (note["address"], note["status"]) == ("owner@example.test", "NotSent")
    assert "CUSTOMVISION_SMTP_URL" in note["detail"]
    apply_event(repo, messages.TrainingEvent(p, it["id"], "Completed"))
    assert mail.deliver_training_mail(repo, mail.Mailer(""), p, it["id"]) is None  # nothing pending: no mail


def test_a_pending_mail_that_cannot_be_delivered_records_the_reason():
    from functions.training import mail

    repo, blobs, jobs, p, _ = make()
    closed = mail.Mailer("smtp://127.0.0.1:9", timeout=2)  # nothing listens on the discard port
    it = run(repo, blobs, jobs, p, notification_email="owner@example.test", mailer=closed)
    assert it["notificationEmail"]["status"] == "Pending"
    apply_event(
        repo, messages.TrainingEvent(p, it["id"], "Failed", error_code="diverged", error_message="nan")
    )
    assert mail.deliver_training_mail(repo, closed, p, it["id"]) == "Failed"
    stored = repo.get_iteration(p, it["id"])
    assert stored.notification_status == "Failed" and "ConnectionRefusedError" in stored.notification_detail


@pytest.mark.parametrize("address", ["no-at-sign", "a@b", "two@@example.test", "x" * 250 + "@example.test"])
def test_bad_notification_addresses_are_refused_naming_the_field(address):
    repo, blobs, jobs, p, _ = make()
    with pytest.raises(BadRequest, match="notificationEmailAddress"):
        run(repo, blobs, jobs, p, notification_email=address)
    assert repo.list_iterations(p) == []


def test_advice_is_served_for_completed_iterations_and_missing_advice_says_why():
    repo, blobs, jobs, p, it = completed_with_float_model()
    with pytest.raises(NotFound, match="trained before the model doctor existed"):
        iterations.advice(repo, blobs, p, it)
    found = {"version": 1, "task": "classification", "findings": [{"kind": "balance", "severity": "high"}]}
    blobs.put(layout.MODELS, layout.iteration_artifact(p, it, layout.ADVICE), json.dumps(found).encode(), "x")
    got = iterations.advice(repo, blobs, p, it)
    assert got["findings"] == found["findings"] and got["reportUri"] is None
    blobs.put(layout.MODELS, layout.iteration_artifact(p, it, layout.REPORT_ADVICE), b"<html>", "text/html")
    assert iterations.advice(repo, blobs, p, it)["reportUri"].endswith(layout.REPORT_ADVICE)
