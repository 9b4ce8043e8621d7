"""A large Image Analysis dataset registers in the background: PUT checks the COCO files' structure and answers
201 at once, a job on the project-imports queue (queue_imports.py) reads every image and imports them; models
and evaluations refuse the dataset until then (DatasetNotReady) and after a failure (datasetAnnotationsInvalid)."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.functions.queue import QueueMessage

from cvcore import layout, settings
from functions import bootstrap, queue_imports
from functions.prediction.published import Catalog
from functions.prediction.service import Predictor
from functions.prediction.session_cache import ModelCache
from functions.training import project_transfer
from functions.vision import datasets
from tests.unit.fakes import FakeBlobStore, FakeJobQueue, FakePredictionStore, FakeRepository
from tests.unit.test_vision_api import MemoryRegistry, call, coco_file, complete, model, register

PER_TAG = 15  # 30 images (enough to train): above the INLINE_IMAGES these tests set


@pytest.fixture
def s(monkeypatch):
    monkeypatch.setattr(project_transfer, "INLINE_IMAGES", 20)
    repo, blobs, pool = FakeRepository(), FakeBlobStore(), ThreadPoolExecutor(4)
    services = bootstrap.Services(
        settings=settings.load({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}),
        repo=repo,
        blobs=blobs,
        pool=pool,
        jobs=FakeJobQueue(),
        imports=FakeJobQueue(),
        vision=MemoryRegistry(),
    )
    services.predictor = Predictor(Catalog(repo), ModelCache(blobs.get), FakePredictionStore(blobs), pool)
    bootstrap.override(services)
    yield services
    bootstrap.override(None)
    pool.shutdown()


def project_of(s, name="big"):
    return s.repo.get_project(s.vision.get("dataset", name)["projectId"])


def run_job(s, index=-1, attempt=1):
    queue_imports.project_imports(
        QueueMessage(id="m", body=s.imports.sent[index].encode(), dequeue_count=attempt)
    )


def start(s, name="big", per_tag=PER_TAG):
    status, body = register(name, coco_file(s, name, per_tag))
    assert status == 201, body
    return body


def test_a_large_dataset_answers_at_once_and_its_job_imports_it(s):
    body = start(s)
    assert set(body) == {
        "name",
        "annotationKind",
        "annotationFileUris",
        "customProperties",
        "createdDateTime",
        "updatedDateTime",
        "eTag",
    }
    assert json.loads(s.imports.sent[0]) == {"v": 1, "kind": "visionDataset", "name": "big"}
    project = project_of(s)
    assert project.status == "Importing" and s.repo.list_images(project.id) == []
    assert call("GET", "datasets/big")[1] == body  # the same shape while importing
    status, err = model(s, "m1", "big")
    assert status == 409 and err["error"]["code"] == "DatasetNotReady"
    assert "still being registered" in err["error"]["message"]
    assert s.jobs.sent == []  # nothing trains

    run_job(s)
    project = project_of(s)
    assert (project.status, project.status_message) == ("Succeeded", "")
    images = s.repo.list_images(project.id)
    assert len(images) == 2 * PER_TAG and all(len(im.regions) == 1 for im in images)
    assert sorted(t.name for t in s.repo.list_tags(project.id)) == ["blue", "red"]
    record = s.vision.get("dataset", "big")
    assert record["state"] == "ready" and record["summary"][0]["imagesCreated"] == 2 * PER_TAG
    assert call("GET", "datasets/big")[1]["name"] == "big"
    status, body = model(s, "m1", "big")
    assert status == 201, body

    run_job(s)  # a duplicate message: nothing more happens
    assert (
        len(s.repo.list_images(project.id)) == 2 * PER_TAG
        and s.vision.get("dataset", "big")["state"] == "ready"
    )


def test_an_image_gone_before_the_job_fails_the_dataset_with_the_problem(s):
    start(s)
    del s.blobs.blobs[(layout.UPLOADS, "big/images/red-1.png")]
    run_job(s)
    record = s.vision.get("dataset", "big")
    assert record["state"] == "failed"
    assert [p["target"] for p in record["problems"]] == ["annotationFileUris[0]:images[1].file_name"]
    project = project_of(s)
    assert project.status == "Failed" and "images[1].file_name" in project.status_message
    assert s.repo.list_images(project.id) == []
    status, err = model(s, "m1", "big")
    assert status == 400 and err["error"]["code"] == "datasetAnnotationsInvalid"
    assert err["error"]["details"][0]["code"] == "ImageNotFound"
    run_job(s)  # a duplicate: still failed
    assert s.vision.get("dataset", "big")["state"] == "failed"
    assert call("DELETE", "datasets/big") == (204, None) and s.repo.get_project(project.id) is None


def test_an_evaluation_waits_for_its_test_dataset(s):
    start(s)
    run_job(s)
    assert model(s, "m1", "big")[0] == 201
    complete(s, "m1")
    start(s, "later")
    evaluate = {"evaluationParameters": {"testDatasetName": "later"}}
    status, err = call("PUT", "models/m1/evaluations/e1", evaluate)
    assert status == 409 and err["error"]["code"] == "DatasetNotReady"
    run_job(s)
    status, body = call("PUT", "models/m1/evaluations/e1", evaluate)
    assert status == 201 and body["status"] == "succeeded", body


def test_the_test_dataset_of_a_model_must_be_ready_too(s):
    coco = coco_file(s, "small", 2)
    assert register("small", coco)[0] == 201 and s.imports.sent == []  # small: inline, no job
    assert s.repo.list_images(project_of(s, "small").id)
    start(s)
    status, err = model(s, "m1", "small", test="big")
    assert status == 409 and err["error"]["code"] == "DatasetNotReady"


def rewrite(s, folder, edit) -> None:
    doc = json.loads(s.blobs.get(layout.UPLOADS, f"{folder}/train_coco.json"))
    edit(doc)
    s.blobs.put(layout.UPLOADS, f"{folder}/train_coco.json", json.dumps(doc).encode(), "application/json")


def test_structural_problems_are_refused_at_put_with_every_one_listed(s):
    uri = coco_file(s, "big", PER_TAG)
    rewrite(
        s,
        "big",
        lambda doc: (
            doc["annotations"][0].update(bbox=[0.9, 0.1, 0.4, 0.4]),
            doc["annotations"][1].update(category_id=99),
        ),
    )
    status, body = register("big", uri)
    assert status == 400 and body["error"]["code"] == "datasetAnnotationsInvalid"
    assert {
        "annotationFileUris[0]:annotations[0].bbox",
        "annotationFileUris[0]:annotations[1].category_id",
    } <= {d["target"] for d in body["error"]["details"]}
    rewrite(s, "big", lambda doc: doc.update(annotations=[]))
    assert register("big", uri)[1]["error"]["code"] == "datasetEmpty"
    assert s.imports.sent == [] and s.vision.list("dataset") == [] and s.repo.list_projects() == []


def test_a_storage_error_is_retried_until_the_last_attempt(s):
    start(s)
    s.blobs.fail_puts = True
    with pytest.raises(
        RuntimeError, match="ErrorStorage could not store the image: OSError: storage is down"
    ):
        run_job(s, attempt=1)
    assert s.vision.get("dataset", "big")["state"] == "importing" and project_of(s).status == "Importing"
    run_job(s, attempt=queue_imports.MAX_ATTEMPTS)
    record = s.vision.get("dataset", "big")
    assert record["state"] == "failed" and "last attempt" in record["message"]
    assert project_of(s).status == "Failed"
    assert model(s, "m1", "big")[1]["error"]["code"] == "datasetAnnotationsInvalid"


def test_a_dataset_deleted_before_its_job_leaves_nothing(s):
    start(s)
    assert call("DELETE", "datasets/big") == (204, None)
    run_job(s)
    assert s.repo.list_projects() == [] and s.vision.list("dataset") == []
    assert datasets.finish_registration(s, "big") == "deleted"


def test_a_failed_job_send_leaves_nothing(s):
    s.imports.fail = True
    with pytest.raises(IOError):
        datasets.register(
            s,
            "big",
            {"annotationkind": "imageObjectDetection", "annotationfileuris": [coco_file(s, "big", PER_TAG)]},
        )
    assert s.repo.list_projects() == [] and s.vision.list("dataset") == []


def test_messages_that_are_no_job_are_raised(s):
    for body in (
        b"not json",
        b'{"v": 1, "kind": "other", "name": "x"}',
        b'{"v": 2, "kind": "visionDataset"}',
        b"[1]",
    ):
        with pytest.raises(ValueError):
            queue_imports.project_imports(QueueMessage(id="m", body=body, dequeue_count=1))


def test_without_an_imports_queue_a_large_dataset_registers_inline(s):
    s.imports = None
    start(s)
    assert len(s.repo.list_images(project_of(s).id)) == 2 * PER_TAG and project_of(s).status == "Succeeded"
    assert model(s, "m1", "big")[0] == 201
