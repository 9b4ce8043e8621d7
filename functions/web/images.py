"""The image of a request, as the Prediction API (and the Training API's quick test and Image Analysis'
analyze) take it: raw bytes or a multipart `imageData` part, or a `url` in JSON or a form."""

from __future__ import annotations

from urllib.parse import parse_qs

from cvcore.errors import BadRequest

from . import multipart
from .http import ApiRequest


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
        urls = values.get("url")
        return urls[0] if urls else None
    body = r.json()
    if not isinstance(body, dict):
        raise BadRequest("BadRequestImageUrl", "the body must be a JSON object with a url")
    return {k.lower(): v for k, v in body.items()}.get("url")
