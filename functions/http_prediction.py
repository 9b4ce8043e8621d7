"""HTTP trigger for the Custom Vision Prediction API (v3.0 and v3.1 path prefixes): classify or detect an
image sent as bytes (octet-stream or multipart `imageData`) or named by `{"url": ...}`, stored for review
unless the path ends in /nostore."""

from __future__ import annotations

from functools import partial

import azure.functions as func

from cvcore import artifacts

from . import bootstrap
from .bootstrap import Services
from .domain.ports import wired
from .prediction import service
from .web.edge import serve
from .web.http import ApiRequest
from .web.images import image_bytes, image_url
from .web.router import Router

bp = func.Blueprint()
VERSIONS = ("v3.0", "v3.1")
router = Router()
_TASKS = {"classify": artifacts.CLASSIFICATION, "detect": artifacts.DETECTION}


@bp.route(
    route="customvision/{version}/prediction/{*path}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS
)
def prediction_api(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req)


def handle(req: func.HttpRequest) -> func.HttpResponse:
    return serve(
        req, router, VERSIONS, "Prediction-Key", lambda s: s.settings.prediction_key, bootstrap.services
    )


def _predict(
    s: Services, r: ApiRequest, projectId: str, publishedName: str, kind: str, source: str, store: bool
):
    data, url = (image_bytes(r), None) if source == "image" else (None, image_url(r))
    return service.predict(
        wired(s.predictor, "predictor"),
        projectId,
        publishedName,
        _TASKS[kind],
        data,
        url=url,
        application=r.query("application"),
        store=store,
    )


for _kind in _TASKS:
    for _source in ("image", "url"):
        for _suffix, _store in (("", True), ("/nostore", False)):
            router.route("POST", f"{{projectId}}/{_kind}/iterations/{{publishedName}}/{_source}{_suffix}")(
                partial(_predict, kind=_kind, source=_source, store=_store)
            )
