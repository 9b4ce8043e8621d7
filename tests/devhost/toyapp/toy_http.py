"""HTTP functions of the toy app: routes, constraints, methods, bodies, headers, failures."""

import asyncio
import hashlib
import json
import logging
import os
import time

import azure.functions as func

bp = func.Blueprint()


def reply(name: str, req: func.HttpRequest, **extra) -> func.HttpResponse:
    body = {"fn": name, "route": dict(req.route_params), **extra}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@bp.route(route="items/{id:int}", methods=["GET"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return reply("item_by_id", req)


@bp.route(route="items/{name}", methods=["GET"])
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return reply("item_by_name", req)


@bp.route(route="items/special", methods=["GET"])
def item_special(req: func.HttpRequest) -> func.HttpResponse:
    return reply("item_special", req)


@bp.route(route="items/{id:int}", methods=["DELETE"])
def item_delete(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=204)


@bp.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return reply("files", req)


@bp.route(route="opt/{a?}")
def optional(req: func.HttpRequest) -> func.HttpResponse:
    return reply("optional", req)


@bp.route(route="things/{id:guid}/{x:alpha}")
def things(req: func.HttpRequest) -> func.HttpResponse:
    return reply("things", req)


@bp.route(route="codes/{v:regex(^\\d{{3}}$)}")
def codes(req: func.HttpRequest) -> func.HttpResponse:
    return reply("codes", req)


@bp.route(route="files/{dir}/index", methods=["GET"])
def files_index(req: func.HttpRequest) -> func.HttpResponse:
    return reply("files_index", req)


@bp.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    is_json = req.headers.get("content-type", "").startswith("application/json")
    return reply(
        "echo",
        req,
        method=req.method,
        url=req.url,
        length=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        params=dict(req.params),
        token=req.headers.get("X-Token"),
        token_lower=req.headers.get("x-token"),
        keys=len(req.get_json()) if is_json else None,
    )


@bp.route()
def default_route(req: func.HttpRequest) -> str:
    return "plain text from " + req.method


@bp.route(route="custom")
def custom(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        "<b>made</b>",
        status_code=201,
        mimetype="text/html",
        charset="latin-1",
        headers={"X-Custom": "yes", "Location": "/items/7"},
    )


@bp.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the toy function fails on purpose")


@bp.route(route="slow")
def slow(req: func.HttpRequest) -> func.HttpResponse:
    logging.getLogger("toy").info("slow started")
    time.sleep(float(req.params.get("s", "0.4")))
    return func.HttpResponse("done")


@bp.route(route="async/{name}")
async def async_hello(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse(
        json.dumps(
            {
                "hello": req.route_params["name"],
                "function": context.function_name,
                "invocation": context.invocation_id,
            }
        ),
        mimetype="application/json",
    )


@bp.route(route="setting/{name}")
def setting(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(os.environ.get(req.route_params["name"], "<unset>"))


@bp.route(route="blobs/{name}", methods=["GET"])
@bp.blob_input(arg_name="stored", path="dh-in/{name}", connection="AzureWebJobsStorage")
def read_blob(req: func.HttpRequest, stored: func.InputStream) -> func.HttpResponse:
    if stored is None:
        return func.HttpResponse("no such blob", status_code=404)
    return func.HttpResponse(stored.read(), headers={"X-Blob-Name": stored.name})


@bp.route(route="enqueue/{id}", methods=["POST"])
@bp.queue_output(arg_name="msg", queue_name="dh-http-out", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
    msg.set(f"{req.route_params['id']}:{req.get_body().decode()}")
    return func.HttpResponse(status_code=202)
