"""HTTP trigger for the Image Analysis 4.0 model-customization API (`/computervision/...`, api-version
2023-02-01-preview or 2023-04-01-preview; analyze also 2022-10-12-preview): datasets, models, evaluations and
imageanalysis:analyze, on the same core as the Custom Vision API (functions/vision).

Key: header `Ocp-Apim-Subscription-Key`. Datasets, models and evaluations take the training key
(CUSTOMVISION_TRAINING_KEY); analyze takes either key (training or prediction), as a Vision resource's key
both trains and predicts. Errors use that API's envelope: {"error": {"code", "message", ...}}.
"""

from __future__ import annotations

import logging

import azure.functions as func
from azure.core.exceptions import AzureError

from cvcore.errors import CustomVisionError, Unauthorized

from . import bootstrap
from .vision import errors
from .vision.routes import router
from .web.auth import require_key
from .web.http import ApiRequest, json_response

bp = func.Blueprint()
log = logging.getLogger(__name__)
KEY_HEADER = "Ocp-Apim-Subscription-Key"
VERSIONS = ("2023-02-01-preview", "2023-04-01-preview")
ANALYZE = "imageanalysis:analyze"
ANALYZE_VERSIONS = VERSIONS + ("2022-10-12-preview",)


@bp.route(
    route="computervision/{*path}",
    methods=["GET", "PUT", "POST", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
def vision_api(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req)


def require_any_key(headers, keys: tuple[str, ...]) -> None:
    for key in keys[1:]:
        try:
            return require_key(headers, KEY_HEADER, key)
        except Unauthorized:
            pass
    require_key(headers, KEY_HEADER, keys[0])


def handle(req: func.HttpRequest) -> func.HttpResponse:
    try:
        s = bootstrap.services()
        path = req.route_params.get("path", "").strip("/")
        analyze = path.lower() == ANALYZE
        require_any_key(
            req.headers,
            (s.settings.training_key, s.settings.prediction_key) if analyze else (s.settings.training_key,),
        )
        r = ApiRequest(req)
        versions = ANALYZE_VERSIONS if analyze else VERSIONS
        if r.query("api-version") not in versions:
            raise errors.bad_request(
                f"api-version {r.query('api-version')!r} is not supported; use one of {', '.join(versions)}",
                "UnsupportedApiVersion",
            )
        handler, params = router.resolve(req.method, path)
        result = handler(s, r, **params)
        body, status = result if isinstance(result, tuple) else (result, 200)
        return json_response(body, status)
    except CustomVisionError as err:
        return json_response(errors.envelope(err), err.status)
    except AzureError as exc:
        log.exception("storage call failed")
        return json_response(
            {
                "error": {
                    "code": "ServiceUnavailable",
                    "message": f"storage is unavailable: {type(exc).__name__}",
                }
            },
            503,
        )
    except Exception:  # never leak a traceback to the client; the log has it
        log.exception("unhandled error in %s %s", req.method, req.url)
        return json_response(
            {"error": {"code": "InternalServerError", "message": "internal error; see the function log"}}, 500
        )
