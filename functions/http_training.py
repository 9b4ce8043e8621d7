"""HTTP trigger for the Custom Vision Training API (v3.3 and v3.4-preview path prefixes)."""

from __future__ import annotations

import azure.functions as func

from . import bootstrap
from .training.routes import router
from .web.edge import serve

bp = func.Blueprint()
VERSIONS = ("v3.3", "v3.4-preview")


@bp.route(
    route="customvision/{version}/training/{*path}",
    methods=["GET", "POST", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
def training_api(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req)


def handle(req: func.HttpRequest) -> func.HttpResponse:
    """Check the key and version, route, call the core, and translate its errors to Custom Vision's."""
    return serve(req, router, VERSIONS, "Training-Key", lambda s: s.settings.training_key, bootstrap.services)
