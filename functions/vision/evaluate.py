"""A model's performance: on a test dataset (its ONNX run here, in the Functions app, with onnxruntime, on
every image of the dataset's snapshot that carries one of the model's tags, matched by name without case), or,
without one, the trainer's cross-validated (out-of-fold) evaluation of the training dataset. Both become the
same evaluation format, then the Image Analysis ModelPerformance (performance.py)."""

from __future__ import annotations

import json

from cvcore import artifacts, coco, layout
from cvcore.imaging import MAX_TRAINING_IMAGE_BYTES, decode_rgb

from ..domain.ports import wired
from ..domain.records import ImageRecord
from ..prediction.predict import predict_image
from ..prediction.session_cache import LoadedModel, ModelUnavailable
from . import datasets, errors, performance
from .errors import VisionError
from .ports import VisionServices

MAX_TEST_IMAGES = 5000
WINDOW = 8  # images read and predicted at once


def load(s: VisionServices, model: dict) -> LoadedModel:
    try:
        return wired(s.predictor, "predictor").models.get(model["projectId"], model["iterationId"])
    except ModelUnavailable as exc:
        raise VisionError(
            404, errors.MODEL_NOT_FOUND, f"model {model['name']!r} cannot be loaded: {exc}"
        ) from None


def _truth(im: ImageRecord, detection: bool, tag_names: dict[str, str], index: dict[str, int]) -> list:
    if detection:
        return [
            [index[tag_names[r.tag_id]], r.left, r.top, r.width, r.height]
            for r in im.regions
            if tag_names.get(r.tag_id) in index
        ]
    return sorted({index[tag_names[t]] for t in im.tag_ids() if tag_names.get(t) in index})


def run(s: VisionServices, model: dict, dataset: dict) -> dict:
    """The model on the dataset's images -> an evaluation (one fold) in cvcore's format."""
    loaded = load(s, model)
    sidecar, project_id = loaded.sidecar, dataset["projectId"]
    detection = sidecar.task == artifacts.DETECTION
    index = {lab.name.casefold(): lab.index for lab in sidecar.labels}
    of_tag = {lab.tag_id: lab.index for lab in sidecar.labels}
    tag_names = {t.id: t.name.casefold() for t in s.repo.list_tags(project_id)}
    images = [
        (im, truth)
        for im in s.repo.list_images(project_id)
        if (truth := _truth(im, detection, tag_names, index))
    ]
    if not images:
        raise VisionError(
            400,
            errors.DATASET_EMPTY,
            f"dataset {dataset['name']!r} has no ground truth for the tags of model "
            f"{model['name']!r} ({', '.join(sorted(index))})",
        )
    if len(images) > MAX_TEST_IMAGES:
        raise errors.bad_request(
            f"a test dataset holds at most {MAX_TEST_IMAGES} annotated images here", "TestDatasetTooLarge"
        )

    def predict(pair):
        data = s.blobs.get(layout.IMAGES, layout.image_original(project_id, pair[0].id))
        return predict_image(loaded, decode_rgb(data, max_bytes=MAX_TRAINING_IMAGE_BYTES))

    rows = []
    for (im, truth), found in coco.bounded_map(s.pool, predict, images, WINDOW):
        row = {"key": im.id, "fold": 0, "truth": truth}
        if detection:
            row["detections"] = [
                [
                    of_tag[p["tagId"]],
                    p["probability"],
                    *(p["boundingBox"][k] for k in ("left", "top", "width", "height")),
                ]
                for p in found
            ]
        else:
            row["scores"] = [0.0] * len(sidecar.labels)
            for p in found:
                row["scores"][of_tag[p["tagId"]]] = p["probability"]
        rows.append(row)
    return {
        "task": sidecar.task,
        "classification_type": sidecar.classification_type,
        "folds": 1,
        "images": rows,
        "labels": [
            {"index": lab.index, "tag_id": lab.tag_id, "name": lab.name, "type": lab.type}
            for lab in sidecar.labels
        ],
    }


def model_performance(s: VisionServices, model: dict) -> tuple[dict, dict | None]:
    """(ModelPerformance, error): on the model's test dataset when it has one; else, or when that fails (the
    error says why), the cross-validated estimate."""
    error = None
    if model.get("testDatasetName"):
        try:
            test = datasets.require_ready(s, model["testDatasetName"])
            return performance.model_performance(run(s, model, test)), None
        except VisionError as exc:
            error = exc.body()["error"]
            error["message"] += "; modelPerformance is the cross-validated estimate on the training dataset"
    name = layout.iteration_artifact(model["projectId"], model["iterationId"], layout.EVALUATION)
    return performance.model_performance(json.loads(s.blobs.get(layout.MODELS, name))), error
