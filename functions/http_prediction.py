"""HTTP trigger for the Custom Vision Prediction API (v3.0 and v3.1 path prefixes): classify or detect an
image sent as bytes (octet-stream or multipart `imageData`) or named by `{"url": ...}`, stored for review
unless the path ends in /nostore."""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qs

import azure.functions as func

from cvcore import artifacts
from cvcore.errors import BadRequest

from .bootstrap import Services
from .prediction import service
from .web import multipart
from .web.edge import serve
from .web.http import ApiRequest
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
    return serve(req, router, VERSIONS, "Prediction-Key", lambda s: s.settings.prediction_key)


def image_bytes(r: ApiRequest) -> bytes:
    """The image of an image route: raw bytes, or the `imageData` part (else the first part) of a form."""
    if r.content_type.startswith("multipart/"):
        parts = multipart.parse(r.headers.get("content-type", ""), r.body())
        named = [data for name, data in parts if name.lower() == "imagedata"]
        return (named or [data for _, data in parts] or [b""])[0]
    if r.content_type in ("application/octet-stream", "") or r.content_type.startswith("image/"):
        return r.body()
    raise BadRequest(
        "UnsupportedMediaType",
        f"Content-Type {r.content_type!r} is not accepted; send the image as "
        "application/octet-stream or multipart/form-data",
    )


def image_url(r: ApiRequest):
    """The `url` of a URL route: JSON {"url": ...} (any case), or a form field."""
    if r.content_type == "application/x-www-form-urlencoded":
        values = {k.lower(): v for k, v in parse_qs(r.body().decode("utf-8", "replace")).items()}
        return (values.get("url") or [None])[0]
    body = r.json()
    if not isinstance(body, dict):
        raise BadRequest("BadRequestImageUrl", "the body must be a JSON object with a url")
    return {k.lower(): v for k, v in body.items()}.get("url")


def _predict(
    s: Services, r: ApiRequest, projectId: str, publishedName: str, kind: str, source: str, store: bool
):
    data, url = (image_bytes(r), None) if source == "image" else (None, image_url(r))
    return service.predict(
        s.predictor,
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
