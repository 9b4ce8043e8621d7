"""Image Analysis 4.0 model-customization routes (under /computervision/): parse, call the core, reply."""

from __future__ import annotations

from functools import partial

from ..bootstrap import Services
from ..web.http import ApiRequest
from ..web.router import Router
from . import analyze, datasets, errors, evaluations, models
from .registry import DATASET, MODEL

router = Router()
get, put, post, patch, delete = (partial(router.route, m) for m in ("GET", "PUT", "POST", "PATCH", "DELETE"))
CANCEL = ":cancel"


@get("datasets")
def _datasets(s: Services, r: ApiRequest):
    return [datasets.to_json(d) for d in sorted(s.vision.list(DATASET), key=lambda d: d["created"])]


@put("datasets/{name}")
def _register_dataset(s: Services, r: ApiRequest, name: str):
    return datasets.register(s, name, r.json())


@get("datasets/{name}")
def _dataset(s: Services, r: ApiRequest, name: str):
    return datasets.to_json(datasets.require(s, name))


@patch("datasets/{name}")
def _update_dataset(s: Services, r: ApiRequest, name: str):
    return datasets.update(s, name, r.json())


@delete("datasets/{name}")
def _delete_dataset(s: Services, r: ApiRequest, name: str):
    datasets.delete(s, name)


@get("models")
def _models(s: Services, r: ApiRequest):
    return [models.to_json(s, m) for m in sorted(s.vision.list(MODEL), key=lambda m: m["created"])]


@put("models/{name}")
def _train(s: Services, r: ApiRequest, name: str):
    return models.create(s, name, r.json())


@get("models/{name}")
def _model(s: Services, r: ApiRequest, name: str):
    return models.to_json(s, models.require(s, name))


@post("models/{name}")
def _model_action(s: Services, r: ApiRequest, name: str):
    """POST models/{name}:cancel (the router splits paths on '/', so the action arrives inside the name)."""
    if not name.lower().endswith(CANCEL):
        raise errors.bad_request(f"POST models/{name}: the only model action is {CANCEL}", "NotSupported")
    return models.cancel(s, name[: -len(CANCEL)])


@delete("models/{name}")
def _delete_model(s: Services, r: ApiRequest, name: str):
    models.delete(s, name)


@get("models/{model}/evaluations")
def _evaluations(s: Services, r: ApiRequest, model: str):
    return evaluations.list_all(s, model)


@put("models/{model}/evaluations/{name}")
def _evaluate(s: Services, r: ApiRequest, model: str, name: str):
    return evaluations.create(s, model, name, r.json())


@get("models/{model}/evaluations/{name}")
def _evaluation(s: Services, r: ApiRequest, model: str, name: str):
    return evaluations.to_json(evaluations.require(s, model, name))


@delete("models/{model}/evaluations/{name}")
def _delete_evaluation(s: Services, r: ApiRequest, model: str, name: str):
    evaluations.delete(s, model, name)


@post("imageanalysis:analyze")
def _analyze(s: Services, r: ApiRequest):
    return analyze.analyze(s, r)
