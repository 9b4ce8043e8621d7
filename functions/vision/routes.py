"""Image Analysis 4.0 model-customization routes (under /computervision/): parse, call the core, reply."""

from __future__ import annotations

from functools import partial

from ..web.http import ApiRequest
from ..web.router import Router
from . import analyze, datasets, errors, evaluations, model_resources
from .ports import VisionServices, registry
from .registry import DATASET, MODEL

router = Router()
get, put, post, patch, delete = (partial(router.route, m) for m in ("GET", "PUT", "POST", "PATCH", "DELETE"))
CANCEL = ":cancel"


@get("datasets")
def _datasets(s: VisionServices, r: ApiRequest):
    return [datasets.to_json(d) for d in sorted(registry(s).list(DATASET), key=lambda d: d["created"])]


@put("datasets/{name}")
def _register_dataset(s: VisionServices, r: ApiRequest, name: str):
    return datasets.register(s, name, r.json())


@get("datasets/{name}")
def _dataset(s: VisionServices, r: ApiRequest, name: str):
    return datasets.to_json(datasets.require(s, name))


@patch("datasets/{name}")
def _update_dataset(s: VisionServices, r: ApiRequest, name: str):
    return datasets.update(s, name, r.json())


@delete("datasets/{name}")
def _delete_dataset(s: VisionServices, r: ApiRequest, name: str):
    datasets.delete(s, name)


@get("models")
def _models(s: VisionServices, r: ApiRequest):
    return [
        model_resources.to_json(s, m) for m in sorted(registry(s).list(MODEL), key=lambda m: m["created"])
    ]


@put("models/{name}")
def _train(s: VisionServices, r: ApiRequest, name: str):
    return model_resources.create(s, name, r.json())


@get("models/{name}")
def _model(s: VisionServices, r: ApiRequest, name: str):
    return model_resources.to_json(s, model_resources.require(s, name))


@post("models/{name}")
def _model_action(s: VisionServices, r: ApiRequest, name: str):
    """POST models/{name}:cancel (the router splits paths on '/', so the action arrives inside the name)."""
    if not name.lower().endswith(CANCEL):
        raise errors.bad_request(f"POST models/{name}: the only model action is {CANCEL}", "NotSupported")
    return model_resources.cancel(s, name[: -len(CANCEL)])


@delete("models/{name}")
def _delete_model(s: VisionServices, r: ApiRequest, name: str):
    model_resources.delete(s, name)


@get("models/{model}/evaluations")
def _evaluations(s: VisionServices, r: ApiRequest, model: str):
    return evaluations.list_all(s, model)


@put("models/{model}/evaluations/{name}")
def _evaluate(s: VisionServices, r: ApiRequest, model: str, name: str):
    return evaluations.create(s, model, name, r.json())


@get("models/{model}/evaluations/{name}")
def _evaluation(s: VisionServices, r: ApiRequest, model: str, name: str):
    return evaluations.to_json(evaluations.require(s, model, name))


@delete("models/{model}/evaluations/{name}")
def _delete_evaluation(s: VisionServices, r: ApiRequest, model: str, name: str):
    evaluations.delete(s, model, name)


@post("imageanalysis:analyze")
def _analyze(s: VisionServices, r: ApiRequest):
    return analyze.analyze(s, r)
