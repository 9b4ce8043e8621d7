"""Blob and queue functions of the toy app. CALLS records every invocation so tests can count attempts."""

import collections
import json
import threading
import time

import azure.functions as func

bp = func.Blueprint()
CALLS: dict[str, list] = collections.defaultdict(list)
_lock = threading.Lock()


def record(name: str, item) -> None:
    with _lock:
        CALLS[name].append(item)


@bp.blob_trigger(arg_name="blob", path="dh-in/{name}", connection="AzureWebJobsStorage")
@bp.blob_output(arg_name="copy", path="dh-out/{name}.copy", connection="AzureWebJobsStorage")
def blob_copy(blob: func.InputStream, copy: func.Out[bytes]) -> None:
    data = blob.read()
    record("blob_copy", (blob.name, data))
    copy.set(data.upper() + f" len={blob.length} name={blob.name}".encode())


@bp.blob_trigger(
    arg_name="blob",
    path="dh-multi/{project}/{rest}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
@bp.queue_output(arg_name="out", queue_name="dh-multi-out", connection="AzureWebJobsStorage")
def blob_multi(blob: bytes, out: func.Out[str]) -> None:
    record("blob_multi", blob)
    out.set(json.dumps({"type": type(blob).__name__, "size": len(blob)}))


@bp.blob_trigger(arg_name="blob", path="dh-fail/{name}", connection="AzureWebJobsStorage")
def blob_fail(blob: func.InputStream) -> None:
    record("blob_fail", blob.name)
    raise ValueError("this blob function always fails")


@bp.queue_trigger(arg_name="msg", queue_name="dh-q-in", connection="AzureWebJobsStorage")
@bp.queue_output(arg_name="out", queue_name="dh-q-out", connection="AzureWebJobsStorage")
def queue_echo(msg: func.QueueMessage, out: func.Out[str]) -> None:
    body = msg.get_body().decode()
    record("queue_echo", body)
    if body.startswith("many:"):
        out.set([f"{body}#{i}" for i in range(3)])
    else:
        out.set(
            json.dumps(
                {
                    "body": body,
                    "id": msg.id,
                    "dequeue_count": msg.dequeue_count,
                    "inserted": msg.insertion_time.isoformat(),
                }
            )
        )


@bp.queue_trigger(arg_name="msg", queue_name="%DH_JSON_QUEUE%", connection="AzureWebJobsStorage")
@bp.blob_output(arg_name="$return", path="dh-out/q/{tag}/{rand-guid}.txt", connection="AzureWebJobsStorage")
async def queue_to_blob(msg: func.QueueMessage) -> str:
    record("queue_to_blob", msg.get_json())
    return "tag was " + msg.get_json()["tag"]


@bp.queue_trigger(arg_name="msg", queue_name="dh-q-fail", connection="AzureWebJobsStorage")
def queue_fail(msg: func.QueueMessage) -> None:
    record("queue_fail", (msg.get_body().decode(), msg.dequeue_count))
    raise RuntimeError("this queue function always fails")


@bp.queue_trigger(arg_name="msg", queue_name="dh-q-slow", connection="AzureWebJobsStorage")
def queue_slow(msg: str) -> None:
    started = time.monotonic()
    time.sleep(0.5)
    record("queue_slow", (msg, started, time.monotonic()))
