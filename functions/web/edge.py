"""The HTTP edge both APIs share: check the key and the API version, route, call the core, and translate
its errors to Custom Vision's JSON (a storage outage is a 503, anything unexpected a 500 without a
traceback; the log has it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from cvcore.errors import CustomVisionError, NotFound, StorageUnavailable

from .auth import require_key
from .http import ApiRequest, Binary, error_response, json_response
from .router import Router

log = logging.getLogger(__name__)


def serve(
    req: func.HttpRequest,
    router: Router,
    versions: tuple[str, ...],
    key_header: str,
    key: Callable[[Any], str],
    services_of: Callable[[], Any],
) -> func.HttpResponse:
    """`services_of` is the trigger's way to the composition root (bootstrap.services): called per request
    inside the error translation, so a storage outage while building them is a 503 like any other."""
    try:
        services = services_of()
        require_key(req.headers, key_header, key(services))
        version = req.route_params.get("version", "")
        if version.lower() not in versions:
            raise NotFound(
                "NotFound", f"API version {version!r} is not served; use one of {', '.join(versions)}"
            )
        handler, params = router.resolve(req.method, req.route_params.get("path", ""))
        result = handler(services, ApiRequest(req), **params)
        if isinstance(result, Binary):
            return func.HttpResponse(result.data, status_code=200, mimetype=result.content_type)
        body, status = result if isinstance(result, tuple) else (result, 200)
        return json_response(body, status)
    except CustomVisionError as err:
        return error_response(err)
    except AzureError as exc:
        log.exception("storage call failed")
        return error_response(
            StorageUnavailable("ErrorUnknown", f"storage is unavailable: {type(exc).__name__}")
        )
    except Exception:
        log.exception("unhandled error in %s %s", req.method, req.url)
        return json_response({"code": "ErrorUnknown", "message": "internal error; see the function log"}, 500)
