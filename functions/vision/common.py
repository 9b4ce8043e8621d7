"""Request-body and name rules shared by the Image Analysis datasets, models and evaluations."""

from __future__ import annotations

import re
from datetime import datetime

from ..domain.records import iso, utcnow
from .errors import INVALID_ARGUMENT, VisionError

MAX_NAME = 200
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_name(value) -> bool:
    """A dataset, model or evaluation name: 1 to 200 letters, digits, '_', '-' or '.', starting with a letter
    or digit (it is a path segment and a table key)."""
    return isinstance(value, str) and bool(_NAME.fullmatch(value)) and len(value) <= MAX_NAME


def require_record(registry, kind: str, name, code: str) -> dict:
    """The registry's `kind` record named `name`, or a 404 with `code` (datasetNotFound, modelNotFound)."""
    record = registry.get(kind, name) if is_name(name) else None
    if record is None:
        raise VisionError(404, code, f"{kind} {str(name)[:200]!r} does not exist")
    return record


def check_name(value, what: str) -> str:
    if not is_name(value):
        raise VisionError(
            400,
            INVALID_ARGUMENT,
            f"{what}: {str(value)[:80]!r} is not a valid name; use 1 to "
            f"{MAX_NAME} letters, digits, '_', '-' or '.'",
        )
    return value


def fields(value, what: str, required: bool = True) -> dict:
    """A JSON object with its keys lower-cased: the service reads `AnnotationKind` and `annotationKind` alike
    (Microsoft's samples send PascalCase, its docs camelCase)."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise VisionError(400, INVALID_ARGUMENT, f"{what} must be a JSON object")
    return {str(k).lower(): v for k, v in value.items()}


def now() -> str:
    return iso(utcnow())


def to_iso(value: datetime | str | None) -> str | None:
    return iso(value) if isinstance(value, datetime) else value
