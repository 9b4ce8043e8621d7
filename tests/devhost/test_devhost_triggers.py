"""Blob and queue triggers and output bindings through the real host on real Azurite."""

import base64
import json
import sys
import time
import uuid

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost import Host
from devhost.config import host_id
from tests.devhost.helpers import TOYAPP, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def blobs(toy_env):
    service = BlobServiceClient.from_connection_string(toy_env)
    for name in ("dh-in", "dh-multi", "dh-fail"):
        try:
            service.create_container(name)
        except ResourceExistsError:
            pass
    return service


@pytest.fixture(scope="module")
def queues(toy_env):
    return QueueServiceClient.from_connection_string(toy_env)


@pytest.fixture
def calls(toy_app):
    return sys.modules["toy_triggers"].CALLS


def host(app, **kw):
    return Host(app, port=0, script_root=TOYAPP, poll_interval=0.05, **kw)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def messages(queues, name: str, decode: bool = True) -> list:
    client = queues.get_queue_client(name)
    try:
        found = [m.content for m in client.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []
    return [base64.b64decode(c).decode() for c in found] if decode else found


def blob_text(blobs, container: str, name: str):
    try:
        return blobs.get_blob_client(container, name).download_blob().readall().decode()
    except ResourceNotFoundError:
        return None


def runs(calls, fn: str, path: str) -> int:
    return sum(1 for item in list(calls[fn]) if (item[0] if isinstance(item, tuple) else item) == path)


def test_blob_output_once_per_etag_across_restarts(toy_app, blobs, calls):
    name = f"{uuid.uuid4()}/photo.txt"
    path = f"dh-in/{name}"
    with host(toy_app):
        blobs.get_blob_client("dh-in", name).upload_blob(b"first")
        out = wait_for(lambda: blob_text(blobs, "dh-out", f"{name}.copy"), what="the blob output")
        assert out == f"FIRST len=5 name={path}"
        etag = blobs.get_blob_client("dh-in", name).get_blob_properties().etag.strip('"')
    assert runs(calls, "blob_copy", path) == 1
    receipts = blobs.get_container_client("azure-webjobs-hosts").list_blobs(
        name_starts_with=f"blobreceipts/{host_id()}/Host.Functions.blob_copy/{etag}/dh-in/{name}"
    )
    assert len(list(receipts)) == 1

    with host(toy_app):  # a restarted host: the receipt says it is done
        marker = f"{uuid.uuid4()}.txt"
        blobs.get_blob_client("dh-in", marker).upload_blob(b"m")
        wait_for(lambda: runs(calls, "blob_copy", f"dh-in/{marker}"), what="a full scan after the restart")
        assert runs(calls, "blob_copy", path) == 1
        blobs.get_blob_client("dh-in", name).upload_blob(b"second", overwrite=True)  # a new ETag
        wait_for(
            lambda: blob_text(blobs, "dh-out", f"{name}.copy") == f"SECOND len=6 name={path}",
            what="the changed blob to be processed",
        )
        assert runs(calls, "blob_copy", path) == 2


def test_blob_path_parameters_bytes_and_a_queue_output(toy_app, blobs, queues, calls):
    project = uuid.uuid4().hex
    with host(toy_app):
        blobs.get_blob_client("dh-multi", f"{project}/a.bin").upload_blob(b"\x00\x01\x02")
        found = wait_for(lambda: [m for m in messages(queues, "dh-multi-out") if m], what="a queue output")
    assert {"type": "bytes", "size": 3} in [json.loads(m) for m in found]


def test_a_failing_blob_is_tried_five_times_then_poisoned(toy_app, blobs, queues, calls):
    name = f"{uuid.uuid4()}.txt"

    def poison():
        found = map(json.loads, messages(queues, "webjobs-blobtrigger-poison"))
        return [m for m in found if m["BlobName"] == name]

    with host(toy_app):
        blobs.get_blob_client("dh-fail", name).upload_blob(b"bad")
        etag = blobs.get_blob_client("dh-fail", name).get_blob_properties().etag.strip('"')
        found = wait_for(poison, what="the poison message")
        assert found == [
            {
                "Type": "BlobTrigger",
                "FunctionId": "Host.Functions.blob_fail",
                "FunctionName": "blob_fail",
                "BlobType": "BlockBlob",
                "ContainerName": "dh-fail",
                "BlobName": name,
                "ETag": etag,
            }
        ]
    assert runs(calls, "blob_fail", f"dh-fail/{name}") == 5
    with host(toy_app):  # neither a running nor a restarted host tries it again
        marker = f"{uuid.uuid4()}.txt"
        blobs.get_blob_client("dh-fail", marker).upload_blob(b"m")
        wait_for(lambda: runs(calls, "blob_fail", f"dh-fail/{marker}") >= 2, what="two more scans")
    assert runs(calls, "blob_fail", f"dh-fail/{name}") == 5
    assert len(poison()) == 1


def test_queue_trigger_with_queue_output(toy_app, queues, calls):
    tag = uuid.uuid4().hex
    inbox = queues.get_queue_client("dh-q-in")
    with host(toy_app):
        inbox.send_message(b64(f"hello-{tag}"))
        inbox.send_message(b64(f"many:{tag}"))
        wait_for(lambda: sum(tag in m for m in messages(queues, "dh-q-out")) == 4, what="4 output messages")
        wait_for(lambda: inbox.get_queue_properties().approximate_message_count == 0, what="deleted inputs")
    out = [m for m in messages(queues, "dh-q-out") if tag in m]
    echo = json.loads(next(m for m in out if m.startswith("{")))
    assert echo["body"] == f"hello-{tag}" and echo["dequeue_count"] == 1 and echo["id"] and echo["inserted"]
    assert sorted(m for m in out if m.startswith("many:")) == [f"many:{tag}#{i}" for i in range(3)]


def test_async_queue_function_writes_its_return_value_to_a_templated_blob(toy_app, queues, blobs, calls):
    tag = f"t-{uuid.uuid4().hex}"
    with host(toy_app):
        queues.get_queue_client("dh-q-json").send_message(b64(json.dumps({"tag": tag})))
        out = blobs.get_container_client("dh-out")
        written = wait_for(lambda: list(out.list_blobs(name_starts_with=f"q/{tag}/")), what="the blob output")
    assert len(written) == 1
    assert uuid.UUID(written[0].name.split("/")[-1].removesuffix(".txt"))
    assert blob_text(blobs, "dh-out", written[0].name) == f"tag was {tag}"


def test_a_failing_message_goes_to_poison_after_five_dequeues(toy_app, queues, calls):
    body = f"fail-{uuid.uuid4().hex}"
    with host(toy_app):
        queues.get_queue_client("dh-q-fail").send_message(b64(body))
        wait_for(
            lambda: b64(body) in messages(queues, "dh-q-fail-poison", decode=False), what="the poison message"
        )
    assert [c for b, c in calls["queue_fail"] if b == body] == [1, 2, 3, 4, 5]
    assert queues.get_queue_client("dh-q-fail").get_queue_properties().approximate_message_count == 0


def test_a_message_that_is_not_base64_goes_to_poison_unrun(toy_app, queues, calls):
    text = f"not base64 {uuid.uuid4().hex}!"
    with host(toy_app):
        queues.get_queue_client("dh-q-in").send_message(text)
        wait_for(lambda: text in messages(queues, "dh-q-in-poison", decode=False), what="the poison message")
    assert not [b for b in calls["queue_echo"] if text in b]


def test_a_batch_of_messages_runs_concurrently(toy_app, queues, calls):
    tag = uuid.uuid4().hex
    with host(toy_app, max_workers=8):
        started = time.monotonic()
        for i in range(6):
            queues.get_queue_client("dh-q-slow").send_message(b64(f"{tag}-{i}"))
        wait_for(lambda: sum(m.startswith(tag) for m, _, _ in list(calls["queue_slow"])) == 6, what="6 runs")
        elapsed = time.monotonic() - started
    spans = [(s, e) for m, s, e in calls["queue_slow"] if m.startswith(tag)]
    overlap = max(sum(1 for s2, e2 in spans if s2 < e and s < e2) for s, e in spans)
    assert overlap >= 4, spans
    assert elapsed < 2.5, f"6 x 0.5 s messages took {elapsed:.1f} s (3 s one at a time)"
