"""End to end: Custom Vision's storage integration through the official SDK on real Azurite. A project names an
export container and a notification queue (create_project options, update_project settings); the URIs are
checked (this account only, no SAS, not the service's own, must exist) and tested (ConnectionTest message, a
temporary blob); a finished training and finished exports (packaged at once, and made by the trainer) send
Custom Vision's messages, and exports are copied into the container under Custom Vision's blob names."""

import json
import time
import urllib.request

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from cvcore import layout, settings
from cvcore.storage import base64_queue
from tests.support.training import COMPACT, add_cats_and_cups, local_stack, wait_trained

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(azurite):
    with local_stack(azurite, cpu_seconds=15) as (_, trainer, _):
        blobs, queues = (
            BlobServiceClient.from_connection_string(azurite),
            QueueServiceClient.from_connection_string(azurite),
        )
        suffix = layout.new_id()[:8]
        container, queue = (
            blobs.create_container(f"backups-{suffix}"),
            queues.create_queue(f"notify-{suffix}"),
        )
        yield trainer, container, base64_queue(queue), blobs.url.rstrip("/"), queues.url.rstrip("/")


def drain(queue, want: int = 1, timeout: float = 120, kind: str | None = None) -> list[dict]:
    """Messages from the user's queue (deleted as read) until `want` of `kind` have come."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in queue.receive_messages(max_messages=32, visibility_timeout=5):
            got.append(json.loads(m.content))
            queue.delete_message(m)
        if len([g for g in got if kind in (None, g["type"])]) >= want:
            return got
        time.sleep(0.3)
    raise AssertionError(f"only {got} arrived")


def error_of(call) -> tuple[str, str]:
    with pytest.raises(CustomVisionErrorException) as err:
        call()
    return err.value.error.code, err.value.error.message


def test_uris_are_checked_and_tested_then_training_and_exports_are_delivered(stack):
    trainer, container, queue, blob_url, queue_url = stack
    c_uri, q_uri = f"{blob_url}/{container.container_name}", f"{queue_url}/{queue.queue_name}"
    project = trainer.create_project(
        f"integrated-{layout.new_id()[:8]}",
        domain_id=COMPACT,
        export_model_container_uri=c_uri,
        notification_queue_uri=q_uri,
    )
    try:
        assert (project.settings.export_model_container_uri, project.settings.notification_queue_uri) == (
            c_uri,
            q_uri,
        )
        (test,) = drain(queue)
        assert test == {"version": "1.0", "type": "ConnectionTest", "Content": {"projectId": project.id}}
        assert list(container.list_blobs(name_starts_with="CustomVision-TestPermission/")) == []  # temporary

        add_cats_and_cups(trainer, project.id)
        it = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
        assert it.status == "Completed"
        (done,) = [m for m in drain(queue, kind="Training") if m["type"] == "Training"]
        assert done["Content"] == {
            "projectId": project.id,
            "iterationId": it.id,
            "trainingStatus": "TrainingCompleted",
        }

        # A packaged export: copied at once, and announced with the copy's URL.
        export = trainer.export_iteration(project.id, it.id, "ONNX")
        assert export.status == "Done"
        (note,) = drain(queue, kind="Export")
        name = f"{project.id}-{it.id}.ONNX"
        assert note["type"] == "Export" and note["Content"]["exportStatus"] == "ExportCompleted"
        assert note["Content"]["modelUri"] == f"{c_uri}/{name}"
        with urllib.request.urlopen(export.download_uri, timeout=10) as resp:
            assert container.download_blob(name).readall() == resp.read()

        # A converted export (the trainer makes the int8 flavour): Exporting now, delivered when it is made.
        asked = trainer.export_iteration(project.id, it.id, "ONNX", flavor="ONNXInt8")
        assert asked.status == "Exporting"
        (later,) = drain(queue, kind="Export", timeout=180)
        content = later["Content"]
        assert (content["flavor"], content["exportStatus"]) == ("ONNXInt8", "ExportCompleted"), content
        assert container.download_blob(f"{project.id}-{it.id}.ONNX-ONNXInt8").readall()[:2] == b"PK"
    finally:
        trainer.delete_project(project.id)


def test_bad_uris_are_refused_naming_the_field_and_nothing_is_saved(stack):
    trainer, container, queue, blob_url, queue_url = stack
    name = f"refused-{layout.new_id()[:8]}"
    cases = [
        (
            {"export_model_container_uri": f"https://evil.blob.core.windows.net/{container.container_name}"},
            "exportModelContainerUri",
            "not in this service's storage account",
        ),
        ({"notification_queue_uri": f"{queue_url}/no-such-queue"}, "notificationQueueUri", "does not exist"),
        (
            {"export_model_container_uri": f"{blob_url}/no-such-container"},
            "exportModelContainerUri",
            "does not exist",
        ),
        (
            {"notification_queue_uri": f"{queue_url}/{layout.TRAINING_JOBS}"},
            "notificationQueueUri",
            "service's own",
        ),
        (
            {"export_model_container_uri": f"{blob_url}/{layout.MODELS}"},
            "exportModelContainerUri",
            "service's own",
        ),
        (
            {"notification_queue_uri": f"{queue_url}/{queue.queue_name}?sv=2020&sig=x"},
            "notificationQueueUri",
            "SAS",
        ),
        (
            {"notification_queue_uri": "http://169.254.169.254/latest"},
            "notificationQueueUri",
            "storage account",
        ),
    ]
    for options, field, words in cases:
        code, message = error_of(lambda options=options: trainer.create_project(name, **options))
        assert code == "BadRequestInvalid" and field in message and words in message, (options, message)
    assert name not in {p.name for p in trainer.get_projects()}


def test_update_project_sets_and_clears_the_queue(stack):
    """The SDK marks the two settings read-only, so this is the REST PATCH the storage-integration docs show."""
    trainer, _, queue, _, queue_url = stack
    project = trainer.create_project(f"later-{layout.new_id()[:8]}")
    url = f"{trainer.config.endpoint}/customvision/v3.3/Training/projects/{project.id}"
    headers = {"Training-key": settings.LOCAL_TRAINING_KEY}

    def patch(uri):
        return requests.patch(
            url,
            headers=headers,
            timeout=30,
            json={
                "name": project.name,
                "settings": {"domainId": project.settings.domain_id, "notificationQueueUri": uri},
            },
        )

    try:
        q_uri = f"{queue_url}/{queue.queue_name}"
        reply = patch(q_uri)
        assert reply.status_code == 200 and reply.json()["settings"]["notificationQueueUri"] == q_uri
        (test,) = drain(queue)
        assert test["type"] == "ConnectionTest" and test["Content"]["projectId"] == project.id
        assert trainer.get_project(project.id).settings.notification_queue_uri == q_uri
        refused = patch(f"{queue_url}/missing-queue")
        assert refused.status_code == 400 and "does not exist" in refused.json()["message"]
        assert trainer.get_project(project.id).settings.notification_queue_uri == q_uri  # unchanged
        assert patch("").json()["settings"]["notificationQueueUri"] is None
    finally:
        trainer.delete_project(project.id)
