"""Evaluations of a trained model on a registered dataset: PUT/GET/DELETE
/computervision/models/{model}/evaluations/{name}, GET .../evaluations.

The run happens inside the PUT (evaluate.run: the model's ONNX on every annotated image of the dataset), so
the reply already says succeeded, with modelPerformance, or failed with the reason (datasetEmpty,
modelNotFound); a missing model or dataset, or a dataset of the other kind, is refused at once.
"""

from __future__ import annotations

from . import datasets, errors, evaluate, model_resources, performance
from .common import check_name, fields, is_name, now
from .errors import VisionError
from .ports import VisionServices, registry
from .registry import AlreadyExists, evaluations_of


def to_json(record: dict) -> dict:
    body = {
        "name": record["name"],
        "modelName": record["modelName"],
        "evaluationParameters": {"testDatasetName": record["testDatasetName"]},
        "status": record["status"],
        "createdDateTime": record["created"],
        "updatedDateTime": record["updated"],
    }
    for key, field in (("performance", "modelPerformance"), ("error", "error")):
        if record.get(key) is not None:
            body[field] = record[key]
    return body


def require(s: VisionServices, model_name: str, name: str) -> dict:
    model_resources.require(s, model_name)
    record = registry(s).get(evaluations_of(model_name), name) if is_name(name) else None
    if record is None:
        raise VisionError(
            404, errors.EVALUATION_NOT_FOUND, f"model {model_name!r} has no evaluation {name!r}"
        )
    return record


def create(s: VisionServices, model_name: str, name: str, body) -> tuple[dict, int]:
    name = check_name(name, "evaluation name")
    parameters = fields(fields(body, "the body").get("evaluationparameters"), "evaluationParameters")
    model = model_resources.require(s, model_name)
    if registry(s).get(evaluations_of(model_name), name) is not None:
        raise VisionError(
            409, errors.EVALUATION_ALREADY_EXISTS, f"model {model_name!r} has an evaluation {name!r}"
        )
    dataset = datasets.require_ready(
        s, check_name(parameters.get("testdatasetname"), "evaluationParameters.testDatasetName")
    )
    model_resources.check_kind(model["modelKind"], dataset)
    state = model_resources.status(s.repo.get_iteration(model["projectId"], model["iterationId"]))[0]
    if state != "succeeded":
        raise errors.bad_request(
            f"model {model_name!r} is {state}; only a trained model can be evaluated", "ModelNotTrained"
        )
    record = {"name": name, "modelName": model_name, "testDatasetName": dataset["name"], "created": now()}
    try:
        figures = performance.model_performance(evaluate.run(s, model, dataset))
        record.update(status="succeeded", performance=figures)
    except VisionError as exc:
        record.update(status="failed", error=exc.body()["error"])
    record["updated"] = now()
    try:
        registry(s).add(evaluations_of(model_name), name, record)
    except AlreadyExists:
        raise VisionError(
            409, errors.EVALUATION_ALREADY_EXISTS, f"model {model_name!r} has an evaluation {name!r}"
        ) from None
    return to_json(record), 201


def list_all(s: VisionServices, model_name: str) -> list[dict]:
    model_resources.require(s, model_name)
    return [
        to_json(r) for r in sorted(registry(s).list(evaluations_of(model_name)), key=lambda r: r["created"])
    ]


def delete(s: VisionServices, model_name: str, name: str) -> None:
    require(s, model_name, name)
    registry(s).delete(evaluations_of(model_name), name)
