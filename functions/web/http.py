"""A parsed view of an HTTP request, and JSON responses. Every parse error names the field."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from cvcore import layout
from cvcore.errors import BadRequest, CustomVisionError

log = logging.getLogger(__name__)
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


class ApiRequest:
    """Query names are matched without case, as ASP.NET (and so Custom Vision) does."""

    def __init__(self, req: func.HttpRequest):
        self.raw = req
        self.method = req.method.upper()
        self.headers = req.headers
        self._query = {k.lower(): v for k, v in req.params.items()}

    def query(self, name: str, default: str | None = None) -> str | None:
        value = self._query.get(name.lower())
        return default if value is None or value == "" else value

    def query_int(self, name: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        raw = self.query(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(
                "BadRequestInvalid", f"query parameter {name} must be an integer, got {raw!r}"
            ) from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise BadRequest(
                "BadRequestInvalid", f"query parameter {name} must be between {lo} and {hi}, got {value}"
            )
        return value

    def query_float(self, name: str, default: float | None = None) -> float | None:
        raw = self.query(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise BadRequest(
                "BadRequestInvalid", f"query parameter {name} must be a number, got {raw!r}"
            ) from None

    def query_bool(self, name: str, default: bool = False) -> bool:
        raw = self.query(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise BadRequest("BadRequestInvalid", f"query parameter {name} must be true or false, got {raw!r}")

    def query_list(self, name: str, max_items: int | None = None) -> list[str]:
        raw = self.query(name)
        items = [s.strip() for s in raw.split(",") if s.strip()] if raw else []
        if max_items is not None and len(items) > max_items:
            raise BadRequest(
                "BadRequestExceededBatchSize",
                f"query parameter {name} takes at most {max_items} values, got {len(items)}",
            )
        return items

    def query_guids(self, name: str, max_items: int | None = None) -> list[str]:
        return [guid(v, name) for v in self.query_list(name, max_items)]

    def body(self) -> bytes:
        return self.raw.get_body() or b""

    def json(self, required: bool = True) -> Any:
        data = self.body()
        if not data.strip():
            if required:
                raise BadRequest(
                    "BadRequestRequiredParamIsNull", "the request body is empty; JSON was expected"
                )
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("BadRequestInvalid", f"the request body is not valid JSON: {exc}") from None

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()


def guid(value: Any, field: str) -> str:
    try:
        return layout.guid(value, field)
    except ValueError as exc:
        raise BadRequest("BadRequestInvalidIds", str(exc)) from None


@dataclass(frozen=True)
class Binary:
    """A handler's reply that is not JSON: the bytes as they are, with their content type."""

    data: bytes
    content_type: str


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(status_code=status if status != 200 else 204)
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
    )


# Seconds a client is asked to wait before retrying a 503 (storage unreachable, e.g. paused or failing over):
# the SDKs' retry policies and well-behaved clients honour Retry-After instead of retrying at once.
RETRY_AFTER_S = 5


def error_response(err: CustomVisionError) -> func.HttpResponse:
    response = json_response(err.body(), status=err.status)
    if err.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def field_error(code: str, path: str, problem: str) -> BadRequest:
    return BadRequest(code, f"{path}: {problem}")
