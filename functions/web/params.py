"""Fields of a JSON request body, checked one by one with the error code the caller names: the helpers the
Training API's query bodies share (stored predictions, suggested images, artifacts). Each raises
cvcore.errors.BadRequest naming the field's path, so a client sees which value was wrong."""

from __future__ import annotations

from cvcore import layout
from cvcore.errors import BadRequest

DEFAULT_COUNT = 50  # a page's size when maxCount is 0 or absent
MAX_COUNT = 256


def lower_keys(body, what: str, code: str) -> dict:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest(code, f"the body must be a {what} JSON object")
    return {str(k).lower(): v for k, v in body.items()}


def guid(value, path: str) -> str:
    try:
        return layout.guid(value, path)
    except ValueError as exc:
        raise BadRequest("BadRequestInvalidIds", str(exc)) from None


def unit(value, default: float, path: str, code: str) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise BadRequest(code, f"{path}: a number from 0 to 1 is required, got {value!r}")
    return float(value)


def page_size(value, code: str, exceeded_code: str) -> int:
    """maxCount: 0 or absent means DEFAULT_COUNT."""
    if value is None or value == 0:
        return DEFAULT_COUNT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise BadRequest(code, f"maxCount: a whole number from 0 to {MAX_COUNT} is required, got {value!r}")
    if value > MAX_COUNT:
        raise BadRequest(exceeded_code, f"maxCount: at most {MAX_COUNT} results a page, got {int(value)}")
    return int(value)
