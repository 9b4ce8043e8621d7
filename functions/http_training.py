"""HTTP trigger for the Custom Vision Training API (v3.3 and v3.4-preview path prefixes)."""

from __future__ import annotations

import logging

import azure.functions as func
from azure.core.exceptions import AzureError

from cvcore.errors import CustomVisionError, NotFound, StorageUnavailable

from . import bootstrap
from .web.auth import require_key
from .web.http import ApiRequest, error_response, json_response
from .web.training_routes import router

bp = func.Blueprint()
log = logging.getLogger(__name__)
VERSIONS = ("v3.3", "v3.4-preview")


@bp.route(route="customvision/{version}/training/{*path}", methods=["GET", "POST", "PATCH", "DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
def training_api(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req)


def handle(req: func.HttpRequest) -> func.HttpResponse:
    """Check the key and version, route, call the core, and translate its errors to Custom Vision's."""
    try:
        services = bootstrap.services()
        require_key(req.headers, "Training-Key", services.settings.training_key)
        version = req.route_params.get("version", "")
        if version.lower() not in VERSIONS:
            raise NotFound("NotFound", f"API version {version!r} is not served; use one of {', '.join(VERSIONS)}")
        handler, params = router.resolve(req.method, req.route_params.get("path", ""))
        result = handler(services, ApiRequest(req), **params)
        body, status = result if isinstance(result, tuple) else (result, 200)
        return json_response(body, status)
    except CustomVisionError as err:
        return error_response(err)
    except AzureError as exc:
        log.exception("storage call failed")
        return error_response(StorageUnavailable("ErrorUnknown", f"storage is unavailable: {type(exc).__name__}"))
    except Exception:  # noqa: BLE001 - never leak a traceback to the client; the log has it
        log.exception("unhandled error in %s %s", req.method, req.url)
        return json_response({"code": "ErrorUnknown", "message": "internal error; see the function log"}, 500)
