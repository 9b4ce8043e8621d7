"""The ASGI app uvicorn serves: route to an HTTP-triggered function, build a real `func.HttpRequest`, map
the returned `func.HttpResponse` back."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qsl, unquote

import azure.functions as func

from .bindings import json_binding_data
from .catalog import HTTP_TRIGGER, TIMER_TRIGGER, FunctionSpec
from .config import HostConfig
from .invoker import Invoker
from .routes import Route, Router
from .timer import timer_request

log = logging.getLogger("devhost")


DRAIN_LIMIT = 64 * 1024 * 1024  # an oversized body up to this much more is read and dropped before the 413
_ADMIN_RUN = re.compile(r"/admin/functions/([^/]+)/?", re.IGNORECASE)


class TooLarge(Exception):
    """Too large to drain: answer 413 at once and close the connection."""


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


async def read_body(receive, limit: int) -> bytes | None:
    """The whole body (chunks collected, joined once), or None when it exceeds `limit`. An oversized body
    is read on and dropped (up to a bound) so the client gets the 413 rather than a reset connection."""
    chunks: list[bytes] | None = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        more = message.get("more_body", False)
        if size > limit:
            chunks = None
            if size > limit + DRAIN_LIMIT:
                raise TooLarge()
        elif chunks is not None:
            chunks.append(chunk)
    return None if chunks is None else b"".join(chunks)


def request_path(scope) -> str:
    """The path routing sees: percent-decoded except `%2F`, which stays encoded (as in ASP.NET Core)."""
    raw = scope.get("raw_path")
    if not raw:
        return scope["path"]
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
    def __init__(self, specs: list[FunctionSpec], invoker: Invoker, cfg: HostConfig):
        self.router, self.invoker, self.max_body = build_router(specs, cfg), invoker, cfg.max_body
        self.by_name = {spec.name.lower(): spec for spec in specs}

    async def run_now(self, send, name: str) -> None:
        """`POST /admin/functions/{name}`: run a timer function now, as the host's admin API does (202)."""
        spec = self.by_name.get(name.lower())
        if spec is None:
            return await respond(send, 404, {"error": f"no function named {name!r}"})
        if spec.trigger_type != TIMER_TRIGGER:
            return await respond(
                send,
                400,
                {
                    "error": f"devhost runs timer functions on demand, and {spec.name} "
                    f"has a {spec.trigger_type}"
                },
            )
        try:
            await self.invoker.run(spec, timer_request(False, None, None), {}, "(admin request)")
        except Exception:
            pass
        await respond(send, 202, None)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path = request_path(scope)
        admin = _ADMIN_RUN.fullmatch(path)
        if admin and scope["method"] == "POST":  # the host reserves /admin: no function route can take it
            return await self.run_now(send, admin.group(1))
        route, found = self.router.resolve(scope["method"], path)
        if route is None:
            if found:
                return await respond(
                    send, 405, {"error": "method not allowed"}, [("Allow", ", ".join(found))]
                )
            if path.rstrip("/").lower() == "/admin/host/status":
                return await respond(send, 200, {"state": "Running"})
            return await respond(send, 404, None)
        headers = {}
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            headers[key] = f"{headers[key]}, {v.decode('latin-1')}" if key in headers else v.decode("latin-1")
        too_large = {"error": f"request body is larger than {self.max_body} bytes"}
        try:
            if int(headers.get("content-length") or 0) > self.max_body + DRAIN_LIMIT:
                raise TooLarge()
            body = await read_body(receive, self.max_body)
        except TooLarge:
            return await respond(send, 413, too_large, [("Connection", "close")])
        except (ConnectionError, ValueError):
            return await respond(send, 400, {"error": "unreadable request body"})
        if body is None:
            return await respond(send, 413, too_large)
        spec, values = route.target, found
        params = {}
        for k, v in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            params[k] = f"{params[k]},{v}" if k in params else v
        server_host, server_port = scope.get("server") or ("127.0.0.1", 80)
        host = headers.get("host") or f"{server_host}:{server_port}"
        query = "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
        raw_path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        url = f"{scope.get('scheme', 'http')}://{host}{raw_path}{query}"
        req = func.HttpRequest(
            scope["method"], url, headers=headers, params=params, route_params=values, body=body
        )
        data = {**params, **values}
        if spec.inputs or any(b.get("type") != "http" for b in spec.outputs):
            data = {**json_binding_data(body), **data}
        failed = {"error": "function failed", "function": spec.name}
        try:
            result, outs = await self.invoker.run(spec, req, data, f"{scope['method']} {path}")
        except Exception as exc:
            return await respond(send, 500, {**failed, "type": type(exc).__name__})
        try:
            http_out = next((b["name"] for b in spec.outputs if b.get("type") == "http"), "$return")
            status, out_headers, out_body = to_http(result if http_out == "$return" else outs[http_out].get())
        except Exception as exc:
            log.exception("function %s gave no usable HTTP response", spec.name)
            return await respond(send, 500, {**failed, "type": type(exc).__name__})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": out_body})


async def respond(send, status: int, payload, headers: list | None = None) -> None:
    body = json.dumps(payload).encode() if payload is not None else b""
    head = [(b"content-type", b"application/json; charset=utf-8")] if payload is not None else []
    head += [(k.lower().encode(), v.encode()) for k, v in headers or []]
    head.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
