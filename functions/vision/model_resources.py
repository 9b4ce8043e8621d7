"""Image Analysis models: PUT/GET/DELETE /computervision/models/{name} and POST .../models/{name}:cancel.

A model is an iteration of its training dataset's project, trained by the shared core (training/train.py,
forced, so several models may train on one dataset one after the other) and renamed after the model. Its
status is read from that iteration: Queued -> notStarted, Training -> training, Completed -> succeeded,
Failed -> failed (the trainer's reason as error.code), or cancelled. timeBudgetInHours 1 runs Quick
(Regular) training, which stops early as the service's AutoML may; 2 to 288 run Advanced training with
that budget. Cancelling makes the iteration terminal (Failed, code `cancelled`) through the same event path
the trainer reports on, so whatever the trainer reports later is ignored and the model stays cancelled.
"""

from __future__ import annotations

import math

from cvcore import messages
from cvcore.errors import CustomVisionError, NotFound

from ..domain.ports import ConcurrencyError, wired
from ..domain.records import Iteration
from ..training import events, iterations, train
from . import datasets, errors, evaluate
from .common import check_name, fields, now, require_record, to_iso
from .errors import VisionError
from .ports import VisionServices, registry
from .registry import ETAG, MODEL, AlreadyExists, evaluations_of

CLASSIFIER, DETECTOR = "Generic-Classifier", "Generic-Detector"
KINDS = {CLASSIFIER: datasets.CLASSIFICATION, DETECTOR: datasets.DETECTION}
MAX_BUDGET_HOURS = 288
CANCELLED = "cancelled"
_STATUS = {
    messages.QUEUED: "notStarted",
    messages.TRAINING: "training",
    messages.COMPLETED: "succeeded",
    messages.FAILED: "failed",
}
_REASONS = {messages.ERR_INTERNAL: "unknown", messages.ERR_TOO_MANY_ATTEMPTS: "unknown"}


def require(s: VisionServices, name: str) -> dict:
    return require_record(registry(s), MODEL, name, errors.MODEL_NOT_FOUND)


def check_kind(model_kind: str, dataset: dict) -> None:
    if KINDS[model_kind] != dataset["annotationKind"]:
        raise VisionError(
            400,
            errors.INCORRECT_MODEL_KIND,
            f"a {model_kind} model needs a {KINDS[model_kind]} dataset; {dataset['name']!r} is "
            f"{dataset['annotationKind']}",
        )


def status(it: Iteration | None) -> tuple[str, dict | None]:
    if it is None:
        return "failed", {"code": "unknown", "message": "the model's iteration was deleted"}
    if it.status == messages.FAILED and it.error_code == CANCELLED:
        return CANCELLED, None
    if it.status == messages.FAILED:
        return "failed", {
            "code": _REASONS.get(it.error_code or "", it.error_code or "unknown"),
            "message": it.error_message or "",
        }
    return _STATUS[it.status], None


def to_json(s: VisionServices, record: dict) -> dict:
    it = s.repo.get_iteration(record["projectId"], record["iterationId"])
    state, error = status(it)
    body = {
        "name": record["name"],
        "createdDateTime": record["created"],
        "updatedDateTime": to_iso(it.last_modified) if it else record["created"],
        "status": state,
        "trainingParameters": {
            "trainingDatasetName": record["trainingDatasetName"],
            "timeBudgetInHours": record["timeBudgetInHours"],
            "modelKind": record["modelKind"],
        },
        "trainingCostInMinutes": math.ceil((it.training_seconds or 0) / 60) if it else 0,
    }
    if record.get("testDatasetName"):
        body["evaluationParameters"] = {"testDatasetName": record["testDatasetName"]}
    if state == "succeeded":
        if record.get("performance") is None:  # first read after training: measure once, keep it
            record["performance"], record["performanceError"] = evaluate.model_performance(s, record)
            try:
                registry(s).replace(MODEL, record["name"], record, record.get(ETAG))
            except ConcurrencyError:
                pass  # another reader stored the same figures
        body["modelPerformance"] = record["performance"]
        error = record.get("performanceError")
    if error:
        body["error"] = error
    return body


def _parameters(body) -> tuple[str, float, str, str | None]:
    b = fields(body, "the body")
    tp = fields(b.get("trainingparameters"), "trainingParameters")
    dataset, budget, kind = tp.get("trainingdatasetname"), tp.get("timebudgetinhours"), tp.get("modelkind")
    kind = {k.lower(): k for k in KINDS}.get(str(kind).lower())
    if kind is None:
        raise VisionError(
            400,
            errors.INVALID_ARGUMENT,
            f"trainingParameters.modelKind must be {CLASSIFIER} or {DETECTOR}, got {tp.get('modelkind')!r}",
        )
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= MAX_BUDGET_HOURS:
        raise VisionError(
            400,
            errors.INVALID_ARGUMENT,
            "trainingParameters.timeBudgetInHours must be a number "
            f"of hours above 0 and at most {MAX_BUDGET_HOURS}",
        )
    ep = fields(b.get("evaluationparameters"), "evaluationParameters", required=False)
    return (
        check_name(dataset, "trainingParameters.trainingDatasetName"),
        budget,
        kind,
        check_name(ep["testdatasetname"], "evaluationParameters.testDatasetName") if ep else None,
    )


def create(s: VisionServices, name: str, body) -> tuple[dict, int]:
    name = check_name(name, "model name")
    dataset_name, budget, kind, test_name = _parameters(body)
    if registry(s).get(MODEL, name) is not None:
        raise VisionError(409, errors.MODEL_ALREADY_EXISTS, f"a model named {name!r} exists")
    dataset = datasets.require_ready(s, dataset_name)  # not while registering in the background, nor failed
    check_kind(kind, dataset)
    if test_name:
        check_kind(kind, datasets.require_ready(s, test_name))
    hours = math.ceil(budget)
    it = train.train_project(
        s.repo,
        s.blobs,
        wired(s.jobs, "jobs"),
        dataset["projectId"],
        training_type=train.REGULAR if hours <= 1 else train.ADVANCED,
        budget_hours=0 if hours <= 1 else hours,
        force=True,
        selected_tags=None,
    )
    try:
        iterations.update_iteration(s.repo, dataset["projectId"], it["id"], {"name": name})
    except CustomVisionError:
        pass  # the name is only a convenience for the Custom Vision API's view
    record = {
        "name": name,
        "modelKind": kind,
        "trainingDatasetName": dataset_name,
        "timeBudgetInHours": budget,
        "testDatasetName": test_name,
        "projectId": dataset["projectId"],
        "iterationId": it["id"],
        "created": now(),
        "performance": None,
        "performanceError": None,
    }
    try:
        registry(s).add(MODEL, name, record)
    except AlreadyExists:
        iterations.delete_iteration(s.repo, s.blobs, dataset["projectId"], it["id"])
        raise VisionError(409, errors.MODEL_ALREADY_EXISTS, f"a model named {name!r} exists") from None
    return to_json(s, require(s, name)), 201


def cancel(s: VisionServices, name: str) -> tuple[dict, int]:
    record = require(s, name)
    it = s.repo.get_iteration(record["projectId"], record["iterationId"])
    if it is not None and it.status in train.ACTIVE:
        events.apply_event(
            s.repo,
            messages.TrainingEvent(
                record["projectId"],
                record["iterationId"],
                messages.FAILED,
                error_code=CANCELLED,
                error_message=f"cancelled by POST /computervision/models/{name}:cancel",
            ),
        )
    elif status(it)[0] != CANCELLED:
        raise errors.bad_request(
            f"model {name!r} is {status(it)[0]}; only a model in training can be cancelled",
            "ModelNotCancellable",
        )
    return to_json(s, require(s, name)), 202


def delete(s: VisionServices, name: str) -> None:
    record = require(s, name)
    try:
        iterations.delete_iteration(s.repo, s.blobs, record["projectId"], record["iterationId"])
    except NotFound:
        pass  # already gone (deleted through the Custom Vision API)
    for evaluation in registry(s).list(evaluations_of(name)):
        registry(s).delete(evaluations_of(name), evaluation["name"])
    registry(s).delete(MODEL, name)
    datasets.release_project(s, record["projectId"])
