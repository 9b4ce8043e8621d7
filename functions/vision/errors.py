"""Errors of the Image Analysis 4.0 API, and its error envelope.

    {"error": {"code": "DatasetAlreadyExists", "message": "...", "details": [...]?, "innererror": {...}?}}

VisionError carries one of the codes that API names (DatasetAlreadyExists, DatasetInvalidAnnotationUri,
datasetNotFound, modelNotFound, datasetAnnotationsInvalid, datasetEmpty, incorrectModelKind, ...). An error
of the shared core (cvcore.errors, Custom Vision's codes) keeps its HTTP status and becomes the innererror
under the generic code of that status, so nothing the core explains is lost.
"""

from __future__ import annotations

from typing import Any

from cvcore.errors import CustomVisionError

DATASET_ALREADY_EXISTS = "DatasetAlreadyExists"
DATASET_INVALID_ANNOTATION_URI = "DatasetInvalidAnnotationUri"
DATASET_NOT_FOUND = "datasetNotFound"
MODEL_NOT_FOUND = "modelNotFound"
DATASET_ANNOTATIONS_INVALID = "datasetAnnotationsInvalid"
DATASET_EMPTY = "datasetEmpty"
# ours, not a code of the Image Analysis API (it registered a dataset within the PUT): a large dataset's
# images are still being validated and imported in the background (vision/datasets.py)
DATASET_NOT_READY = "DatasetNotReady"
INCORRECT_MODEL_KIND = "incorrectModelKind"
MODEL_ALREADY_EXISTS = "ModelAlreadyExists"
EVALUATION_ALREADY_EXISTS = "EvaluationAlreadyExists"
EVALUATION_NOT_FOUND = "evaluationNotFound"
INVALID_REQUEST = "InvalidRequest"
INVALID_ARGUMENT = "InvalidArgument"
MAX_DETAILS = 100
_GENERIC = {
    400: INVALID_REQUEST,
    401: "401",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    503: "ServiceUnavailable",
}


class VisionError(CustomVisionError):
    """An error the Image Analysis API names; `details` are {code, message, target} objects."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict] | None = None,
        inner: dict | None = None,
    ):
        super().__init__(code, message)
        self.status, self.details, self.inner = status, list(details or [])[:MAX_DETAILS], inner

    def body(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        if self.inner:
            error["innererror"] = self.inner
        return {"error": error}


def bad_request(message: str, inner_code: str | None = None) -> VisionError:
    return VisionError(
        400, INVALID_REQUEST, message, inner={"code": inner_code, "message": message} if inner_code else None
    )


def envelope(err: CustomVisionError) -> dict:
    """The Image Analysis body of any core error."""
    if isinstance(err, VisionError):
        return err.body()
    return {
        "error": {
            "code": _GENERIC.get(err.status, INVALID_REQUEST),
            "message": err.message,
            "innererror": {"code": err.code, "message": err.message},
        }
    }
