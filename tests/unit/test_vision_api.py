"""The Image Analysis 4.0 model-customization API's HTTP function over in-memory fakes and tiny real ONNX models:
keys, api-versions, datasets (snapshots of COCO files in storage), models (iterations), cancel, evaluations and
imageanalysis:analyze, with every error code that API names."""

import copy
import io
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import azure.functions as func
import pytest
from PIL import Image

from cvcore import artifacts, layout, messages, settings
from functions import bootstrap, http_vision
from functions.domain.ports import ConcurrencyError
from functions.prediction.published import Catalog
from functions.prediction.service import Predictor
from functions.prediction.session_cache import ModelCache
from functions.training import events
from functions.vision.registry import ETAG, AlreadyExists, VisionRegistry
from tests.support.tiny_models import sidecar, tiny_classifier, tiny_detector
from tests.unit.fakes import FakeBlobStore, FakeJobQueue, FakePredictionStore, FakeRepository

TRAINING, PREDICTION = settings.LOCAL_TRAINING_KEY, settings.LOCAL_PREDICTION_KEY
VERSION = "2023-02-01-preview"
RED_BOX, BLUE_BOX = (
    [0.1, 0.1, 0.4, 0.4],
    [0.6, 0.5, 0.3, 0.4],
)  # where tiny_detector puts its red / blue boxes
SIDE = 64


class MemoryRegistry(VisionRegistry):
    def __init__(self):
        self.rows: dict[tuple[str, str], tuple[dict, int]] = {}
        self.version = 0

    def get(self, kind, name):
        row = self.rows.get((kind, name))
        return {**copy.deepcopy(row[0]), ETAG: str(row[1])} if row else None

    def list(self, kind):
        return [self.get(k, n) for k, n in self.rows if k == kind]

    def add(self, kind, name, record):
        if (kind, name) in self.rows:
            raise AlreadyExists(name)
        self.replace(kind, name, record, None, check=False)

    def replace(self, kind, name, record, etag, check=True):
        if check and ((kind, name) not in self.rows or str(self.rows[(kind, name)][1]) != etag):
            raise ConcurrencyError(name)
        self.version += 1
        self.rows[(kind, name)] = (
            {k: v for k, v in copy.deepcopy(record).items() if k != ETAG},
            self.version,
        )

    def delete(self, kind, name):
        self.rows.pop((kind, name), None)


@pytest.fixture
def s():
    repo, blobs, pool = FakeRepository(), FakeBlobStore(), ThreadPoolExecutor(4)
    services = bootstrap.Services(
        settings=settings.load({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}),
        repo=repo,
        blobs=blobs,
        pool=pool,
        jobs=FakeJobQueue(),
        vision=MemoryRegistry(),
    )
    services.predictor = Predictor(Catalog(repo), ModelCache(blobs.get), FakePredictionStore(blobs), pool)
    bootstrap.override(services)
    yield services
    bootstrap.override(None)
    pool.shutdown()


def call(
    method,
    path,
    body=None,
    *,
    key=TRAINING,
    version=VERSION,
    params=None,
    raw=None,
    content_type="application/octet-stream",
):
    params = {k: v for k, v in {"api-version": version, **(params or {})}.items() if v is not None}
    headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
    if body is not None:
        raw, content_type = json.dumps(body).encode(), "application/json"
    if raw is not None:
        headers["Content-Type"] = content_type
    req = func.HttpRequest(
        method,
        f"http://localhost/computervision/{path}?{urlencode(params)}",
        headers=headers,
        params=params,
        route_params={"path": path},
        body=raw or b"",
    )
    resp = http_vision.handle(req)
    return resp.status_code, json.loads(resp.get_body() or b"null")


def png(rgb, size=(SIDE, SIDE)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, rgb).save(out, "PNG")
    return out.getvalue()


def colour(name: str, k: int) -> tuple[int, int, int]:
    return (
        (255 - k, k, 0) if name == "red" else (0, k, 255 - k)
    )  # distinct bytes per image, same colour family


def coco_file(s, folder: str, per_tag: int, detection: bool = True, names=("red", "blue"), prefix="") -> str:
    """COCO file + images under uploads/{folder}/ (file_name relative to the file); returns its URI."""
    doc = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
    }
    for c, name in enumerate(names):
        for k in range(per_tag):
            number = len(doc["images"]) + 1
            file = f"images/{prefix}{name}-{k}.png"
            s.blobs.put(layout.UPLOADS, f"{folder}/{file}", png(colour(name, k)), "image/png")
            doc["images"].append({"id": number, "file_name": file, "width": SIDE, "height": SIDE})
            ann = {"id": number, "image_id": number, "category_id": c + 1}
            if detection:
                ann["bbox"] = RED_BOX if name == "red" else BLUE_BOX
            doc["annotations"].append(ann)
    s.blobs.put(layout.UPLOADS, f"{folder}/train_coco.json", json.dumps(doc).encode(), "application/json")
    return uri(s, f"{layout.UPLOADS}/{folder}/train_coco.json")


def uri(s, path: str) -> str:
    return f"{s.settings.storage.endpoints['blob']}/{path}"


def register(name: str, uri, kind="imageObjectDetection"):
    return call("PUT", f"datasets/{name}", {"annotationKind": kind, "annotationFileUris": [uri]})


def dataset(s, name="shapes", per_tag=15, detection=True, **kw):
    kind = "imageObjectDetection" if detection else "imageClassification"
    status, body = register(name, coco_file(s, name, per_tag, detection, **kw), kind)
    assert status == 201, body
    return body


def model(s, name="m1", dataset_name="shapes", kind="Generic-Detector", test=None, budget=1):
    body = {
        "trainingParameters": {
            "trainingDatasetName": dataset_name,
            "timeBudgetInHours": budget,
            "modelKind": kind,
        }
    }
    if test:
        body["evaluationParameters"] = {"testDatasetName": test}
    return call("PUT", f"models/{name}", body)


def complete(s, name="m1", detection=True):
    """Play the trainer: the tiny model as the model's artifacts, an out-of-fold evaluation, a Completed event."""
    record = s.vision.get("model", name)
    pid, iid = record["projectId"], record["iterationId"]
    tags = {t.name: t.id for t in s.repo.list_tags(pid)}
    task = artifacts.DETECTION if detection else artifacts.CLASSIFICATION
    put = lambda n, data: s.blobs.put(layout.MODELS, layout.iteration_artifact(pid, iid, n), data, "x")
    put(layout.MODEL_ONNX, tiny_detector() if detection else tiny_classifier())
    put(layout.MODEL_SIDECAR, json.dumps(sidecar(task, [tags["red"], tags["blue"]]).to_json()).encode())
    labels = [
        {"index": i, "tag_id": tags[n], "name": n, "type": "Regular"} for i, n in enumerate(("red", "blue"))
    ]
    if detection:
        images = [
            {"key": "a", "fold": 0, "truth": [[0, *RED_BOX]], "detections": [[0, 0.9, *RED_BOX]]},
            {"key": "b", "fold": 1, "truth": [[1, *BLUE_BOX]], "detections": [[0, 0.4, *BLUE_BOX]]},
        ]
        evaluation = {
            "task": "detection",
            "labels": labels,
            "folds": 2,
            "images": images,
            "map30": 0.5,
            "map50": 0.5,
            "map75": 0.25,
        }
    else:
        images = [
            {"key": "a", "fold": 0, "truth": [0], "scores": [0.8, 0.2]},
            {"key": "b", "fold": 1, "truth": [1], "scores": [0.7, 0.3]},
        ]
        evaluation = {
            "task": "classification",
            "classification_type": "Multiclass",
            "labels": labels,
            "folds": 2,
            "images": images,
        }
    put(layout.EVALUATION, json.dumps(evaluation).encode())
    events.apply_event(s.repo, messages.TrainingEvent(pid, iid, messages.COMPLETED, training_seconds=90.0))


# ---- keys, versions ------------------------------------------------------------------------------------
def test_keys_and_api_versions(s):
    assert call("GET", "datasets", key=None)[0] == 401
    status, body = call("GET", "datasets", key="wrong-key-value")
    assert status == 401 and body["error"]["code"] == "401"
    assert call("GET", "datasets", key=PREDICTION)[0] == 401  # the prediction key only analyzes
    assert call("GET", "datasets") == (200, [])
    assert call("GET", "datasets", version="2023-04-01-preview") == (200, [])
    status, body = call("GET", "datasets", version=None)
    assert status == 400 and body["error"]["innererror"]["code"] == "UnsupportedApiVersion"
    status, body = call("POST", "imageanalysis:analyze", key=PREDICTION, params={"model-name": "nope"})
    assert status == 404 and body["error"]["code"] == "modelNotFound"
    status, body = call("GET", "nothing/here")
    assert status == 404 and body["error"]["innererror"]["code"] == "NotFound"


# ---- datasets ------------------------------------------------------------------------------------------
def test_a_dataset_is_a_snapshot_in_a_project_of_its_own(s):
    body = dataset(s, per_tag=3)
    assert body["annotationKind"] == "imageObjectDetection" and body["customProperties"] == {}
    assert body["annotationFileUris"][0].endswith("/uploads/shapes/train_coco.json")
    assert {"createdDateTime", "updatedDateTime", "eTag"} <= set(body)
    project = next(p for p in s.repo.list_projects() if p.name == "ia-dataset-shapes")
    assert project.is_detection and project.domain.exportable
    assert sorted(t.name for t in s.repo.list_tags(project.id)) == ["blue", "red"]
    assert len(s.repo.list_images(project.id)) == 6 and all(
        im.regions for im in s.repo.list_images(project.id)
    )
    assert call("GET", "datasets/shapes")[1]["name"] == "shapes"
    assert [d["name"] for d in call("GET", "datasets")[1]] == ["shapes"]
    status, err = call(
        "PUT",
        "datasets/shapes",
        {"annotationKind": "imageObjectDetection", "annotationFileUris": body["annotationFileUris"]},
    )
    assert status == 409 and err["error"]["code"] == "DatasetAlreadyExists"
    status, patched = call("PATCH", "datasets/shapes", {"customProperties": {"owner": "qa"}})
    assert status == 200 and patched["customProperties"] == {"owner": "qa"}
    assert (
        call("PATCH", "datasets/shapes", {"annotationFileUris": ["x"]})[1]["error"]["innererror"]["code"]
        == "DatasetImmutable"
    )
    assert call("DELETE", "datasets/shapes") == (204, None)
    assert s.repo.get_project(project.id) is None
    for missing in ("shapes", "we#ird?", "x" * 300):
        status, err = call("GET", f"datasets/{missing}")
        assert status == 404 and err["error"]["code"] == "datasetNotFound"


def test_pascal_case_bodies_as_microsofts_samples_send_them(s):
    status, body = call(
        "PUT",
        "datasets/cls",
        {
            "AnnotationKind": "imageClassification",
            "AnnotationFileUris": [coco_file(s, "cls", 2, detection=False)],
            "customProperties": {"a": "b"},
        },
    )
    assert status == 201 and body["annotationKind"] == "imageClassification"
    assert body["customProperties"] == {"a": "b"}


@pytest.mark.parametrize(
    "make_uri, why",
    [
        (
            lambda s: "https://elsewhere.blob.core.windows.net/datasets/train_coco.json",
            "not in this storage account",
        ),
        (lambda s: uri(s, "models/x/train_coco.json"), "not readable"),
        (lambda s: uri(s, "uploads/missing/train_coco.json"), "does not exist"),
        (lambda s: uri(s, "uploads/../models/train_coco.json"), ".."),
        (lambda s: 42, "a URI string is required"),
    ],
)
def test_annotation_uris_outside_the_account_or_missing_are_refused(s, make_uri, why):
    status, body = register("bad", make_uri(s))
    assert status == 400 and body["error"]["code"] == "DatasetInvalidAnnotationUri", body
    assert why in body["error"]["message"]
    status, body = call(
        "PUT", "datasets/bad", {"annotationKind": "imageObjectDetection", "annotationFileUris": []}
    )
    assert body["error"]["code"] == "DatasetInvalidAnnotationUri"


def test_invalid_and_empty_annotation_files(s):
    good = coco_file(s, "bad", 2)
    doc = json.loads(s.blobs.get(layout.UPLOADS, "bad/train_coco.json"))
    doc["annotations"][0]["bbox"] = [0.9, 0.1, 0.4, 0.4]
    doc["images"][1]["width"] = 65
    s.blobs.put(layout.UPLOADS, "bad/train_coco.json", json.dumps(doc).encode(), "application/json")
    status, body = register("bad", good)
    assert status == 400 and body["error"]["code"] == "datasetAnnotationsInvalid"
    targets = {d["target"]: d["code"] for d in body["error"]["details"]}
    assert targets == {
        "annotationFileUris[0]:annotations[0].bbox": "BboxOutOfRange",
        "annotationFileUris[0]:images[1].width": "SizeMismatch",
    }
    doc["images"][1]["width"] = SIDE
    s.blobs.put(layout.UPLOADS, "bad/train_coco.json", json.dumps({**doc, "annotations": []}).encode(), "x")
    status, body = register("bad", good)
    assert status == 400 and body["error"]["code"] == "datasetEmpty"
    status, body = register("bad", good, kind="productRecognition")
    assert status == 400 and body["error"]["code"] == "InvalidArgument"
    assert call("PUT", "datasets/b@d", {})[1]["error"]["code"] == "InvalidArgument"
    assert not [p for p in s.repo.list_projects()] and s.vision.list("dataset") == []  # nothing half-made


# ---- models --------------------------------------------------------------------------------------------
def test_a_model_is_an_iteration_of_its_datasets_project(s):
    dataset(s)
    status, body = model(s, "m1", test=None)
    assert status == 201, body
    assert (
        body["status"] == "notStarted"
        and body["trainingCostInMinutes"] == 0
        and "modelPerformance" not in body
    )
    assert body["trainingParameters"] == {
        "trainingDatasetName": "shapes",
        "timeBudgetInHours": 1,
        "modelKind": "Generic-Detector",
    }
    record = s.vision.get("model", "m1")
    job = messages.parse_job(s.jobs.sent[-1])
    assert (job.project_id, job.iteration_id) == (record["projectId"], record["iterationId"])
    assert job.training_type == "Regular"
    assert s.repo.get_iteration(record["projectId"], record["iterationId"]).name == "m1"
    assert model(s, "m1")[1]["error"]["code"] == "ModelAlreadyExists"
    status, second = model(s, "m2", budget=3)  # a second model of one dataset waits for the first
    assert status == 400 and second["error"]["innererror"]["code"] == "BadRequestTrainingAlreadyInProgress"
    events.apply_event(
        s.repo,
        messages.TrainingEvent(record["projectId"], record["iterationId"], messages.TRAINING, progress=0.5),
    )
    assert call("GET", "models/m1")[1]["status"] == "training"
    complete(s, "m1")
    body = call("GET", "models/m1")[1]
    assert body["status"] == "succeeded" and body["trainingCostInMinutes"] == 2
    perf = body["modelPerformance"]  # cross-validated: the trainer's pycocotools figures
    assert (
        perf["meanAveragePrecision30"],
        perf["meanAveragePrecision50"],
        perf["meanAveragePrecision75"],
    ) == (0.5, 0.5, 0.25)
    assert perf["tagPerformance"]["red"] == {"accuracy": 1.0, "averagePrecision50": 1.0}
    assert perf["tagPerformance"]["blue"]["averagePrecision50"] == 0.0
    assert (
        model(s, "m2", budget=3)[0] == 201 and messages.parse_job(s.jobs.sent[-1]).training_type == "Advanced"
    )
    assert [m["name"] for m in call("GET", "models")[1]] == ["m1", "m2"]


def test_model_refusals(s):
    dataset(s, per_tag=3)
    assert model(s, dataset_name="nope")[1]["error"]["code"] == "datasetNotFound"
    assert model(s, kind="Generic-Classifier")[1]["error"]["code"] == "incorrectModelKind"
    assert model(s, kind="Product-Recognition")[1]["error"]["code"] == "InvalidArgument"
    assert model(s, budget=0)[1]["error"]["code"] == "InvalidArgument"
    assert model(s, budget=289)[1]["error"]["code"] == "InvalidArgument"
    assert model(s, test="nope")[1]["error"]["code"] == "datasetNotFound"
    status, body = model(s)  # 3 images per tag: the core's detection minimum (15) applies
    assert status == 400 and body["error"]["innererror"]["code"] == "BadRequestNotEnoughImagesPerTag"
    assert s.vision.list("model") == []
    for method in ("GET", "DELETE"):
        assert call(method, "models/nope")[1]["error"]["code"] == "modelNotFound"
    assert call("POST", "models/nope:cancel")[1]["error"]["code"] == "modelNotFound"
    assert call("POST", "models/nope:frobnicate")[1]["error"]["innererror"]["code"] == "NotSupported"


def test_cancel_keeps_the_model_cancelled_whatever_the_trainer_says_later(s):
    dataset(s)
    model(s, "m1")
    status, body = call("POST", "models/m1:cancel")
    assert status == 202 and body["status"] == "cancelled"
    complete(s, "m1")  # the trainer finishes anyway: its Completed event is ignored
    assert call("GET", "models/m1")[1]["status"] == "cancelled"
    assert call("POST", "models/m1:cancel")[0] == 202  # again: no change
    assert model(s, "m2")[0] == 201
    complete(s, "m2")
    status, body = call("POST", "models/m2:cancel")
    assert status == 400 and body["error"]["innererror"]["code"] == "ModelNotCancellable"
    status, body = call("POST", "imageanalysis:analyze", params={"model-name": "m1"}, raw=png((250, 0, 0)))
    assert status == 400 and body["error"]["innererror"]["code"] == "ModelNotTrained"


def test_failed_training_reports_the_reason(s):
    dataset(s)
    model(s, "m1")
    record = s.vision.get("model", "m1")
    events.apply_event(
        s.repo,
        messages.TrainingEvent(
            record["projectId"],
            record["iterationId"],
            messages.FAILED,
            error_code=messages.ERR_DIVERGED,
            error_message="no signal",
        ),
    )
    body = call("GET", "models/m1")[1]
    assert body["status"] == "failed" and body["error"] == {"code": "diverged", "message": "no signal"}


def test_deleting_models_and_datasets_keeps_the_project_while_either_needs_it(s):
    dataset(s)
    model(s, "m1")
    complete(s, "m1")
    record = s.vision.get("model", "m1")
    assert call("DELETE", "datasets/shapes") == (204, None)
    assert s.repo.get_project(record["projectId"]) is not None  # the model still lives there
    assert call("POST", "imageanalysis:analyze", params={"model-name": "m1"}, raw=png((250, 0, 0)))[0] == 200
    assert call("DELETE", "models/m1") == (204, None)
    assert s.repo.get_project(record["projectId"]) is None
    assert call("GET", "models/m1")[1]["error"]["code"] == "modelNotFound"


# ---- analyze -------------------------------------------------------------------------------------------
def test_analyze_with_a_detector_answers_pixel_boxes(s):
    dataset(s)
    model(s, "m1")
    complete(s, "m1")
    image = png((250, 5, 0), size=(200, 100))
    for key in (TRAINING, PREDICTION):
        status, body = call("POST", "imageanalysis:analyze", key=key, params={"model-name": "m1"}, raw=image)
        assert status == 200, body
    assert body["modelVersion"] == "m1" and body["metadata"] == {"width": 200, "height": 100}
    objects = body["customModelResult"]["objectsResult"]["values"]
    assert body["customModelResult"]["tagsResult"]["values"] == []
    top = objects[0]
    assert top["tags"][0]["name"] == "red" and top["tags"][0]["confidence"] > 0.9
    assert top["boundingBox"] == {"x": 20, "y": 10, "w": 80, "h": 40}
    assert [o["tags"][0]["confidence"] for o in objects] == sorted(
        (o["tags"][0]["confidence"] for o in objects), reverse=True
    )
    status, legacy = call(
        "POST", "imageanalysis:analyze", version="2022-10-12-preview", params={"model-name": "m1"}, raw=image
    )
    assert legacy["kind"] == "imageAnalysisResult" and legacy["customModelResult"]["objects"] == objects
    assert call("POST", "imageanalysis:analyze", version="2022-10-12-preview")[0] == 400
    status, body = call("POST", "imageanalysis:analyze", params={"features": "tags"})
    assert status == 400 and body["error"]["innererror"]["code"] == "NotSupportedVisualFeature"
    status, body = call("POST", "imageanalysis:analyze", params={"model-name": "m1"}, raw=b"not an image")
    assert status == 400 and body["error"]["code"] == "InvalidRequest"
    status, body = call(
        "POST", "imageanalysis:analyze", params={"model-name": "m1"}, body={"url": "http://10.0.0.1/x"}
    )
    assert status == 400 and body["error"]["innererror"]["code"] == "BadRequestImageUrl"


def test_analyze_with_a_classifier_answers_tags(s):
    dataset(s, name="cls", per_tag=5, detection=False)
    assert model(s, "c1", dataset_name="cls", kind="Generic-Classifier")[0] == 201
    complete(s, "c1", detection=False)
    perf = call("GET", "models/c1")[1]["modelPerformance"]
    assert perf["accuracyTop1"] == 0.5 and perf["accuracyTop5"] == 1.0
    assert (
        perf["tagPerformance"]["red"]["accuracy"] == 1.0 and perf["tagPerformance"]["blue"]["accuracy"] == 0.0
    )
    status, body = call("POST", "imageanalysis:analyze", params={"model-name": "c1"}, raw=png((0, 0, 250)))
    tags = body["customModelResult"]["tagsResult"]["values"]
    assert status == 200 and [t["name"] for t in tags] == ["blue", "red"] and tags[0]["confidence"] > 0.9
    assert body["customModelResult"]["objectsResult"]["values"] == []
    legacy = call(
        "POST",
        "imageanalysis:analyze",
        version="2022-10-12-preview",
        params={"model-name": "c1"},
        raw=png((0, 0, 250)),
    )[1]
    assert legacy["customModelResult"]["classifications"][0]["label"] == "blue"


# ---- evaluations ---------------------------------------------------------------------------------------
def test_a_test_dataset_evaluates_the_onnx_model_here(s):
    dataset(s)
    call(
        "PUT",
        "datasets/holdout",
        {
            "annotationKind": "imageObjectDetection",
            "annotationFileUris": [coco_file(s, "holdout", 3, prefix="h")],
        },
    )
    model(s, "m1", test="holdout")
    complete(s, "m1")
    perf = call("GET", "models/m1")[1]["modelPerformance"]  # on the held-out dataset, not cross-validated
    assert (
        perf["meanAveragePrecision50"] == 1.0 and perf["tagPerformance"]["blue"]["averagePrecision50"] == 1.0
    )
    status, body = call(
        "PUT", "models/m1/evaluations/e1", {"evaluationParameters": {"testDatasetName": "holdout"}}
    )
    assert status == 201 and body["status"] == "succeeded" and body["modelName"] == "m1"
    assert body["modelPerformance"]["meanAveragePrecision75"] == 1.0
    assert call("GET", "models/m1/evaluations/e1")[1] == body
    assert [e["name"] for e in call("GET", "models/m1/evaluations")[1]] == ["e1"]
    assert (
        call("PUT", "models/m1/evaluations/e1", {"evaluationParameters": {"testDatasetName": "holdout"}})[1][
            "error"
        ]["code"]
        == "EvaluationAlreadyExists"
    )
    assert (
        call("PUT", "models/m1/evaluations/e2", {"evaluationParameters": {"testDatasetName": "nope"}})[1][
            "error"
        ]["code"]
        == "datasetNotFound"
    )
    assert (
        call("PUT", "models/nope/evaluations/e2", {"evaluationParameters": {"testDatasetName": "holdout"}})[
            1
        ]["error"]["code"]
        == "modelNotFound"
    )
    call(
        "PUT",
        "datasets/other",
        {
            "annotationKind": "imageObjectDetection",
            "annotationFileUris": [coco_file(s, "other", 2, names=("cat", "dog"))],
        },
    )
    status, body = call(
        "PUT", "models/m1/evaluations/e3", {"evaluationParameters": {"testDatasetName": "other"}}
    )
    assert status == 201 and body["status"] == "failed" and body["error"]["code"] == "datasetEmpty"
    call(
        "PUT",
        "datasets/cls",
        {
            "annotationKind": "imageClassification",
            "annotationFileUris": [coco_file(s, "cls", 2, detection=False)],
        },
    )
    assert (
        call("PUT", "models/m1/evaluations/e4", {"evaluationParameters": {"testDatasetName": "cls"}})[1][
            "error"
        ]["code"]
        == "incorrectModelKind"
    )
    assert call("DELETE", "models/m1/evaluations/e1") == (204, None)
    assert call("GET", "models/m1/evaluations/e1")[1]["error"]["code"] == "evaluationNotFound"


def test_a_missing_test_dataset_falls_back_to_the_cross_validated_figures(s):
    dataset(s)
    call(
        "PUT",
        "datasets/holdout",
        {
            "annotationKind": "imageObjectDetection",
            "annotationFileUris": [coco_file(s, "holdout", 2, prefix="h")],
        },
    )
    model(s, "m1", test="holdout")
    call("DELETE", "datasets/holdout")
    complete(s, "m1")
    body = call("GET", "models/m1")[1]
    assert body["status"] == "succeeded" and body["modelPerformance"]["meanAveragePrecision50"] == 0.5
    assert body["error"]["code"] == "datasetNotFound" and "cross-validated" in body["error"]["message"]
