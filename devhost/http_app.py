"""The HTTP triggers' side of the host: route a request to its function, build a real `func.HttpRequest`,
map the returned `func.HttpResponse` back (devhost.http_server serves it)."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote

import azure.functions as func

from .bindings import json_binding_data
from .catalog import HTTP_TRIGGER, TIMER_TRIGGER, FunctionSpec
from .config import HostConfig
from .http_server import Request, Response, respond
from .invoker import Invoker
from .routes import Route, Router
from .timer import timer_request

log = logging.getLogger("devhost")


_ADMIN_RUN = re.compile(r"/admin/functions/([^/]+)/?", re.IGNORECASE)


def build_router(specs: list[FunctionSpec], cfg: HostConfig) -> Router:
    routes = []
    for spec in specs:
        if spec.trigger_type == HTTP_TRIGGER:
            methods = spec.trigger.get("methods")
            routes.append(
                Route(
                    spec.trigger.get("route") or spec.name,
                    frozenset(m.upper() for m in methods) if methods else None,
                    spec,
                )
            )
    return Router(routes, cfg.route_prefix)


def request_path(raw: bytes) -> str:
    """The path routing sees: percent-decoded except `%2F`, which stays encoded (as in ASP.NET Core)."""
    return unquote(re.sub("%2[fF]", "%252F", raw.decode("latin-1")), encoding="utf-8", errors="replace")


def to_http(value) -> tuple[int, list, bytes]:
    """A function's HTTP result -> (status, headers, body), as the Python worker encodes it."""
    if value is None:
        return 204, [], b""
    if isinstance(value, (str, bytes)):
        value = func.HttpResponse(value)
    if not isinstance(value, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(value).__name__}, not func.HttpResponse")
    headers = [(k, v) for k, v in value.headers.items()]
    if not any(k.lower() == "content-type" for k, _ in headers):
        mime = value.mimetype
        headers.append(
            ("Content-Type", f"{mime}; charset={value.charset}" if mime.startswith("text/") else mime)
        )
    body = value.get_body()
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    return value.status_code, headers, body


class HttpApp:
    """What the server calls for each request (devhost.http_server, on the connection's thread): route to
    a function, build the `func.HttpRequest`, invoke, and map the result back."""

    def __init__(self, specs: list[FunctionSpec], invoker: Invoker, cfg: HostConfig):
        self.router, self.invoker, self.max_body = build_router(specs, cfg), invoker, cfg.max_body
        self.by_name = {spec.name.lower(): spec for spec in specs}

    def run_now(self, name: str) -> Response:
        """`POST /admin/functions/{name}`: run a timer function now, as the host's admin API does (202)."""
        spec = self.by_name.get(name.lower())
        if spec is None:
            return respond(404, {"error": f"no function named {name!r}"})
        if spec.trigger_type != TIMER_TRIGGER:
            return respond(
                400,
                {
                    "error": f"devhost runs timer functions on demand, and {spec.name} "
                    f"has a {spec.trigger_type}"
                },
            )
        try:
            self.invoker.call(spec, timer_request(False, None, None), {}, "(admin request)")
        except Exception:
            pass
        return respond(202, None)

    def __call__(self, request: Request) -> Response:
        method, path = request.method, request_path(request.path)
        admin = _ADMIN_RUN.fullmatch(path)
        if admin and method == "POST":  # the host reserves /admin: no function route can take it
            return self.run_now(admin.group(1))
        route, found = self.router.resolve(method, path)
        if route is None:
            if found:
                return respond(405, {"error": "method not allowed"}, [("Allow", ", ".join(found))])
            if path.rstrip("/").lower() == "/admin/host/status":
                return respond(200, {"state": "Running"})
            return respond(404, None)
        headers: dict[str, str] = {}
        for name, raw in request.headers:
            key, value = name.decode("latin-1"), raw.decode("latin-1")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body = request.body
        if body is None:
            return respond(413, {"error": f"request body is larger than {self.max_body} bytes"})
        spec, values = route.target, found
        query_string = request.query.decode("latin-1")
        params: dict[str, str] = {}
        for k, v in parse_qsl(query_string, keep_blank_values=True):
            params[k] = f"{params[k]},{v}" if k in params else v
        server_host, server_port = request.server
        host = headers.get("host") or f"{server_host}:{server_port}"
        query = "?" + query_string if query_string else ""
        url = f"http://{host}{request.path.decode('latin-1')}{query}"
        req = func.HttpRequest(method, url, headers=headers, params=params, route_params=values, body=body)
        data = {**params, **values}
        if spec.inputs or any(b.get("type") != "http" for b in spec.outputs):
            data = {**json_binding_data(body), **data}
        failed = {"error": "function failed", "function": spec.name}
        try:
            result, outs = self.invoker.call(spec, req, data, f"{method} {path}")
        except Exception as exc:
            return respond(500, {**failed, "type": type(exc).__name__})
        try:
            http_out = next((b["name"] for b in spec.outputs if b.get("type") == "http"), "$return")
            return to_http(result if http_out == "$return" else outs[http_out].get())
        except Exception as exc:
            log.exception("function %s gave no usable HTTP response", spec.name)
            return respond(500, {**failed, "type": type(exc).__name__})
