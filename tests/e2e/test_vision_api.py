"""End to end, the Image Analysis 4.0 model-customization REST API on the local host: a COCO detection dataset of
composed scenes (real object photos pasted at exact boxes, tests/support/scenes.py) dropped into a container of
the storage account, registered with PUT datasets, a Generic-Detector trained by the trainer worker (its CPU
budget shortened) with a held-out test dataset, polled to succeeded, its mAP measured on that test dataset, an
evaluation, then imageanalysis:analyze on scenes it never saw; and every error code that API names."""

import io
import json
import time
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from cvcore import boxes, settings
from tests.support import scenes
from tests.support.localhost import running_host, running_trainer

pytestmark = pytest.mark.e2e
TAGS = ("cat", "cup")
CONTAINER = "datasets"
VERSION = {"api-version": "2023-02-01-preview"}
KEY = {"Ocp-Apim-Subscription-Key": settings.LOCAL_TRAINING_KEY}


def _jpeg(image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def drop(conn: str, folder: str, dataset: list, edit=None) -> str:
    """The scenes as JPEGs beside a COCO file (normalised boxes, file_name relative to it; `edit` may change
    the document first); returns its URI."""
    service = BlobServiceClient.from_connection_string(conn)
    try:
        service.create_container(CONTAINER)
    except ResourceExistsError:
        pass
    container = service.get_container_client(CONTAINER)
    doc = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(TAGS)],
    }
    for number, scene in enumerate(dataset, start=1):
        container.upload_blob(f"{folder}/images/{scene.key}.jpg", _jpeg(scene.image), overwrite=True)
        doc["images"].append(
            {
                "id": number,
                "file_name": f"images/{scene.key}.jpg",
                "width": scene.image.width,
                "height": scene.image.height,
            }
        )
        for label, *box in scene.boxes:
            doc["annotations"].append(
                {"id": len(doc["annotations"]) + 1, "image_id": number, "category_id": label + 1, "bbox": box}
            )
    if edit is not None:
        edit(doc)
    container.upload_blob(f"{folder}/coco.json", json.dumps(doc).encode(), overwrite=True)
    return f"{service.url.rstrip('/')}/{CONTAINER}/{folder}/coco.json"


class Vision:
    def __init__(self, url: str):
        self.base = f"{url}/computervision/"

    def __call__(self, method: str, path: str, body=None, params=None, **kw):
        resp = requests.request(
            method,
            self.base + path,
            json=body,
            params={**VERSION, **(params or {})},
            headers={**KEY, **kw.pop("headers", {})},
            timeout=120,
            **kw,
        )
        return resp.status_code, (resp.json() if resp.content else None)

    def dataset(self, name: str, uri: str):
        return self(
            "PUT", f"datasets/{name}", {"annotationKind": "imageObjectDetection", "annotationFileUris": [uri]}
        )


@pytest.fixture(scope="module")
def trained(azurite):
    started = time.monotonic()
    env = {settings.TRAINER_QUICK_CPU_SECONDS: "40"}
    with running_host(azurite) as url, running_trainer(azurite, env=env) as worker:
        api = Vision(url)
        assert api.dataset("scenes", drop(azurite, "scenes", scenes.dataset(TAGS, 15, seed=11)))[0] == 201
        assert (
            api.dataset("scenes-test", drop(azurite, "scenes-test", scenes.dataset(TAGS, 3, seed=12)))[0]
            == 201
        )
        status, model = api(
            "PUT",
            "models/scenes-detector",
            {
                "trainingParameters": {
                    "trainingDatasetName": "scenes",
                    "timeBudgetInHours": 1,
                    "modelKind": "Generic-Detector",
                },
                "evaluationParameters": {"testDatasetName": "scenes-test"},
            },
        )
        assert status == 201 and model["status"] == "notStarted", model
        deadline = time.monotonic() + 300
        while (model := api("GET", "models/scenes-detector")[1])["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, Path(worker.log_path).read_text()[-3000:]
            time.sleep(1)
        assert model["status"] == "succeeded", model
        print(f"\nregistered, trained and evaluated in {time.monotonic() - started:.1f} s")
        yield api, model, azurite


def test_the_detector_is_measured_on_the_test_dataset(trained):
    api, model, _ = trained
    perf = model["modelPerformance"]
    assert set(perf["tagPerformance"]) == set(TAGS) and "error" not in model
    maps = [perf[f"meanAveragePrecision{t}"] for t in (75, 50, 30)]
    assert 0 <= maps[0] <= maps[1] <= maps[2] <= 1
    assert perf["meanAveragePrecision50"] > 0.3, perf  # 15 scenes per tag, a 40 s CPU budget, 6 unseen scenes
    assert model["trainingCostInMinutes"] >= 1
    assert model["evaluationParameters"] == {"testDatasetName": "scenes-test"}
    status, evaluation = api(
        "PUT",
        "models/scenes-detector/evaluations/again",
        {"evaluationParameters": {"testDatasetName": "scenes-test"}},
    )
    assert status == 201 and evaluation["status"] == "succeeded"
    assert evaluation["modelPerformance"] == perf  # the same model on the same images


def test_analyze_finds_the_objects_of_unseen_scenes_in_pixels(trained):
    api, _, _ = trained
    found, held_out = 0, scenes.dataset(TAGS, 2, seed=13)
    for scene in held_out:
        headers = {
            "Content-Type": "application/octet-stream",
            "Ocp-Apim-Subscription-Key": settings.LOCAL_PREDICTION_KEY,
        }  # analyze takes either key
        status, body = api(
            "POST",
            "imageanalysis:analyze",
            params={"model-name": "scenes-detector"},
            data=_jpeg(scene.image),
            headers=headers,
        )
        assert status == 200, body
        assert body["metadata"] == {"width": 320, "height": 240} and body["modelVersion"] == "scenes-detector"
        objects = body["customModelResult"]["objectsResult"]["values"]
        assert all(0 <= o["boundingBox"]["x"] < 320 and 0 < o["boundingBox"]["w"] <= 320 for o in objects)
        label, *truth = scene.boxes[0]
        hits = [
            [o["boundingBox"][k] / size for k, size in (("x", 320), ("y", 240), ("w", 320), ("h", 240))]
            for o in objects
            if o["tags"][0]["name"] == TAGS[label] and o["tags"][0]["confidence"] >= 0.3
        ]
        if hits and boxes.iou([truth], hits).max() >= 0.5:
            found += 1
    assert found >= len(held_out) // 2, (
        f"the first object was found in {found} of {len(held_out)} unseen scenes"
    )


def test_every_named_error(trained):
    api, _, conn = trained
    uri = drop(
        conn, "scenes-empty", scenes.dataset(TAGS, 1, seed=14), edit=lambda doc: doc["annotations"].clear()
    )
    status, body = api.dataset("scenes", uri)
    assert (status, body["error"]["code"]) == (409, "DatasetAlreadyExists")
    status, body = api.dataset("elsewhere", "https://example.blob.core.windows.net/datasets/coco.json")
    assert (status, body["error"]["code"]) == (400, "DatasetInvalidAnnotationUri")
    assert api("GET", "datasets/nope")[1]["error"]["code"] == "datasetNotFound"
    status, body = api(
        "PUT",
        "models/orphan",
        {
            "trainingParameters": {
                "trainingDatasetName": "nope",
                "timeBudgetInHours": 1,
                "modelKind": "Generic-Detector",
            }
        },
    )
    assert (status, body["error"]["code"]) == (404, "datasetNotFound")
    status, body = api(
        "POST",
        "imageanalysis:analyze",
        params={"model-name": "nope"},
        data=b"x",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert (status, body["error"]["code"]) == (404, "modelNotFound")
    status, body = api.dataset("empty", uri)
    assert (status, body["error"]["code"]) == (400, "datasetEmpty")

    def outside(doc):
        doc["annotations"][0]["bbox"] = [0.9, 0.1, 0.4, 0.4]  # left + width > 1

    status, body = api.dataset(
        "bad", drop(conn, "scenes-bad", scenes.dataset(TAGS, 2, seed=14), edit=outside)
    )
    assert (status, body["error"]["code"]) == (400, "datasetAnnotationsInvalid")
    assert [(d["code"], d["target"]) for d in body["error"]["details"]] == [
        ("BboxOutOfRange", "annotationFileUris[0]:annotations[0].bbox")
    ]
    status, body = api(
        "PUT",
        "models/scenes-detector/evaluations/wrong",
        {"evaluationParameters": {"testDatasetName": "empty-nope"}},
    )
    assert (status, body["error"]["code"]) == (404, "datasetNotFound")
    assert api("GET", "datasets/empty")[1]["error"]["code"] == "datasetNotFound"  # nothing half-registered
    assert api("GET", "models/scenes-detector", headers={"Ocp-Apim-Subscription-Key": "wrong-key"})[0] == 401
