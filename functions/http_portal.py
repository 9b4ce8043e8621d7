"""HTTP trigger for the portal: the single-page web app at /portal/, served from the package's own files.

The pages hold no data and no key; everything they show comes from the public Training and Prediction API,
called from the browser with the key the person types (kept in the browser session only). So these routes
need no key, and they serve only the files listed at import time (a request names a file, never a path)."""

from __future__ import annotations

import azure.functions as func

from .portal import assets

bp = func.Blueprint()


@bp.route(route="portal/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def portal(req: func.HttpRequest) -> func.HttpResponse:
    path = req.route_params.get("path") or ""
    if not path and not req.url.split("?")[0].endswith("/"):
        return func.HttpResponse(status_code=308, headers={"Location": "/portal/"})
    found = assets.lookup(path)
    if found is None:
        return func.HttpResponse("not found", status_code=404, mimetype="text/plain")
    if req.headers.get("if-none-match") == found.etag:
        return func.HttpResponse(status_code=304, headers=found.headers())
    return func.HttpResponse(
        found.data, status_code=200, headers=found.headers(), mimetype=found.content_type.split(";")[0]
    )
