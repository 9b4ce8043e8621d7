"""Domain errors carrying Custom Vision's error codes; translated to HTTP only at the edge.

CustomVisionError            code + message + HTTP status
├── BadRequest (400)         the request is malformed or refused (BadRequest*, ...)
├── Unauthorized (401)       missing or wrong key
├── NotFound (404)           NotFoundProject, NotFoundTag, NotFoundImage, ...
├── Conflict (409)
└── StorageUnavailable (503) the storage account could not be reached
"""

from __future__ import annotations


class CustomVisionError(Exception):
    status = 400

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


class BadRequest(CustomVisionError):
    status = 400


class Unauthorized(CustomVisionError):
    status = 401


class NotFound(CustomVisionError):
    status = 404


class Conflict(CustomVisionError):
    status = 409


class StorageUnavailable(CustomVisionError):
    status = 503
